"""Checks a scenario must pass on a given stack before anything is injected: every
component its faults and steps name is one the stack has (:func:`check_component_names`;
the loader runs the same check against a config file, before any stack exists), every
fault in its schedule is one the stack's backend can do (its Kafka capabilities; a fault
that needs the stack's own Kafka Connect API, not a real cluster's), and every connector a
runbook restarts is one Kafka Connect knows.

Example::

    check_capabilities(scenario, stack, source="scenarios/broker_loss.py")
    # ConfigError: scenarios/broker_loss.py: schedule[0] = 'kafka.request_errors' is invalid:
    # the external stack cannot (request_errors: a fault of librdkafka's mock cluster; ...)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from datadrill.errors import ConfigError, ControlError
from datadrill.faults.registry import plugins
from datadrill.model.recovery import RestartConnector
from datadrill.model.scenario import Scenario
from datadrill.stack.port import KafkaCapability, Stack

if TYPE_CHECKING:
    from datadrill.config import StackConfig


def named_components(scenario: Scenario) -> Iterator[tuple[str, str]]:
    """(field, component name) of every built-in fault and runbook step that names a
    component: ``schedule[0].component``, ``recovery.steps[2].component``. A plugin's own
    specs are left to its ``target()``: its ``component`` may mean something else."""
    for index, item in enumerate(scenario.schedule):
        name = _component_of(item)
        if name is not None:
            yield f"schedule[{index}].component", name
    for index, step in enumerate(getattr(scenario.recovery, "steps", ())):
        name = _component_of(step)
        if name is not None:
            yield f"recovery.steps[{index}].component", name
        # A Compare's paths hold steps too (each measured or applied like any other).
        for p, path in enumerate(getattr(step, "paths", ())):
            for s, inner in enumerate(getattr(path, "steps", ())):
                name = _component_of(inner)
                if name is not None:
                    yield f"recovery.steps[{index}].paths[{p}].steps[{s}].component", name


def _component_of(item: object) -> str | None:
    name = getattr(item, "component", None)
    if not isinstance(name, str) or not name or not type(item).__module__.startswith("datadrill.model"):
        return None
    return name


def check_component_names(
    scenario: Scenario, known: Sequence[str], *, source: str, connectors: str = ""
) -> None:
    """ConfigError for the first component a fault or step names that is not in ``known``
    (``connectors``: how the message names the Connect cluster's connectors, also known).

    Example::

        check_component_names(scenario, ("workload", "relay", "sink", "enricher"), source="scenarios/x.py")
        # ConfigError: scenarios/x.py: schedule[0].component = 'enrichr' is invalid: a
        # component of this stack: workload, relay, sink, enricher
    """
    for field, name in named_components(scenario):
        if name not in known:
            listed = ", ".join(known) or "none"
            raise ConfigError(source, field, name, f"a component of this stack: {listed}{connectors}")


def check_config_components(scenario: Scenario, config: StackConfig, *, source: str) -> None:
    """The loader's check, before any stack runs: components named in ``scenario`` exist in
    ``config`` (reference and declared). With ``[connect] url`` a name may also be one of
    that cluster's connectors, which only the stack can ask for: left to the preflight."""
    if config.connect.url:
        return
    check_component_names(scenario, config.component_names, source=source)


def check_stack_components(scenario: Scenario, stack: Stack, *, source: str) -> None:
    """Components named in ``scenario`` exist on ``stack``: its config's (reference and
    declared), or, with ``[connect] url``, connectors that Connect cluster lists."""
    known = list(stack.config.component_names)
    connectors = ""
    try:
        connect = stack.connect
        if not connect.embedded:
            listed = connect.connectors()
            known += [c for c in listed if c not in known]
            connectors = (
                f" (with the connectors of Kafka Connect at {connect.url}: {', '.join(listed) or 'none'})"
            )
    except ControlError as exc:
        if stack.config.connect.url:
            connectors = f" (Kafka Connect at {stack.config.connect.url} did not list its connectors: {exc})"
    check_component_names(scenario, known, source=source, connectors=connectors)


def check_capabilities(scenario: Scenario, stack: Stack, *, source: str) -> None:
    """Raise :class:`ConfigError` for the first component the stack lacks, or scheduled
    fault it cannot do."""
    check_stack_components(scenario, stack, source=source)
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
        if getattr(plugin, "needs_source_proxy", False):
            _check_source_fault(stack, source, index, item.kind, plugin)
    _check_restarted_connectors(scenario, stack, source)
    check_config_source(scenario, stack.config, source=source)


def _source_kind(config: StackConfig) -> str:
    return "a PostgreSQL source" if config.source.is_postgres else "a SQLite source (a file)"


def check_config_source(scenario: Scenario, config: StackConfig, *, source: str) -> None:
    """What only the configuration decides, checked before any stack starts (the loader
    calls it): a fault on the CDC relay's slot needs the relay in cdc mode on PostgreSQL,
    and ReplicationLag a PostgreSQL source's slot."""
    from datadrill.faults.replication import CDC_HINT

    registered = plugins()
    for index, item in enumerate(scenario.schedule):
        plugin = registered.get(item.kind)
        if getattr(plugin, "needs_cdc", False) and not (config.source.is_postgres and config.relay.mode == "cdc"):
            raise ConfigError(
                source,
                f"schedule[{index}]",
                item.kind,
                f"a fault on {CDC_HINT}; this stack's relay is {config.relay.mode!r} on {_source_kind(config)}",
            )
    _check_replication_slis(scenario, config, source)


def _check_source_fault(stack: Stack, source: str, index: int, kind: str, plugin: object) -> None:
    """An outage of the source needs its ``source`` proxy (the CDC check is the config's:
    :func:`check_config_source`)."""
    from datadrill.faults.source import SOURCE_PROXY, SOURCE_PROXY_HINT

    config = stack.config
    if getattr(plugin, "needs_source_proxy", False):
        proxies = stack.network.paths()
        if not config.source.is_postgres or SOURCE_PROXY not in proxies:
            has = ", ".join(sorted(proxies)) or "none"
            raise ConfigError(
                source,
                f"schedule[{index}]",
                kind,
                f"{SOURCE_PROXY_HINT}; this stack has {_source_kind(config)} and proxies: {has}",
            )


def _check_replication_slis(scenario: Scenario, config: StackConfig, source: str) -> None:
    """ReplicationLag reads a PostgreSQL source's slot: the CDC relay's unless it names one."""
    for index, slo in enumerate(scenario.slos):
        if slo.sli.kind != "replication_lag":
            continue
        field = f"slos[{index}].sli"
        if not config.source.is_postgres:
            raise ConfigError(
                source,
                field,
                "ReplicationLag",
                "an SLI on a PostgreSQL source's replication slot; this stack has a SQLite source (a file): "
                "run with `datadrill run --source postgresql --relay cdc`, start the stack with "
                "`datadrill stack up --source postgresql --relay cdc`, or set [source] uri",
            )
        if not getattr(slo.sli, "slot", "") and config.relay.mode != "cdc":
            raise ConfigError(
                source,
                field,
                "ReplicationLag",
                f"slot='' measures the CDC relay's slot, and this stack's relay is {config.relay.mode!r}: "
                'set [relay] mode = "cdc" (--relay cdc), or name a slot of yours (ReplicationLag(slot=...))',
            )


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
        declared = stack.config.components.get(step.component)
        if declared is not None and declared.connector:
            if declared.connector not in names:
                raise ConfigError(
                    source,
                    field,
                    step.component,
                    f"a component whose connector Kafka Connect knows; it has no {declared.connector!r} "
                    f"([components.{step.component}] connector), only {', '.join(names) or 'none'}",
                )
            continue
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
