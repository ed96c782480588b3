"""What a scenario needs of the platform, checked before a run: observe-only runs and the
components SLIs name.

A stack with ``[platform] reference = false`` runs only the team's declared components:
no order generator, no outbox relay, no sink, no canaries. There datadrill only injects
faults into the traffic already flowing and measures (an *observe-only* run). A scenario
that needs the reference platform anyway (a workload rate, a fault that bursts the
workload or drifts the relay's schema, a step that replays into ``dwh.orders``, an SLI
reading canaries or the relay's and sink's counters, a component the reference platform
runs) is refused before the run: one :class:`~datadrill.errors.ConfigError` naming the
field, the value and why.

Example::

    check_platform(scenario, stack, source="scenarios/consumer_hang.py")
    # ConfigError: scenarios/consumer_hang.py: slos[1].sli = 'CanaryLatency' is invalid:
    # it needs the reference platform (it follows the canaries the reference workload
    # writes), but this stack runs none ([platform] reference = false; its components: ...

A fault, step or SLI of a plugin says it needs the reference platform with a
``needs_reference_platform`` attribute (on its spec or its fault plugin): a reason, or
True.
"""

from __future__ import annotations

from typing import Any

from datadrill.config import REFERENCE_COMPONENTS, StackConfig
from datadrill.errors import ConfigError, ControlError
from datadrill.model.scenario import Scenario
from datadrill.model.slo import DEFAULT_SOURCE_QUERY, ConnectorHealth, RestartRate
from datadrill.stack.port import Stack

OBSERVE_ONLY_NOTE = (
    "observe-only: the stack runs no reference platform; datadrill injected faults and measured, "
    "it wrote no data"
)
# What an observe-only run leaves out, for the report (beside OBSERVE_ONLY_NOTE).
OBSERVE_ONLY_SKIPPED = (
    "no workload or canaries were driven, and the final verification (which reconciles the "
    "reference platform's source against its dwh.orders) was skipped"
)

# Built-in faults, steps and SLIs that work on the reference platform's own parts.
REFERENCE_FAULTS: dict[str, str] = {
    "consumer.lag_spike": "it bursts the reference workload and pauses or throttles the reference sink",
    "contract.schema_drift": "it switches the reference relay's writer schema",
}
REFERENCE_STEPS: dict[str, str] = {
    "replay_kafka": "it replays orders.v1 into dwh.orders with the reference sink's decoder",
    "rollback_producer": "it rolls the reference relay's writer schema back",
    "reprocess_dead_letters": "it re-emits the reference relay's dead letters through its outbox",
}
REFERENCE_SLIS: dict[str, str] = {
    "canary_latency": "it follows the canaries the reference workload writes",
    "connector_error_rate": "it reads the reference relay's and sink's error counters",
}
# Steps and SLIs that reconcile a source against a table: the reference platform's unless
# their target names a source query of its own.
_RECONCILING = {"reconcile": "recovery step", "data_integrity": "SLI"}
# Fields named ``component`` that hold a Kafka Connect connector's name, not a supervised
# component's: a real cluster's connector may be called "sink".
_CONNECTOR_NAMED = frozenset({"restart_connector", "connector_health"})


def observe_only(config: StackConfig) -> bool:
    """Does this stack run without the reference platform (datadrill only observes)?"""
    return not config.platform.reference


def check_platform(scenario: Scenario, stack: Stack, *, source: str) -> None:
    """Raise :class:`ConfigError` for the first thing ``scenario`` needs that ``stack``
    does not run: the reference platform on an observe-only stack, or a component that an
    SLI names and the stack does not have."""
    config = stack.config
    if observe_only(config):
        _check_observe_only(scenario, config, source)
    _check_named_components(scenario, stack, source)


def _no_reference(config: StackConfig) -> str:
    declared = ", ".join(config.components) or "none"
    return (
        f"this stack runs none ([platform] reference = false; its components: {declared}), and an "
        "observe-only run only injects faults into the traffic already there and measures"
    )


