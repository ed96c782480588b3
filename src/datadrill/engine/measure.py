"""From a journal to measurements: time to detect, time to recover, error budgets, phases,
integrity, the projection at production volume, and the verdict.

Everything here is a pure function of the journal's events, so a report can be
regenerated at any time, including from the journal of a runner that was killed.

Example::

    report = measure(read_events(path), journal_path=str(path))
    report.ttd_s, report.ttr_s, report.verdict
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from datadrill.engine.cost_model import (
    ASSUMED_EFFICIENCY,
    SOURCE_CALIBRATION,
    SOURCE_LINEAR,
    SOURCE_RUN,
    CostModel,
    CostPoint,
    fit_or_reason,
    projection_row,
)
from datadrill.events import (
    AlertFired,
    BackupTaken,
    Event,
    FaultInjected,
    FaultReverted,
    HarnessError,
    IntegrityVerified,
    LeaseExpired,
    PhaseFinished,
    PhaseStarted,
    ProductionInfo,
    ProjectionCalibrated,
    PrometheusAlert,
    PrometheusWatchStarted,
    Recovered,
    ReserveTaken,
    RunFinished,
    RunStarted,
    Sample,
    StopConditionCrossed,
)
from datadrill.model.report import (
    BackupResult,
    Comparison,
    FaultResult,
    IntegrityResult,
    PathResult,
    PathStepResult,
    PhaseResult,
    Projection,
    ProjectionRow,
    PrometheusRuleResult,
    RowSource,
    RunReport,
    SeriesPoint,
    Severity,
    SLOResult,
    Stage,
    TimelineEntry,
    Verdict,
)

SECONDS_PER_DAY = 86_400.0
# Step kinds (datadrill.model.recovery) whose phases the report looks at.
REPLAY_STEP = "replay_kafka"
RECONCILE_STEP = "reconcile"
_DAMAGE = ("duplicates", "omissions", "discrepancies", "unexpected")

E = TypeVar("E")


def _of(events: Sequence[Event], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]


def _first(events: Sequence[Event], cls: type[E]) -> E | None:
    return next((e for e in events if isinstance(e, cls)), None)


def _slo_results(events: Sequence[Event], start: RunStarted, end_t: float) -> tuple[SLOResult, ...]:
    interval = start.probe_interval_s
    period_s = start.policy.period_days * SECONDS_PER_DAY
    samples: dict[str, list[SeriesPoint]] = defaultdict(list)
    for sample in _of(events, Sample):
        samples[sample.slo].append(SeriesPoint(sample.t, sample.value, sample.good))
    alerts: dict[str, float] = {}
    for alert in _of(events, AlertFired):
        alerts.setdefault(alert.slo, alert.at)
    results = []
    for slo in start.slos:
        series = samples.get(slo.name, [])
        bad_s = observed_s = 0.0
        for i, point in enumerate(series):
            # Each sample stands for the time until the next one (the last: one interval).
            nxt = (
                series[i + 1].t_s if i + 1 < len(series) else min(point.t_s + interval, max(end_t, point.t_s))
            )
            span = max(0.0, nxt - point.t_s)
            observed_s += span
            if not point.good:
                bad_s += span
        allowed = 1.0 - slo.objective
        good_ratio = 1.0 - bad_s / observed_s if observed_s > 0 else 1.0
        values = [p.value for p in series if p.value is not None]
        higher_is_better = slo.kind == "query_success"
        worst = (min(values) if higher_is_better else max(values)) if values else None
        results.append(
            SLOResult(
                name=slo.name,
                statement=slo.statement,
                sli_kind=slo.kind,
                unit=slo.unit,
                threshold=slo.threshold,
                objective=slo.objective,
                alert=slo.alert,
                samples=len(series),
                good_samples=sum(1 for p in series if p.good),
                bad_s=bad_s,
                observed_s=observed_s,
                good_ratio=good_ratio,
                budget_burned=bad_s / (allowed * observed_s) if observed_s > 0 else 0.0,
                period_budget_burned=bad_s / (allowed * period_s),
                met=good_ratio >= slo.objective,
                first_alert_s=alerts.get(slo.name),
                worst_value=worst,
                series=tuple(series),
            )
        )
    return tuple(results)


def _phases(events: Sequence[Event]) -> tuple[tuple[PhaseResult, PhaseFinished], ...]:
    """Every finished phase, with the event that finished it (its step, its extra)."""
    starts: dict[str, float] = {}
    phases = []
    for e in events:
        if isinstance(e, PhaseStarted):
            starts[e.name] = e.t
        elif isinstance(e, PhaseFinished):
            start = starts.pop(e.name, e.t)
            result = PhaseResult(
                name=e.name,
                kind=e.kind,
                start_s=start,
                duration_s=e.t - start,
                rows=e.rows,
                rate_per_s=e.rate_per_s,
                detail=e.detail,
                ok=e.ok,
            )
            phases.append((result, e))
    return tuple(phases)


def _faults(events: Sequence[Event]) -> tuple[FaultResult, ...]:
    reverts = {e.fault_id: e for e in _of(events, FaultReverted)}
    out = []
    for e in _of(events, FaultInjected):
        revert = reverts.get(e.fault_id)
        out.append(
            FaultResult(
                kind=e.kind,
                description=e.description,
                injected_s=e.t,
                reverted_s=revert.t if revert else None,
                revert_note=revert.note if revert else "not reverted (run killed?)",
            )
        )
    return tuple(out)


def _integrity(events: Sequence[Event]) -> IntegrityResult | None:
    found: dict[str, int] | None = None
    repaired = 0
    for e in _of(events, PhaseFinished):
        # What the first reconcile step found is the damage; later ones see the repair.
        if e.step == RECONCILE_STEP and e.extra and "compared_rows" in e.extra:
            extra = e.extra
            if found is None:
                found = {k: int(extra[k]) for k in _DAMAGE}
            repaired += int(extra.get("repaired_rows", 0))
    final = next((e for e in reversed(events) if isinstance(e, IntegrityVerified)), None)
    if final is None and found is None:
        return None
    if found is not None:
        damage = found
    else:
        assert final is not None
        damage = {k: int(getattr(final, k)) for k in _DAMAGE}
    return IntegrityResult(
        compared_rows=final.compared_rows if final else 0,
        duplicates=damage["duplicates"],
        omissions=damage["omissions"],
        discrepancies=damage["discrepancies"],
        unexpected=damage["unexpected"],
        repaired_rows=repaired,
        verified=final.verified if final else False,
        detail=final.detail if final else "integrity was not verified",
    )


def _projection(
    start: RunStarted,
    phases: tuple[tuple[PhaseResult, PhaseFinished], ...],
    calibration: ProjectionCalibrated | None = None,
) -> Projection | None:
    """Each recovery step projected to the production volume with a cost model (a fixed
    plus a per-row part, :mod:`datadrill.engine.cost_model`): from ``calibration`` where it
    covers the step in this run's engines, from the step's own measurements of several
    sizes, else linear from its one size. A journal without ``calibration`` (written before
    runs journaled it) is projected linearly, as it always was."""
    production = start.production
    if production is None:
        return None
    events_per_s = production.events_per_s
    table_rows = production.table_rows
    rate = start.workload_rate or 0.0
    # An observe-only run drove no workload: the traffic's rate was not datadrill's, so
    # replayed rows are not scaled to production (only reconciled rows, by the table).
    event_scale: float | None = None if start.observe_only else events_per_s / rate if rate > 0 else 1.0
    calibrated, not_calibrated = _calibrated_models(calibration)
    rows = []
    for phase, finished in phases:
        if phase.kind != "recovery_step":
            continue
        is_reconcile = finished.step == RECONCILE_STEP
        if phase.rows is not None and phase.rate_per_s and (is_reconcile or event_scale is not None):
            # Replayed events scale with the event rate (same backup age, same outage);
            # reconciled rows scale with the table: compare against the source's row count
            # (compared rows count both sides).
            source_rows = phase.rows // 2 if phase.rows else 0
            scale = table_rows / source_rows if is_reconcile and source_rows else event_scale or 1.0
            step = finished.step or ""
            rows.append(
                projection_row(
                    phase.name,
                    measured_s=phase.duration_s,
                    rows=phase.rows,
                    rate_per_s=phase.rate_per_s,
                    projected_rows=int(phase.rows * scale),
                    extra=finished.extra,
                    calibrated=calibrated.get(step),
                    not_calibrated=not_calibrated.get(step, ""),
                    production_workers=production.workers,
                    production_partitions=production.partitions,
                )
            )
        else:
            rows.append(
                ProjectionRow(phase.name, phase.duration_s, phase.rows, phase.rate_per_s, None, phase.duration_s)
            )
    if not rows:
        return None
    modelled = calibration is not None
    return Projection(
        events_per_s=events_per_s,
        table_rows=table_rows,
        rows=tuple(rows),
        total_s=sum(r.projected_s for r in rows),
        assumptions=(
            (
                f"replayed rows scale with the event rate ({events_per_s:,.0f}/s in production vs "
                f"{rate:,.0f}/s here) for the same backup age and outage; "
                if event_scale is not None
                else "observe-only: the traffic's rate here was not datadrill's, so replayed rows are "
                "not projected (they take the same time); "
            )
            + f"reconciled rows scale with the table ({table_rows:,} rows); "
            + (
                _model_assumptions(rows, calibration, production)
                if calibration is not None
                else "measured rates stay constant (no extra workers); "
            )
            + "steps without rows take the same time"
        ),
        modelled=modelled,
    )


def _calibrated_models(calibration: ProjectionCalibrated | None) -> tuple[dict[str, CostModel], dict[str, str]]:
    """The calibration's fitted model per step kind in this run's engines, and for the step
    kinds it does not give one, why not."""
    models: dict[str, CostModel] = {}
    reasons: dict[str, str] = {}
    if calibration is None:
        return models, reasons
    for info in calibration.steps:
        if info.engines != calibration.run_engines:
            reasons.setdefault(
                info.step,
                f"calibrated in {info.engines}, this run reconciles in {calibration.run_engines or 'other engines'}",
            )
            continue
        fitted = fit_or_reason([CostPoint(rows, seconds) for rows, seconds in info.points])
        if isinstance(fitted, CostModel):
            models[info.step] = fitted
            reasons.pop(info.step, None)
        else:
            reasons[info.step] = f"calibration {fitted}"
    if not calibration.steps and calibration.note:
        reasons[RECONCILE_STEP] = calibration.note
    return models, reasons


def _model_assumptions(
    rows: Sequence[ProjectionRow], calibration: ProjectionCalibrated, production: ProductionInfo
) -> str:
    """The fit behind each modelled row and its error, for the assumptions paragraph."""
    parts = []
    for r in rows:
        if r.model_source in (SOURCE_CALIBRATION, SOURCE_RUN) and r.fixed_s is not None and r.per_row_s is not None:
            beyond = (r.projected_rows or 0) / r.fit_max_rows if r.fit_max_rows else 0.0
            where = (
                f"this machine's calibration ({calibration.key}, {calibration.created_wall})"
                if r.model_source == SOURCE_CALIBRATION
                else "the step's own measurements"
            )
            parts.append(
                f"{r.phase}: {r.fixed_s:.3g} s + {r.per_row_s * 1e6:.3g} µs/row"
                + (f" over {r.parallelism:g} workers" if r.parallelism != 1 else "")
                + f", per-row part fitted from {where} "
                + (
                    f"with ±{(r.fit_error or 0):.1%} RMS error over {r.fit_points} measurements"
                    if r.fit_points > 2
                    else f"through {r.fit_points} measurements (no error estimate)"
                )
                + f" of {r.fit_min_rows or 0:,}–{r.fit_max_rows or 0:,} rows, "
                f"projected {beyond:,.0f}× beyond the largest"
                + (_other_engines(r, calibration) if r.model_source == SOURCE_CALIBRATION else "")
            )
        elif r.model_source == SOURCE_LINEAR:
            parts.append(f"{r.phase}: {r.note}")
    return (
        "each step's time is a fixed part plus a per-row part; "
        + "".join(f"{p}; " for p in parts)
        + "the fixed part is not divided among workers, the per-row part by min(workers, partitions) "
        f"at an assumed efficiency of {ASSUMED_EFFICIENCY:g}, with {_parallelism_source(production)}; "
    )


def _parallelism_source(production: ProductionInfo) -> str:
    """Whose workers and partitions a parallel step's projection divides by."""
    named = [
        f"{count:,} {what}"
        for count, what in ((production.workers, "workers"), (production.partitions, "partitions"))
        if count is not None
    ]
    if not named:
        return "the run's own workers and partitions"
    rest = "" if len(named) == 2 else " (the rest as in the run)"
    return f"production's {' and '.join(named)}{rest}"


