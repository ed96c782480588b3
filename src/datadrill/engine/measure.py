"""From a journal to measurements: time to detect, time to recover, error budgets, phases,
integrity, the projection at production volume, and the verdict.

Everything here is a pure function of the journal's events, so a report can be
regenerated at any time, including from the journal of a runner that was killed.

Example::

    report = measure(read_journal(path), journal_path=str(path))
    report.ttd_s, report.ttr_s, report.verdict
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from datadrill.model.report import (
    BackupResult,
    FaultResult,
    IntegrityResult,
    PhaseResult,
    Projection,
    ProjectionRow,
    RunReport,
    SeriesPoint,
    Severity,
    SLOResult,
    TimelineEntry,
    Verdict,
)

SECONDS_PER_DAY = 86_400.0


def _first(events: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((e for e in events if e["type"] == type_), None)


def _slo_results(events: list[dict[str, Any]], start: dict[str, Any], end_t: float) -> tuple[SLOResult, ...]:
    interval = float(start.get("probe_interval_s", 0.5))
    period_s = float(start.get("policy", {}).get("period_days", 28)) * SECONDS_PER_DAY
    samples: dict[str, list[SeriesPoint]] = defaultdict(list)
    for e in events:
        if e["type"] == "sample":
            value = e.get("value")
            samples[e["slo"]].append(
                SeriesPoint(float(e["t"]), None if value is None else float(value), bool(e["good"]))
            )
    alerts = {}
    for e in events:
        if e["type"] == "alert_fired" and e["slo"] not in alerts:
            alerts[e["slo"]] = float(e["t"])
    results = []
    for slo in start.get("slos", []):
        series = samples.get(slo["name"], [])
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
        allowed = 1.0 - float(slo["objective"])
        good_ratio = 1.0 - bad_s / observed_s if observed_s > 0 else 1.0
        values = [p.value for p in series if p.value is not None]
        higher_is_better = slo["kind"] == "query_success"
        worst = (min(values) if higher_is_better else max(values)) if values else None
        results.append(
            SLOResult(
                name=slo["name"],
                statement=slo["statement"],
                sli_kind=slo["kind"],
                unit=slo["unit"],
                threshold=slo.get("threshold"),
                objective=float(slo["objective"]),
                alert=slo["alert"],
                samples=len(series),
                good_samples=sum(1 for p in series if p.good),
                bad_s=bad_s,
                observed_s=observed_s,
                good_ratio=good_ratio,
                budget_burned=bad_s / (allowed * observed_s) if observed_s > 0 else 0.0,
                period_budget_burned=bad_s / (allowed * period_s),
                met=good_ratio >= float(slo["objective"]),
                first_alert_s=alerts.get(slo["name"]),
                worst_value=worst,
                series=tuple(series),
            )
        )
    return tuple(results)


def _phases(events: list[dict[str, Any]]) -> tuple[PhaseResult, ...]:
    starts: dict[str, float] = {}
    phases = []
    for e in events:
        if e["type"] == "phase_started":
            starts[e["name"]] = float(e["t"])
        elif e["type"] == "phase_finished":
            start = starts.pop(e["name"], float(e["t"]) - float(e.get("duration_s", 0.0)))
            phases.append(
                PhaseResult(
                    name=e["name"],
                    kind=e["kind"],
                    start_s=start,
                    duration_s=float(e["t"]) - start,
                    rows=e.get("rows"),
                    rate_per_s=e.get("rate_per_s"),
                    detail=e.get("detail", ""),
                    ok=bool(e.get("ok", True)),
                )
            )
    return tuple(phases)


def _faults(events: list[dict[str, Any]]) -> tuple[FaultResult, ...]:
    reverts = {e["fault_id"]: e for e in events if e["type"] == "fault_reverted"}
    out = []
    for e in events:
        if e["type"] == "fault_injected":
            revert = reverts.get(e["fault_id"])
            out.append(
                FaultResult(
                    kind=e["kind"],
                    description=e["description"],
                    injected_s=float(e["t"]),
                    reverted_s=float(revert["t"]) if revert else None,
                    revert_note=revert.get("note", "") if revert else "not reverted (run killed?)",
                )
            )
    return tuple(out)


def _integrity(events: list[dict[str, Any]]) -> IntegrityResult | None:
    found: dict[str, int] | None = None
    repaired = 0
    for e in events:
        if e["type"] == "phase_finished" and e.get("extra") and "compared_rows" in e["extra"]:
            extra = e["extra"]
            if found is None:
                found = {k: int(extra[k]) for k in ("duplicates", "omissions", "discrepancies", "unexpected")}
            repaired += int(extra.get("repaired_rows", 0))
    final = next((e for e in reversed(events) if e["type"] == "integrity_verified"), None)
    if final is None and found is None:
        return None
    if found is not None:
        damage = found
    else:
        assert final is not None
        damage = {k: int(final[k]) for k in ("duplicates", "omissions", "discrepancies", "unexpected")}
    return IntegrityResult(
        compared_rows=int(final["compared_rows"]) if final else 0,
        duplicates=damage["duplicates"],
        omissions=damage["omissions"],
        discrepancies=damage["discrepancies"],
        unexpected=damage["unexpected"],
        repaired_rows=repaired,
        verified=bool(final["verified"]) if final else False,
        detail=final.get("detail", "") if final else "integrity was not verified",
    )


def _projection(
    start: dict[str, Any], phases: tuple[PhaseResult, ...], integrity: IntegrityResult | None
) -> Projection | None:
    production = start.get("production")
    if not production:
        return None
    events_per_s = float(production["events_per_s"])
    table_rows = int(production["table_rows"])
    rate = float(start.get("workload_rate") or 0.0)
    event_scale = events_per_s / rate if rate > 0 else 1.0
    rows = []
    for phase in phases:
        if phase.kind != "recovery_step":
            continue
        if phase.rows is not None and phase.rate_per_s:
            # Replayed events scale with the event rate (same backup age, same outage);
            # compared rows scale with the table.
            is_reconcile = "reconcile" in phase.name
            # Reconciled rows scale with the table: compare against the source's row count
            # (compared rows count both sides).
            source_rows = phase.rows // 2 if phase.rows else 0
            scale = table_rows / source_rows if is_reconcile and source_rows else event_scale
            projected_rows = int(phase.rows * scale)
            projected_s = projected_rows / phase.rate_per_s
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
            f"replayed rows scale with the event rate ({events_per_s:,.0f}/s in production vs "
            f"{rate:,.0f}/s here) for the same backup age and outage; reconciled rows scale with the "
            f"table ({table_rows:,} rows); measured rates stay constant (no extra workers); steps "
            "without rows take the same time"
        ),
    )


def _timeline(events: list[dict[str, Any]]) -> tuple[TimelineEntry, ...]:
    out = []
    for e in events:
        kind, text = e["type"], None
        if kind == "run_started":
            text = f"run started: scenario {e['scenario']} on the {e.get('stack', '?')} stack"
        elif kind == "phase_started" and e["kind"] != "recovery_step":
            text = f"{e['name']} started"
        elif kind == "phase_finished":
            status = "" if e.get("ok", True) else " (FAILED)"
            text = f"{e['name']} finished{status}" + (f": {e['detail']}" if e.get("detail") else "")
        elif kind == "backup_taken":
            text = f"catalog backup '{e['name']}' taken (snapshot {e.get('snapshot_id')})"
        elif kind == "fault_injected":
            text = f"FAULT: {e['description']}"
        elif kind == "fault_reverted":
            text = f"fault reverted: {e['description']} — {e.get('note', '')}"
        elif kind == "alert_fired":
            text = f"ALERT: {e['slo']} ({e['rule']})"
        elif kind == "recovered":
            text = (
                f"every SLI inside its SLO since t+{e['stable_since']:.1f}s (stable {e['stable_for_s']:.1f}s)"
            )
        elif kind == "integrity_verified":
            text = f"integrity {'verified' if e['verified'] else 'NOT verified'}: {e.get('detail', '')}"
        elif kind == "run_finished":
            text = f"verdict: {e['verdict']}"
        elif kind == "error":
            text = f"ERROR: {e['message']}"
        if text is not None:
            out.append(TimelineEntry(float(e["t"]), e["wall"], kind, text))
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
    report: RunReport, start: dict[str, Any]
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
                f"SLO '{slo.name}' missed: {slo.good_ratio * 100:.2f}% good vs {slo.objective * 100:g}% objective, "
                f"{slo.period_budget_burned * 100:.1f}% of the {start.get('policy', {}).get('period_days', 28):g}-day "
                "error budget burned"
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


def measure(events: list[dict[str, Any]], *, journal_path: str = "") -> RunReport:
    """Derive a :class:`RunReport` from journal events."""
    start = _first(events, "run_started")
    if start is None:
        raise ValueError("the journal has no run_started event")
    finished = _first(events, "run_finished")
    end_t = float(events[-1]["t"])
    fault = _first(events, "fault_injected")
    alert = _first(events, "alert_fired")
    recovered = _first(events, "recovered")
    fault_start = float(fault["t"]) if fault else None
    detected = float(alert["t"]) if alert else None
    recovered_s = float(recovered["stable_since"]) if recovered else None
    slos = _slo_results(events, start, end_t)
    phases = _phases(events)
    integrity = _integrity(events)
    policy = start.get("policy", {})
    max_period_burn = max((s.period_budget_burned for s in slos), default=0.0)
    freeze = max_period_burn >= float(policy.get("freeze_at", 1.0))
    postmortem = max_period_burn >= float(policy.get("postmortem_at", 0.2))
    backups = tuple(
        BackupResult(
            name=e["name"],
            taken_s=float(e["t"]),
            snapshot_id=e.get("snapshot_id"),
            rows_at_backup=e.get("rows"),
            age_at_fault_s=(fault_start - float(e["t"]))
            if fault_start is not None and float(e["t"]) <= fault_start
            else None,
        )
        for e in events
        if e["type"] == "backup_taken"
    )
    replay = next((p for p in phases if p.kind == "recovery_step" and p.name.startswith("replay")), None)
    expectations = start.get("expectations", {})
    report = RunReport(
        run_id=start.get("run_id", ""),
        scenario=start["scenario"],
        description=start.get("description", ""),
        verdict=Verdict(finished["verdict"]) if finished else Verdict.ABORTED,
        reasons=tuple(finished.get("reasons", ()))
        if finished
        else ("the journal ends before the run finished (runner killed?)",),
        complete=finished is not None,
        started_wall=start["wall"],
        duration_s=end_t,
        seed=int(start.get("seed", 0)),
        stack=start.get("stack", "embedded"),
        fault_start_s=fault_start,
        detected_s=detected,
        ttd_s=detected - fault_start if detected is not None and fault_start is not None else None,
        recovered_s=recovered_s,
        ttr_s=recovered_s - fault_start if recovered_s is not None and fault_start is not None else None,
        detect_within_s=expectations.get("detect_within_s"),
        recover_within_s=expectations.get("recover_within_s"),
        severity=Severity.NONE,
        release_freeze=freeze,
        postmortem_required=postmortem,
        probe_interval_s=float(start.get("probe_interval_s", 0.5)),
        stabilisation_s=float(start.get("stabilisation_s", 0.0)),
        slos=slos,
        phases=phases,
        faults=_faults(events),
        integrity=integrity,
        backups=backups,
        rows_replayed=replay.rows if replay else None,
        replay_rate_per_s=replay.rate_per_s if replay else None,
        projection=_projection(start, phases, integrity),
        timeline=_timeline(events),
        journal_path=journal_path,
    )
    from dataclasses import replace

    severity = _severity(slos, integrity, freeze, postmortem, alerted=detected is not None)
    report = replace(report, severity=severity)
    well, badly, actions = _lessons(report, start)
    return replace(report, went_well=well, went_badly=badly, action_items=actions)