def _needs(spec: Any, table: dict[str, str], plugin: Any = None) -> str | None:
    """Why ``spec`` needs the reference platform, or None."""
    for holder in (spec, plugin):
        declared = getattr(holder, "needs_reference_platform", None)
        if declared:
            return declared if isinstance(declared, str) else "its plugin says it needs it"
    kind = getattr(spec, "kind", "")
    if kind in _RECONCILING:
        target = getattr(spec, "target", None)
        query = getattr(target, "source_query", DEFAULT_SOURCE_QUERY)
        if query == DEFAULT_SOURCE_QUERY:
            return "it reconciles the reference platform's source orders (give it a Target with your source_query)"
        return None
    return table.get(kind)


def _check_observe_only(scenario: Scenario, config: StackConfig, source: str) -> None:
    from datadrill.faults.registry import plugins

    why_not = _no_reference(config)
    if scenario.workload.rate > 0:
        raise ConfigError(
            source,
            "workload.rate",
            scenario.workload.rate,
            f"expected Workload(rate=0): a rate drives the reference platform's order generator, but {why_not}",
        )
    registered = plugins()
    items: list[tuple[str, Any, dict[str, str], Any]] = [
        (f"slos[{i}].sli", slo.sli, REFERENCE_SLIS, None) for i, slo in enumerate(scenario.slos)
    ]
    items += [
        (f"schedule[{i}]", item, REFERENCE_FAULTS, registered.get(item.kind))
        for i, item in enumerate(scenario.schedule)
    ]
    items += [
        (f"recovery.steps[{i}]", step, REFERENCE_STEPS, None)
        for i, step in enumerate(getattr(scenario.recovery, "steps", ()))
    ]
    for field, spec, table, plugin in items:
        what = type(spec).__name__
        reason = _needs(spec, table, plugin)
        if reason is not None:
            raise ConfigError(
                source, field, what, f"it needs the reference platform ({reason}), but {why_not}"
            )
        component = getattr(spec, "component", None)
        if component in REFERENCE_COMPONENTS and getattr(spec, "kind", "") not in _CONNECTOR_NAMED:
            raise ConfigError(
                source,
                f"{field}.component",
                component,
                f"expected a component of this stack: {', '.join(config.component_names) or 'none'}; "
                f"{component} is the reference platform's, but {why_not}",
            )


def _check_named_components(scenario: Scenario, stack: Stack, source: str) -> None:
    config = stack.config
    for index, slo in enumerate(scenario.slos):
        sli = slo.sli
        field = f"slos[{index}].sli.component"
        if isinstance(sli, RestartRate) and sli.component:
            declared = config.components.get(sli.component)
            if sli.component not in config.component_names:
                raise ConfigError(
                    source,
                    field,
                    sli.component,
                    f"a component of this stack: {', '.join(config.component_names) or 'none'}",
                )
            if declared is not None and declared.connector:
                raise ConfigError(
                    source,
                    field,
                    sli.component,
                    "a supervised component: restarts are counted from the stack's supervisor, and "
                    f"{sli.component} is the connector {declared.connector!r} of the Kafka Connect cluster at "
                    "[connect] url (measure it with ConnectorHealth)",
                )
        if isinstance(sli, ConnectorHealth):
            connector = connector_name(config, sli.component)
            try:
                names = stack.connect.connectors()
            except ControlError as exc:
                raise ConfigError(source, field, sli.component, f"a connector of a Kafka Connect API ({exc})") from None
            if connector not in names:
                named = f" (the connector {connector!r} of [components.{sli.component}])" if connector != sli.component else ""
                raise ConfigError(
                    source,
                    field,
                    sli.component,
                    f"a connector Kafka Connect knows{named}: {', '.join(names) or 'none'}",
                )


def connector_name(config: StackConfig, component: str) -> str:
    """The Kafka Connect connector ``component`` is: a declared ``connector = "NAME"``
    component's NAME, else the component's own name."""
    declared = config.components.get(component)
    return declared.connector if declared is not None and declared.connector else component