def _other_engines(row: ProjectionRow, calibration: ProjectionCalibrated) -> str:
    """The same reconciliation projected in the other engines the calibration timed (the
    run's own engines need not be production's: a SQLite source is not a warehouse)."""
    others = []
    for info in calibration.steps:
        if info.step != RECONCILE_STEP or info.engines == calibration.run_engines:
            continue
        fitted = fit_or_reason([CostPoint(rows, seconds) for rows, seconds in info.points])
        if isinstance(fitted, CostModel) and row.measured_rows and row.projected_rows:
            alt = fitted.anchored(CostPoint(row.measured_rows, row.measured_s))
            others.append(f"{alt.seconds(row.projected_rows):,.0f} s in {info.engines} ({fitted.rows_per_s:,.0f} rows/s)")
    return f" (the same fixed part with the per-row part of other engines: {', '.join(others)})" if others else ""


def _timeline_text(e: Event) -> str | None:
    """The timeline's line for an event; None for events the timeline leaves out (samples,
    the start of each recovery step, events of newer versions)."""
    if isinstance(e, RunStarted):
        how = " (observe-only: no reference platform)" if e.observe_only else ""
        return f"run started: scenario {e.scenario} on the {e.stack} stack{how}"
    if isinstance(e, PhaseStarted):
        return None if e.kind == "recovery_step" else f"{e.name} started"
    if isinstance(e, PhaseFinished):
        status = "" if e.ok else " (FAILED)"
        return f"{e.name} finished{status}" + (f": {e.detail}" if e.detail else "")
    if isinstance(e, BackupTaken):
        return f"catalog backup '{e.name}' taken (snapshot {e.snapshot_id})"
    if isinstance(e, ReserveTaken):
        keys = f", keys {e.key_min}..{e.key_max}" if e.key_min is not None else ""
        return (
            f"reserve copy '{e.name}' of {e.table} taken: {e.rows:,} rows at snapshot "
            f"{e.snapshot_id}{keys}, {e.files} Parquet file(s) in {e.path}"
        )
    if isinstance(e, FaultInjected):
        return f"FAULT: {e.description}" + (f" — took effect: {e.landed}" if e.landed else "")
    if isinstance(e, FaultReverted):
        return f"fault reverted: {e.description} — {e.note}"
    if isinstance(e, AlertFired):
        return f"ALERT: {e.slo} ({e.rule})"
    if isinstance(e, Recovered):
        return f"every SLI inside its SLO since t+{e.stable_since:.1f}s (stable {e.stable_for_s:.1f}s)"
    if isinstance(e, IntegrityVerified):
        return f"integrity {'verified' if e.verified else 'NOT verified'}: {e.detail}"
    if isinstance(e, RunFinished):
        return f"verdict: {e.verdict.value}"
    if isinstance(e, HarnessError):
        return f"ERROR: {e.message}"
    if isinstance(e, LeaseExpired):
        return f"the runner's lease expired: the stack reverted {e.reverted} fault(s) by itself"
    if isinstance(e, StopConditionCrossed):
        return f"STOP: {e.condition} ({e.detail})"
    if isinstance(e, PrometheusAlert) and e.state != "inactive":
        return f"Prometheus alert {e.rule} {e.state}" + (f" (SLO {e.slo})" if e.slo else "")
    return None


