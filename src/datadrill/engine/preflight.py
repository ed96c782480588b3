"""Checks a scenario must pass on a given stack before anything is injected: every fault
in its schedule is one the stack's backend can do (its Kafka capabilities; a fault that
needs the stack's own Kafka Connect API, not a real cluster's), and every connector a
runbook restarts is one Kafka Connect knows.

Example::

    check_capabilities(scenario, stack, source="scenarios/broker_loss.py")
    # ConfigError: scenarios/broker_loss.py: schedule[0] = 'kafka.request_errors' is invalid:
    # the external stack cannot (request_errors: a fault of librdkafka's mock cluster; ...)
"""

from __future__ import annotations

from datadrill.errors import ConfigError, ControlError
from datadrill.faults.registry import plugins
from datadrill.model.recovery import RestartConnector
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
    _check_restarted_connectors(scenario, stack, source)


def _check_restarted_connectors(scenario: Scenario, stack: Stack, source: str) -> None:
    steps = getattr(scenario.recovery, "steps", ())
    for index, step in enumerate(steps):
        if not isinstance(step, RestartConnector):
            continue
        field = f"recovery.steps[{index}].component"
        try:
            names = stack.connect.connectors()
        except ControlError as exc:
            raise ConfigError(source, field, step.component, f"a connector of a Kafka Connect API ({exc})") from None
        if step.component not in names:
            raise ConfigError(
                source, field, step.component, f"a connector Kafka Connect knows: {', '.join(names) or 'none'}"
            )


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
