"""Checks a scenario must pass on a given stack before anything is injected: every fault
in its schedule is one the stack's backend can do (its Kafka capabilities; a fault that
needs the stack's own Kafka Connect API, not a real cluster's).

Example::

    check_capabilities(scenario, stack, source="scenarios/broker_loss.py")
    # ConfigError: scenarios/broker_loss.py: schedule[0] = 'kafka.request_errors' is invalid:
    # the external stack cannot (request_errors: a fault of librdkafka's mock cluster; ...)
"""

from __future__ import annotations

from datadrill.errors import ConfigError, ControlError
from datadrill.faults.registry import plugins
from datadrill.model.scenario import Scenario
from datadrill.stack.port import KafkaCapability, Stack


def check_capabilities(scenario: Scenario, stack: Stack, *, source: str) -> None:
    """Raise :class:`ConfigError` for the first scheduled fault the stack cannot do."""
    have = stack.kafka.capabilities
    registered = plugins()
    for index, item in enumerate(scenario.schedule):
        plugin = registered.get(item.kind)  # None: a schedule item that is not a fault (a backup)
        required: frozenset[KafkaCapability] = getattr(plugin, "requires", frozenset())
        missing = sorted(required - have)
        if missing:
            reasons = "; ".join(f"{c.value}: {stack.kafka.why_not(c)}" for c in missing)
            raise ConfigError(
                source,
                f"schedule[{index}]",
                item.kind,
                f"a fault the {stack.backend} stack can do; it cannot ({reasons})",
            )
        if getattr(plugin, "needs_own_connect", False):
            _check_own_connect(stack, source, index, item.kind)


def _check_own_connect(stack: Stack, source: str, index: int, kind: str) -> None:
    try:
        connect = stack.connect
        embedded, where = connect.embedded, connect.url
    except ControlError as exc:
        embedded, where = False, str(exc)
    if not embedded:
        raise ConfigError(
            source,
            f"schedule[{index}]",
            kind,
            f"a fault on the stack's own connectors; the Kafka Connect API here ({where}) is a real "
            "cluster's, whose REST API cannot fail a task",
        )