def _prometheus_rules(
    events: Sequence[Event], fault_start: float | None
) -> tuple[str | None, tuple[PrometheusRuleResult, ...]]:
    """Each watched Prometheus rule: first pending and firing (after the first fault, when
    there was one: an alert still firing from before says nothing of this fault)."""
    watch = _first(events, PrometheusWatchStarted)
    if watch is None:
        return None, ()
    rules = {r.name: (r.slo, r.severity) for r in watch.rules}
    since = fault_start if fault_start is not None else 0.0
    pending: dict[str, float] = {}
    firing: dict[str, float] = {}
    for alert in _of(events, PrometheusAlert):
        rules.setdefault(alert.rule, (alert.slo, alert.severity))
        if alert.t < since:
            continue
        if alert.state == "pending":
            pending.setdefault(alert.rule, alert.t)
        elif alert.state == "firing":
            firing.setdefault(alert.rule, alert.t)
            pending.setdefault(alert.rule, alert.t)  # a rule without `for` fires at once
    own: dict[str, float] = {}
    for fired in _of(events, AlertFired):
        if fault_start is not None and fired.at >= fault_start:
            own.setdefault(fired.slo, fired.at - fault_start)
    results = []
    for name, (slo, severity) in rules.items():
        fired_at = firing.get(name)
        results.append(
            PrometheusRuleResult(
                rule=name,
                slo=slo,
                severity=severity,
                pending_s=pending.get(name),
                firing_s=fired_at,
                time_to_fire_s=fired_at - fault_start
                if fired_at is not None and fault_start is not None
                else None,
                datadrill_ttd_s=own.get(slo),
            )
        )
    # Fired first, fastest first; then the rules that never fired, by name.
    results.sort(key=lambda r: (r.time_to_fire_s is None, r.time_to_fire_s or 0.0, r.rule))
    return watch.url, tuple(results)


