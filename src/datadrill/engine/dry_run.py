"""What a run of a scenario would do on a stack, found out without changing anything.

:func:`plan` probes every SLI once and says whether it is inside its SLO now, checks that
the stack's backend can do every scheduled fault, resolves what each schedule item would
hit through its plugin's ``target()``, and lists the recovery, the expectations and the
stop conditions. Nothing is injected, no workload is changed, nothing is written to the
fault ledger and no run directory is made: ``target()`` only reads, and any file a
third-party plugin writes by mistake lands in a temporary directory that is removed.

Example::

    result = plan(load_scenario(Path("scenarios/broker_loss.py")), stack, MonotonicClock())
    result.ok            # False when something would fail
    result.problems      # ("schedule[0] (broker 7 down for 8 s): scenario: BrokerLoss.broker = 7 ...",)
    result.schedule[0]   # PlannedItem(at_s=2.0, until_s=10.0, target="broker 2 of 3 (127.0.0.1:40411)", ...)
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datadrill.clock import Clock
from datadrill.engine.observe import check_platform
from datadrill.engine.preflight import check_capabilities
from datadrill.errors import ConfigError, DrillError
from datadrill.faults.base import DrillContext
from datadrill.faults.registry import plugin_for
from datadrill.model.faults import TakeCatalogBackup, TakeReserveCopy
from datadrill.model.recovery import Automatic, Runbook
from datadrill.model.scenario import Scenario
from datadrill.model.slo import SLO, Direction
from datadrill.probes import ProbeEnv, Sample, build_probe
from datadrill.reporting.formatting import format_value
from datadrill.stack.port import Stack


@dataclass(frozen=True)
class SLIReading:
    """One SLI probed once, now."""

    slo: str
    statement: str  # the SLO in user terms
    unit: str
    threshold: float | None
    direction: Direction
    value: float | None  # None: it could not be measured
    good: bool
    error: str | None = None

    @property
    def bound(self) -> str:
        """Where the SLI is good: "≤ 10 s", "≥ 100 rows/s", "succeeds"."""
        if self.direction is Direction.OK or self.threshold is None:
            return "succeeds"
        sign = "≤" if self.direction is Direction.MAX else "≥"
        return f"{sign} {format_value(self.threshold, self.unit)}"

    @property
    def shown(self) -> str:
        """The value as a person reads it: "1.2 s", "ok", "failing: <error>"."""
        if self.value is None:
            return f"not measured: {self.error or 'no value'}"
        if self.direction is Direction.OK:
            return "ok" if self.good else f"failing: {self.error or 'bad'}"
        return format_value(self.value, self.unit)


@dataclass(frozen=True)
class PlannedItem:
    """One schedule item as it would happen: when, what, and what it would hit here."""

    index: int
    at_s: float
    until_s: float | None  # when a fault with duration_s is reverted
    kind: str
    description: str  # the spec's own describe()
    target: str | None  # None when it could not be resolved (see problem)
    problem: str | None = None


@dataclass(frozen=True)
class PlannedRecovery:
    kind: str  # "automatic" or "runbook"
    response_delay_s: float | None = None
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class DryRunPlan:
    """Everything a dry run found; :attr:`problems` lists, one line each, what would fail."""

    scenario: str
    description: str
    backend: str
    warmup_s: float
    steady_timeout_s: float
    slis: tuple[SLIReading, ...]
    schedule: tuple[PlannedItem, ...]
    recovery: PlannedRecovery
    expectations: tuple[str, ...]
    stop_conditions: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def plan(scenario: Scenario, stack: Stack, clock: Clock, *, source: str | None = None) -> DryRunPlan:
    """The dry run of ``scenario`` on ``stack``; ``source`` names the scenario in problems
    (its file; default its name)."""
    problems: list[str] = []
    try:
        check_capabilities(scenario, stack, source=source or scenario.name)
    except ConfigError as exc:
        problems.append(str(exc))
    try:
        # What the run itself refuses first: the reference platform on an observe-only
        # stack, a component an SLI names that the stack lacks.
        check_platform(scenario, stack, source=source or scenario.name)
    except ConfigError as exc:
        problems.append(str(exc))
    slis = _probe_once(scenario.slos, stack, clock)
    for reading in slis:
        if not reading.good:
            problems.append(
                f"SLI {reading.slo!r} is outside its SLO now: {reading.shown} (good when {reading.bound})"
            )
    with tempfile.TemporaryDirectory(prefix="datadrill-dry-run-") as scratch:
        context = DrillContext(stack, Path(scratch), clock)
        schedule = tuple(_resolve(index, item, context) for index, item in enumerate(scenario.schedule))
    problems.extend(f"schedule[{p.index}] ({p.description}): {p.problem}" for p in schedule if p.problem)
    stops = []
    readings = {r.slo: r for r in slis}
    for condition in getattr(scenario, "stop_when", ()):
        text = condition.describe() if hasattr(condition, "describe") else str(condition)
        now = readings.get(getattr(condition, "slo", ""))
        crossed = getattr(condition, "crossed", None)
        if now is not None and now.value is not None:
            text += f" (now {now.shown})"
            if crossed is not None and crossed(now.value):
                problems.append(f"stop condition '{condition.describe()}' holds already: the run would stop at once")
        stops.append(text)
    return DryRunPlan(
        scenario=scenario.name,
        description=scenario.description,
        backend=stack.backend,
        warmup_s=scenario.steady_state.warmup_s,
        steady_timeout_s=scenario.steady_state.timeout_s,
        slis=slis,
        schedule=schedule,
        recovery=_recovery(scenario),
        expectations=_expectations(scenario),
        stop_conditions=tuple(stops),
        problems=tuple(problems),
    )


def _probe_once(slos: tuple[SLO, ...], stack: Stack, clock: Clock) -> tuple[SLIReading, ...]:
    env = ProbeEnv.from_stack(stack, clock)
    readings = []
    try:
        for slo in slos:
            sli = slo.sli
            try:
                probe = build_probe(sli, env)
                try:
                    sample = probe.measure()
                finally:
                    probe.close()
            except Exception as exc:  # noqa: BLE001 - a probe that cannot run is a problem to list
                sample = Sample(None, False, f"{type(exc).__name__}: {exc}")
            readings.append(
                SLIReading(
                    slo=slo.name,
                    statement=slo.statement(),
                    unit=sli.unit,
                    threshold=sli.threshold,
                    direction=sli.direction,
                    value=sample.value,
                    good=sample.good,
                    error=sample.error,
                )
            )
    finally:
        env.close()
    return tuple(readings)


def _resolve(index: int, item: Any, context: DrillContext) -> PlannedItem:
    duration = getattr(item, "duration_s", None)
    until = item.at_s + duration if duration is not None else None
    try:
        if isinstance(item, TakeCatalogBackup):
            target = _backup_target(item, context)
        elif isinstance(item, TakeReserveCopy):
            target = _reserve_target(item, context)
        else:
            target = plugin_for(item.kind).target(item, context)
    except DrillError as exc:
        return PlannedItem(index, item.at_s, until, item.kind, item.describe(), None, str(exc))
    except Exception as exc:  # noqa: BLE001 - a plugin that cannot say is a problem to list, not a crash
        problem = f"its target could not be resolved: {type(exc).__name__}: {exc}"
        return PlannedItem(index, item.at_s, until, item.kind, item.describe(), None, problem)
    return PlannedItem(index, item.at_s, until, item.kind, item.describe(), target)


def _backup_target(item: TakeCatalogBackup, context: DrillContext) -> str:
    from datadrill.faults.metadata import describe_catalog, require_table

    catalog = require_table(context, item.table, field="TakeCatalogBackup.table")
    snapshot = catalog.load_table(item.table).current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    rows = summary.additional_properties.get("total-records") if summary is not None else None
    count = f"{int(rows):,} rows now" if rows is not None else "no snapshot yet"
    return (
        f"take catalog backup {item.name!r} of {item.table} ({count}; "
        f"{describe_catalog(context.stack.catalog_uri)})"
    )


def _reserve_target(item: TakeReserveCopy, context: DrillContext) -> str:
    from datadrill.faults.metadata import require_table

    catalog = require_table(context, item.table, field="TakeReserveCopy.table")
    snapshot = catalog.load_table(item.table).current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    rows = summary.additional_properties.get("total-records") if summary is not None else None
    count = f"{int(rows):,} rows now" if rows is not None else "no snapshot yet"
    where = context.stack.paths.reserves / item.name
    return f"take reserve copy {item.name!r} of {item.table} ({count}) as Parquet into {where}"


def _recovery(scenario: Scenario) -> PlannedRecovery:
    recovery = scenario.recovery
    if isinstance(recovery, Automatic):
        return PlannedRecovery("automatic")
    if isinstance(recovery, Runbook):
        return PlannedRecovery(
            "runbook", recovery.response_delay_s, tuple(step.describe() for step in recovery.steps)
        )
    raise TypeError(f"unknown recovery {recovery!r}: expected Automatic or Runbook")


def _expectations(scenario: Scenario) -> tuple[str, ...]:
    expected = scenario.expectations
    lines = []
    if expected.detect_within_s is not None:
        lines.append(f"detected within {expected.detect_within_s:g} s")
    if expected.recover_within_s is not None:
        lines.append(f"recovered within {expected.recover_within_s:g} s")
    if expected.max_budget_burn is not None:
        lines.append(f"at most {expected.max_budget_burn:.2%} of the error budget burned")
    if scenario.verify_integrity:
        lines.append("integrity verified at the end (source reconciled against sink)")
    return tuple(lines)
