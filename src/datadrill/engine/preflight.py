"""Checks a scenario must pass on a given stack before anything is injected: every fault
in its schedule is one the stack's backend can do.

Example::

    check_capabilities(scenario, stack, source="scenarios/broker_loss.py")
    # ConfigError: scenarios/broker_loss.py: schedule[0] = 'kafka.request_errors' is invalid:
    # the external stack cannot (request_errors: a fault of librdkafka's mock cluster; ...)
"""

from __future__ import annotations

from datadrill.errors import ConfigError
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