def _timeline(events: Sequence[Event]) -> tuple[TimelineEntry, ...]:
    out = []
    for e in events:
        text = _timeline_text(e)
        if text is not None:
            out.append(TimelineEntry(e.t, e.wall, e.type, text))
    return tuple(out)


def judge(
    report: RunReport, *, status: str, status_reasons: tuple[str, ...] = ()
) -> tuple[Verdict, tuple[str, ...]]:
    """The verdict of a run, with one reason per line. ``status`` is the runner's own
    outcome: "ok", "aborted" (steady state not reached, interrupted) or "error"."""
    reasons = list(status_reasons)
    if status == "error":
        return Verdict.ERROR, tuple(reasons)
    if status == "aborted":
        return Verdict.ABORTED, tuple(reasons)
    verdict = Verdict.PASSED
    if report.fault_start_s is not None and report.detect_within_s is not None and report.detected_s is None:
        reasons.append("no alert fired after the fault")
        return Verdict.NOT_DETECTED, tuple(reasons)
    if report.recovered_s is None:
        reasons.append("the SLIs never stayed inside their SLOs for the stabilisation window")
        verdict = Verdict.NOT_RECOVERED
    if report.integrity is not None and not report.integrity.verified:
        reasons.append(f"integrity not verified: {report.integrity.detail}")
        verdict = Verdict.NOT_RECOVERED
    if verdict is Verdict.NOT_RECOVERED:
        return verdict, tuple(reasons)
    if (
        report.ttd_s is not None
        and report.detect_within_s is not None
        and report.ttd_s > report.detect_within_s
    ):
        reasons.append(f"detected after {report.ttd_s:.1f} s, expected within {report.detect_within_s:g} s")
        verdict = Verdict.SLO_VIOLATED
    if (
        report.ttr_s is not None
        and report.recover_within_s is not None
        and report.ttr_s > report.recover_within_s
    ):
        reasons.append(f"recovered after {report.ttr_s:.1f} s, expected within {report.recover_within_s:g} s")
        verdict = Verdict.SLO_VIOLATED
    if report.max_budget_burn is not None:
        period = f"{report.budget_period_days:g}-day " if report.budget_period_days else "period's "
        for slo in report.slos:
            if slo.period_budget_burned > report.max_budget_burn:
                reasons.append(
                    f"{slo.name} burned {slo.period_budget_burned * 100:.2f}% of the {period}budget, "
                    f"more than the {report.max_budget_burn * 100:g}% the drill allows"
                )
                verdict = Verdict.SLO_VIOLATED
    return verdict, tuple(reasons)


