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
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

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
    PrometheusAlert,
    PrometheusWatchStarted,
    Recovered,
    RunFinished,
    RunStarted,
    Sample,
    StopConditionCrossed,
)
from datadrill.model.report import (
    BackupResult,
    FaultResult,
    IntegrityResult,
    PhaseResult,
    Projection,
    ProjectionRow,
    PrometheusRuleResult,
    RunReport,
    SeriesPoint,
    Severity,
    SLOResult,
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
    start: RunStarted, phases: tuple[tuple[PhaseResult, PhaseFinished], ...]
) -> Projection | None:
    production = start.production
    if production is None:
        return None
    events_per_s = production.events_per_s
    table_rows = production.table_rows
    rate = start.workload_rate or 0.0
    # An observe-only run drove no workload: the traffic's rate was not datadrill's, so
    # replayed rows are not scaled to production (only reconciled rows, by the table).
    event_scale: float | None = None if start.observe_only else events_per_s / rate if rate > 0 else 1.0
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
            projected_rows: int | None = int(phase.rows * scale)
            projected_s = int(phase.rows * scale) / phase.rate_per_s
        else:
            projected_rows, projected_s = None, phase.duration_s
        rows.append(
            ProjectionRow(
                phase.name, phase.duration_s, phase.rows, phase.rate_per_s, projected_rows, projected_s
            )
        )
    if not rows:
        return None
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
            + f"reconciled rows scale with the table ({table_rows:,} rows); measured rates stay "
            "constant (no extra workers); steps without rows take the same time"
        ),
    )


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
    replay = next((p for p, finished in phases if finished.step == REPLAY_STEP), None)
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
        projection=_projection(start, phases),
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
    return replace(report, went_well=well, went_badly=badly, action_items=actions)