def _severity(
    slos: tuple[SLOResult, ...],
    integrity: IntegrityResult | None,
    freeze: bool,
    postmortem: bool,
    alerted: bool,
) -> Severity:
    if freeze or (integrity is not None and not integrity.verified):
        return Severity.SEV1
    if postmortem or any(not s.met for s in slos) or (integrity is not None and integrity.affected):
        return Severity.SEV2
    if alerted:
        return Severity.SEV3
    return Severity.NONE


def _lessons(
    report: RunReport, start: RunStarted
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    well: list[str] = []
    badly: list[str] = []
    actions: list[str] = []
    if report.ttd_s is not None:
        line = f"Detection took {report.ttd_s:.1f} s"
        if report.detect_within_s is None or report.ttd_s <= report.detect_within_s:
            well.append(
                line
                + (f", within the expected {report.detect_within_s:g} s" if report.detect_within_s else "")
            )
        else:
            badly.append(line + f", slower than the expected {report.detect_within_s:g} s")
            actions.append(
                "Tighten the alert rules of the first SLO to see this fault (shorter for-duration or a burn-rate alert)"
            )
    elif report.fault_start_s is not None:
        badly.append("No alert fired: the fault went unnoticed by every SLO")
        actions.append("Add an SLO and alert that sees this fault")
    if report.ttr_s is not None:
        line = f"Recovery took {report.ttr_s:.1f} s"
        if report.recover_within_s is None or report.ttr_s <= report.recover_within_s:
            well.append(
                line
                + (f", within the expected {report.recover_within_s:g} s" if report.recover_within_s else "")
            )
        else:
            badly.append(line + f", slower than the expected {report.recover_within_s:g} s")
    for slo in report.slos:
        if slo.met:
            well.append(
                f"SLO '{slo.name}' held: {slo.good_ratio * 100:.2f}% good vs {slo.objective * 100:g}% objective"
            )
        else:
            badly.append(
                f"SLO '{slo.name}' below its objective during the drill: {slo.good_ratio * 100:.2f}% good vs "
                f"{slo.objective * 100:g}%, {slo.period_budget_burned * 100:.1f}% of the "
                f"{start.policy.period_days:g}-day error budget burned (what the fault cost)"
            )
    for backup in report.backups:
        if backup.age_at_fault_s is not None:
            badly.append(
                f"The only catalog backup ('{backup.name}') was {backup.age_at_fault_s:.1f} s old when the fault hit: "
                "everything committed since had to be rebuilt"
            )
            actions.append(
                f"Back up the catalog more often than every {backup.age_at_fault_s:.0f} s of commits, or keep "
                "metadata files long enough to re-register from them"
            )
    if report.integrity is not None:
        if report.integrity.verified:
            well.append(
                f"Integrity verified: {report.integrity.compared_rows:,} rows compared, nothing lost or duplicated"
            )
        else:
            badly.append(f"Integrity not verified: {report.integrity.detail}")
            actions.append("Find and repair the rows reconciliation reports before closing the incident")
        if report.integrity.affected:
            badly.append(
                f"{report.integrity.affected:,} rows were affected and {report.integrity.repaired_rows:,} repaired"
            )
    if report.replay_rate_per_s:
        well.append(f"Kafka replay ran at {report.replay_rate_per_s:,.0f} rows/s")
    if (
        report.projection is not None
        and report.recover_within_s is not None
        and report.projection.total_s > report.recover_within_s
    ):
        badly.append(
            f"At production volume this recovery is projected to take {report.projection.total_s:,.0f} s, "
            f"over the {report.recover_within_s:g} s expected"
        )
        actions.append(
            "Speed up replay and reconciliation at production volume (more workers, partition-parallel backfill)"
        )
    return tuple(well), tuple(badly), tuple(actions)


# A Compare's phases (datadrill.recovery.compare writes these keys into their extra).
COMPARE_STEP = "compare"
COMPARE_PATH_KEY = "compare_path"
COMPARE_MEASURED_KEY = "compare_measured"
COMPARE_SUMMARY_KEY = "compare"
# Where recovered rows came from, by the kind of the step that brought them.
_ROW_SOURCES = {
    "restore_catalog_backup": "restored catalog backup (rows in its snapshot)",
    "reregister_from_metadata": "re-registered metadata",
    "replay_kafka": "Kafka replay",
    "backfill_from_reserve": "reserve backfill",
    "resnapshot_from_source": "re-snapshot from the source",
}
# Faults that destroy what a Kafka replay needs (datadrill.model.faults kinds).
_KAFKA_LOSS_FAULTS = ("kafka.retention", "kafka.topic_deleted")

Phases = tuple[tuple[PhaseResult, PhaseFinished], ...]


def _measured_only(finished: PhaseFinished) -> bool:
    """A phase that ran a step in its measurement mode: it applied nothing."""
    return bool(finished.extra and finished.extra.get(COMPARE_MEASURED_KEY))


def _applied(phases: Phases) -> Phases:
    """The phases that changed the platform: not a Compare's measurements, nor the Compare
    itself (its applied steps are phases of their own)."""
    return tuple((p, f) for p, f in phases if not _measured_only(f) and f.step != COMPARE_STEP)


def _comparison(
    phases: Phases,
    recover_within_s: float | None,
    events_per_s: float | None,
    project: Callable[[Phases], Projection | None],
) -> Comparison | None:
    """The paths of the run's Compare side by side, each step projected the way the
    report projects every step (``project``), from the journal's phases alone."""
    summary = next(
        (f for _, f in phases if f.step == COMPARE_STEP and f.extra and COMPARE_SUMMARY_KEY in f.extra), None
    )
    if summary is None or summary.extra is None:
        return None
    info = summary.extra[COMPARE_SUMMARY_KEY]
    members = tuple((p, f) for p, f in phases if f.extra and COMPARE_PATH_KEY in f.extra)
    projection = project(members)
    projected = {r.phase: r for r in projection.rows} if projection is not None else {}
    paths = []
    for path in info.get("paths", []):
        name = str(path.get("name", ""))
        steps = []
        for phase, finished in members:
            if finished.extra is None or finished.extra.get(COMPARE_PATH_KEY) != name:
                continue
            row = projected.get(phase.name)
            step_rows: int | None
            step_s: float | None
            if projection is None:  # no production volume: each step as measured, as the report says
                step_rows, step_s = phase.rows, phase.duration_s
            else:
                step_rows = row.projected_rows if row is not None else None
                step_s = row.projected_s if row is not None else None
            steps.append(
                PathStepResult(
                    phase=phase.name,
                    step=finished.step or "",
                    measured=_measured_only(finished),
                    ok=phase.ok,
                    measured_s=phase.duration_s,
                    rows=phase.rows,
                    rate_per_s=phase.rate_per_s,
                    projected_rows=step_rows,
                    projected_s=step_s if phase.ok else None,
                )
            )
        # A path whose steps did not all run and succeed has no projected duration.
        complete = len(steps) == len(path.get("steps", [])) and all(s.projected_s is not None for s in steps)
        projected_s = sum(s.projected_s or 0.0 for s in steps) if complete and steps else None
        counted = [s.rows for s in steps if s.rows is not None]
        paths.append(
            PathResult(
                name=name,
                applied=bool(path.get("applied")),
                steps=tuple(steps),
                measured_s=sum(s.measured_s for s in steps),
                rows=sum(counted) if counted else None,
                projected_s=projected_s,
                meets_objective=projected_s <= recover_within_s
                if projected_s is not None and recover_within_s is not None
                else None,
            )
        )
    assumptions = (
        "paths not applied ran each step's measurement mode: the read side of its work (finding and "
        "reading the rows) with no writes, so their time leaves out writing the rows and, for a "
        "re-snapshot, the relay and sink carrying them"
    )
    if projection is not None and projection.assumptions:
        assumptions = f"{projection.assumptions}; {assumptions}"
    return Comparison(
        applied=str(info.get("apply", "")),
        paths=tuple(paths),
        recover_within_s=recover_within_s,
        events_per_s=events_per_s,
        assumptions=assumptions,
    )


def _row_sources(phases: Phases) -> tuple[RowSource, ...]:
    """Which rows came back from where, from the row counts of the steps that applied them."""
    out = []
    for phase, finished in _applied(phases):
        if phase.kind != "recovery_step" or not phase.ok:
            continue
        if finished.step == RECONCILE_STEP:
            extra = finished.extra or {}
            if "inserted_rows" in extra:  # the rows the repair brought back, not those it deleted
                inserted = int(extra.get("inserted_rows", 0))
                if inserted:
                    out.append(RowSource("repair from the source (rows inserted)", phase.name, inserted))
                continue
            repaired = int(extra.get("repaired_rows", 0))  # a journal before inserted_rows
            if repaired:
                out.append(RowSource("repair from the source (rows deleted or inserted)", phase.name, repaired))
        elif finished.step in _ROW_SOURCES and phase.rows:
            out.append(RowSource(_ROW_SOURCES[finished.step], phase.name, phase.rows))
    return tuple(out)


def _stages(events: Sequence[Event], phases: Phases) -> tuple[Stage, ...]:
    """The incident in four stages, as the run lived them: the loss until it was detected,
    the recovery paths weighed (measured, not applied), the recovery applied, and the
    reconciliation and verification."""
    stages: list[Stage] = []
    faults = _of(events, FaultInjected)
    if faults:
        alert = next((a for a in _of(events, AlertFired) if a.at >= faults[0].t), None)
        lines = [f"t+{f.t:.1f} s: {f.description}" for f in faults]
        end = max(f.t for f in faults)
        if alert is not None:
            lines.append(f"t+{alert.at:.1f} s: alert on {alert.slo}, {alert.at - faults[0].t:.1f} s after the first fault")
            end = max(end, alert.at)
        stages.append(Stage("Loss and detection", faults[0].t, end, tuple(lines)))

    def stage(name: str, chosen: Phases) -> None:
        if not chosen:
            return
        lines = tuple(
            f"t+{p.start_s:.1f} s: {p.name} — "
            + (f"{p.rows:,} rows in " if p.rows is not None else "")
            + f"{p.duration_s:.1f} s"
            + ("" if p.ok else " (FAILED)")
            for p, _ in chosen
        )
        start = min(p.start_s for p, _ in chosen)
        stages.append(Stage(name, start, max(p.start_s + p.duration_s for p, _ in chosen), lines))

    steps = tuple((p, f) for p, f in phases if p.kind == "recovery_step" and f.step != COMPARE_STEP)
    # The paths are weighed on the loss as the first steps left it (a stale restore): those
    # steps belong to the weighing; what finished after the last measurement is the
    # recovery. Journal order, not times: steps can take no measurable time.
    measured = [i for i, (_, f) in enumerate(steps) if _measured_only(f)]
    split = measured[-1] + 1 if measured else 0
    repairs = tuple((p, f) for p, f in steps[:split] if f.step != RECONCILE_STEP)
    stage("Recovery paths weighed", repairs)
    stage("Recovery", _applied(tuple((p, f) for p, f in steps[split:] if f.step != RECONCILE_STEP)))
    checks = tuple((p, f) for p, f in _applied(steps) if f.step == RECONCILE_STEP)
    stage("Reconciliation and verification", checks + tuple((p, f) for p, f in phases if p.kind == "verification"))
    return tuple(stages)


def _incident_actions(
    events: Sequence[Event], phases: Phases, comparison: Comparison, row_sources: tuple[RowSource, ...]
) -> tuple[str, ...]:
    """Action items of an incident whose recovery weighed paths: backup frequency against
    Kafka's retention, the reserve's freshness, and the objective each path meets."""
    actions: list[str] = []
    faults = _of(events, FaultInjected)
    kafka_losses = [f for f in faults if f.kind in _KAFKA_LOSS_FAULTS]
    # The loss recovered from: the first fault that is not Kafka's own (the catalog entry).
    loss = next((f for f in faults if f.kind not in _KAFKA_LOSS_FAULTS), None)
    # Offsets the applied replays found deleted before they could read them.
    unreachable = sum(
        int((f.extra or {}).get("unreachable_total", 0)) for _, f in _applied(phases) if f.step == REPLAY_STEP
    )
    out_of_reach = f": {unreachable:,} offsets were out of the replay's reach" if unreachable else ""
    if loss is not None:
        for backup in _of(events, BackupTaken):
            deleted = [f for f in kafka_losses if backup.t <= f.t <= loss.t]
            if deleted:
                actions.append(
                    f"Back up the catalog more often than Kafka keeps records: backup '{backup.name}' was "
                    f"{loss.t - backup.t:.1f} s old when the table was lost, and Kafka had lost records since "
                    f"({deleted[0].description} at t+{deleted[0].t:.1f} s), so a replay could not close the "
                    f"gap{out_of_reach}"
                )
        for reserve in _of(events, ReserveTaken):
            if reserve.t <= loss.t:
                from_source = sum(r.rows for r in row_sources if "source" in r.source)
                tail = (
                    f"; {from_source:,} rows were in neither Kafka nor the reserve and came from the source"
                    if from_source
                    else ""
                )
                actions.append(
                    f"Keep reserve copies fresher than Kafka's retention: reserve '{reserve.name}' was "
                    f"{loss.t - reserve.t:.1f} s old when the table was lost{tail}"
                )
    objective = comparison.recover_within_s
    volume = f" at {comparison.events_per_s:,.0f} events/s" if comparison.events_per_s else ""
    for path in comparison.paths:
        role = "applied" if path.applied else "measured"
        if path.projected_s is None:
            actions.append(f"Recovery path '{path.name}' ({role}) could not be projected{volume}: measure it again")
        elif objective is None:
            actions.append(
                f"Recovery path '{path.name}' ({role}) is projected to take {path.projected_s:,.0f} s{volume}; "
                "set expectations.recover_within_s to judge it"
            )
        else:
            meets = "meets" if path.meets_objective else "misses"
            actions.append(
                f"Recovery path '{path.name}' ({role}) {meets} the {objective:g} s recovery objective{volume}: "
                f"projected {path.projected_s:,.0f} s"
            )
    if objective is not None and not any(p.meets_objective for p in comparison.paths):
        actions.append(
            "No recovery path meets the recovery objective at production volume: add workers and partitions "
            "to the fastest path, or take backups and reserves often enough to shrink the gap"
        )
    return tuple(actions)


def _observe_only_note(report: RunReport) -> str:
    from datadrill.engine.observe import OBSERVE_ONLY_NOTE, OBSERVE_ONLY_SKIPPED

    # A caller's own verification (IntegrityVerified) still ran; only the reference one is skipped.
    skipped = OBSERVE_ONLY_SKIPPED if report.integrity is None else "no workload or canaries were driven"
    return f"{OBSERVE_ONLY_NOTE} ({skipped})"


def _unfinished_reasons(events: Sequence[Event]) -> tuple[str, ...]:
    expired = _first(events, LeaseExpired)
    if expired is None:
        return ("the journal ends before the run finished (runner killed?)",)
    failed = f"; {expired.failed} could not be reverted (run 'datadrill cleanup')" if expired.failed else ""
    return (
        f"the runner died (it stopped renewing its {expired.lease_s or 0:g} s lease at about "
        f"t+{max(0.0, expired.t - (expired.lease_s or 0)):.1f} s); the stack reverted "
        f"{expired.reverted} fault(s) by lease expiry{failed}",
    )


def measure(events: Sequence[Event], *, journal_path: str = "") -> RunReport:
    """Derive a :class:`RunReport` from a journal's events (:func:`datadrill.events.read_events`)."""
    start = _first(events, RunStarted)
    if start is None:
        raise ValueError("the journal has no run_started event")
    finished = _first(events, RunFinished)
    end_t = events[-1].t
    fault = _first(events, FaultInjected)
    # Only an alert at or after the first fault is a detection: one before it means the
    # platform broke on its own (the run aborts), so time to detect is never negative.
    alert = next((e for e in _of(events, AlertFired) if fault is not None and e.at >= fault.t), None)
    recovered = _first(events, Recovered)
    fault_start = fault.t if fault else None
    detected = alert.at if alert else None
    recovered_s = recovered.stable_since if recovered else None
    slos = _slo_results(events, start, end_t)
    phases = _phases(events)
    integrity = _integrity(events)
    max_period_burn = max((s.period_budget_burned for s in slos), default=0.0)
    freeze = max_period_burn >= start.policy.freeze_at
    postmortem = max_period_burn >= start.policy.postmortem_at
    backups = tuple(
        BackupResult(
            name=e.name,
            taken_s=e.t,
            snapshot_id=e.snapshot_id,
            rows_at_backup=e.rows,
            age_at_fault_s=fault_start - e.t if fault_start is not None and e.t <= fault_start else None,
        )
        for e in _of(events, BackupTaken)
    )
    # A Compare's measurements applied nothing: the replay and projection are of what was applied.
    replay = next((p for p, finished in _applied(phases) if finished.step == REPLAY_STEP), None)
    calibration = _first(events, ProjectionCalibrated)
    report = RunReport(
        run_id=start.run_id,
        scenario=start.scenario,
        description=start.description,
        verdict=finished.verdict if finished else Verdict.ABORTED,
        reasons=finished.reasons if finished else _unfinished_reasons(events),
        complete=finished is not None,
        started_wall=start.wall,
        duration_s=end_t,
        seed=start.seed,
        stack=start.stack,
        fault_start_s=fault_start,
        detected_s=detected,
        ttd_s=detected - fault_start if detected is not None and fault_start is not None else None,
        recovered_s=recovered_s,
        ttr_s=recovered_s - fault_start if recovered_s is not None and fault_start is not None else None,
        detect_within_s=start.expectations.detect_within_s,
        recover_within_s=start.expectations.recover_within_s,
        severity=Severity.NONE,
        release_freeze=freeze,
        postmortem_required=postmortem,
        probe_interval_s=start.probe_interval_s,
        stabilisation_s=start.stabilisation_s,
        slos=slos,
        phases=tuple(p for p, _ in phases),
        faults=_faults(events),
        integrity=integrity,
        backups=backups,
        rows_replayed=replay.rows if replay else None,
        replay_rate_per_s=replay.rate_per_s if replay else None,
        projection=_projection(start, _applied(phases), calibration),
        timeline=_timeline(events),
        journal_path=journal_path,
        max_budget_burn=start.expectations.max_budget_burn,
        budget_period_days=start.policy.period_days,
    )
    prometheus_url, prometheus_rules = _prometheus_rules(events, fault_start)
    report = replace(report, prometheus_url=prometheus_url, prometheus_rules=prometheus_rules)
    if start.observe_only:
        report = replace(report, notes=(_observe_only_note(report),))
    severity = _severity(slos, integrity, freeze, postmortem, alerted=detected is not None)
    report = replace(report, severity=severity)
    well, badly, actions = _lessons(report, start)
    report = replace(report, went_well=well, went_badly=badly, action_items=actions)
    comparison = _comparison(
        phases,
        start.expectations.recover_within_s,
        start.production.events_per_s if start.production is not None else None,
        lambda chosen: _projection(start, chosen, calibration),
    )
    if comparison is None:
        return report
    row_sources = _row_sources(phases)
    return replace(
        report,
        comparison=comparison,
        row_sources=row_sources,
        stages=_stages(events, phases),
        action_items=report.action_items + _incident_actions(events, phases, comparison, row_sources),
    )
