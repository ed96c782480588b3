"""A realistic ``RunReport`` for reporter tests: a metadata-loss game day.

The drill deletes the catalog entry of ``dwh.orders`` at t+30 s; mart queries fail, the
freshness and canary SLIs cannot be measured, and a runbook restores the catalog from the
nightly backup, replays Kafka and reconciles. The SLO figures are computed from the
series, as the journal reader would, so the numbers in a rendered report agree.

Example::

    from report_factory import make_report
    report = make_report(verdict=Verdict.PASSED, reasons=())
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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

PROBE_INTERVAL_S = 1.5
POINTS = 100
FAULT_S = 30.0
DETECTED_S = 34.5
RESTORED_S = 46.0
RECOVERED_S = 92.0
PERIOD_S = 28 * 86_400.0
START = "2025-06-01T10:00:00.000+00:00"


def _wall(t_s: float) -> str:
    minutes, seconds = divmod(t_s, 60)
    return f"2025-06-01T10:{int(minutes):02d}:{seconds:06.3f}+00:00"


def _query_ok(t: float) -> float | None:
    if 47.0 <= t < 50.0:
        return None  # the probe itself timed out while the catalog was being restored
    return 0.0 if FAULT_S < t < RESTORED_S else 1.0


def _freshness(t: float) -> float | None:
    if FAULT_S < t < RESTORED_S:
        return None  # no table, so no age to measure
    if t <= FAULT_S:
        return 2.0 + (t % 3) * 0.4
    # The restored catalog points at the nightly backup's snapshot; the replay then
    # catches the table up.
    return max(2.5, 34.0 + 18.0 - (t - RESTORED_S) * 1.2) if t < 80 else 2.4 + (t % 2) * 0.3


def _canary(t: float) -> float | None:
    if FAULT_S < t < RESTORED_S:
        return None
    if t <= FAULT_S or t >= 78:
        return 1.1 + (t % 4) * 0.1
    return max(1.2, 16.0 - (t - RESTORED_S) * 0.4)


def _slo(
    name: str,
    statement: str,
    sli_kind: str,
    unit: str,
    threshold: float | None,
    alert: str,
    alert_for_s: float,
    value_at: Callable[[float], float | None],
    is_good: Callable[[float], bool],
    objective: float = 0.999,
) -> SLOResult:
    series = []
    for i in range(POINTS):
        t = round(i * PROBE_INTERVAL_S, 3)
        value = value_at(t)
        series.append(SeriesPoint(t_s=t, value=value, good=value is not None and is_good(value)))
    good = sum(p.good for p in series)
    bad_s = (POINTS - good) * PROBE_INTERVAL_S
    observed_s = POINTS * PROBE_INTERVAL_S
    first_bad = next(p.t_s for p in series if not p.good)
    worst = [p.value for p in series if p.value is not None]
    allowed = 1 - objective
    return SLOResult(
        name=name,
        statement=statement,
        sli_kind=sli_kind,
        unit=unit,
        threshold=threshold,
        objective=objective,
        alert=alert,
        samples=POINTS,
        good_samples=good,
        bad_s=bad_s,
        observed_s=observed_s,
        good_ratio=good / POINTS,
        budget_burned=bad_s / (allowed * observed_s),
        period_budget_burned=bad_s / (allowed * PERIOD_S),
        met=good / POINTS >= objective,
        first_alert_s=first_bad + alert_for_s,
        worst_value=(min(worst) if sli_kind == "query_success" else max(worst)) if worst else None,
        series=tuple(series),
    )


def _slos() -> tuple[SLOResult, ...]:
    return (
        _slo(
            "mart queries succeed",
            "mart queries on dwh.orders succeed, 99.9% of the time",
            "query_success",
            "ok",
            None,
            "bad for 3 s",
            3.0,
            _query_ok,
            lambda v: v >= 1,
        ),
        _slo(
            "mart freshness",
            "dwh.orders no older than 30 s, 99.9% of the time",
            "freshness",
            "s",
            30.0,
            "bad for 5 s",
            5.0,
            _freshness,
            lambda v: v <= 30,
        ),
        _slo(
            "canary latency",
            "canaries visible in dwh.orders within 10 s, 99% of the time",
            "canary_latency",
            "s",
            10.0,
            "burn rate > 14.4× over 60 s and 5 s",
            7.5,
            _canary,
            lambda v: v <= 10,
            objective=0.99,
        ),
    )


_PHASES = (
    PhaseResult("steady state", "steady_state", 0.4, 19.6, detail="every SLI good for 5 s"),
    PhaseResult("take catalog backup 'nightly'", "backup", 12.0, 0.3, rows=14_400),
    PhaseResult("delete catalog entry of dwh.orders", "fault", FAULT_S, 0.02),
    PhaseResult("wait for detection", "detection", FAULT_S, DETECTED_S - FAULT_S),
    PhaseResult("pause sink", "recovery_step", 45.0, 0.8),
    PhaseResult(
        "restore catalog from backup 'nightly'",
        "recovery_step",
        RESTORED_S,
        1.9,
        rows=14_400,
        rate_per_s=7_579,
    ),
    PhaseResult(
        "replay orders.v1 from the backup's offsets",
        "recovery_step",
        48.2,
        14.6,
        rows=9_720,
        rate_per_s=665.8,
    ),
    PhaseResult("resume sink", "recovery_step", 62.9, 0.4),
    PhaseResult(
        "reconcile dwh.orders against the source", "recovery_step", 63.5, 6.2, rows=24_120, rate_per_s=3_890
    ),
    PhaseResult(
        "stabilisation", "verification", 70.0, 22.0, detail="every SLI good for 5 s after the last step"
    ),
    PhaseResult("integrity check", "verification", 89.1, 2.9, rows=24_120, rate_per_s=8_317),
)

_TIMELINE = (
    TimelineEntry(0.0, _wall(0.0), "phase", "run started: metadata-loss, seed 42, embedded stack"),
    TimelineEntry(0.4, _wall(0.4), "phase", "steady state: waiting for every SLI to be good for 5 s"),
    TimelineEntry(12.0, _wall(12.0), "backup", "catalog backup 'nightly' taken (snapshot 8412, 14,400 rows)"),
    TimelineEntry(20.0, _wall(20.0), "phase", "steady state held"),
    TimelineEntry(FAULT_S, _wall(FAULT_S), "fault", "deleted the catalog entry of dwh.orders"),
    TimelineEntry(31.5, _wall(31.5), "phase", "mart queries fail: table dwh.orders not found"),
    TimelineEntry(DETECTED_S, _wall(DETECTED_S), "alert", "mart queries succeed: bad for 3 s"),
    TimelineEntry(45.0, _wall(45.0), "recovery", "runbook step 1: pause sink"),
    TimelineEntry(
        RESTORED_S, _wall(RESTORED_S), "recovery", "runbook step 2: restore catalog from 'nightly'"
    ),
    TimelineEntry(RESTORED_S, _wall(RESTORED_S), "revert", "catalog entry restored by the runbook"),
    TimelineEntry(
        48.2, _wall(48.2), "recovery", "runbook step 3: replay orders.v1 from the backup's offsets"
    ),
    TimelineEntry(62.9, _wall(62.9), "recovery", "runbook step 4: resume sink"),
    TimelineEntry(63.5, _wall(63.5), "recovery", "runbook step 5: reconcile dwh.orders against the source"),
    TimelineEntry(
        RECOVERED_S, _wall(RECOVERED_S), "integrity", "integrity verified: 24,120 rows, 0 affected"
    ),
    TimelineEntry(148.5, _wall(148.5), "verdict", "SLO violated"),
)


def make_report(**overrides: Any) -> RunReport:
    """The metadata-loss report, with any field replaced.

    Example::

        make_report(verdict=Verdict.ERROR, reasons=("the stack process died",))
    """
    report = RunReport(
        run_id="20250601T100000Z-metadata-loss-7f3a",
        scenario="metadata-loss",
        description="Delete the catalog entry of dwh.orders and restore it from the nightly backup.",
        verdict=Verdict.SLO_VIOLATED,
        reasons=(
            "mart queries succeed: 88% good < 99.9% objective",
            "mart freshness: 78% good < 99.9% objective",
            "canary latency: 80% good < 99% objective",
        ),
        complete=True,
        started_wall=START,
        duration_s=148.5,
        seed=42,
        stack="embedded",
        fault_start_s=FAULT_S,
        detected_s=DETECTED_S,
        ttd_s=DETECTED_S - FAULT_S,
        recovered_s=RECOVERED_S,
        ttr_s=RECOVERED_S - FAULT_S,
        detect_within_s=10.0,
        recover_within_s=120.0,
        severity=Severity.SEV2,
        release_freeze=False,
        postmortem_required=True,
        probe_interval_s=PROBE_INTERVAL_S,
        stabilisation_s=5.0,
        slos=_slos(),
        phases=_PHASES,
        faults=(
            FaultResult(
                kind="delete_catalog_entry",
                description="deleted the catalog entry of dwh.orders",
                injected_s=FAULT_S,
                reverted_s=RESTORED_S,
                revert_note="restored by the runbook",
            ),
        ),
        integrity=IntegrityResult(
            compared_rows=24_120,
            duplicates=0,
            omissions=0,
            discrepancies=0,
            unexpected=0,
            repaired_rows=312,
            verified=True,
            detail="312 rows written after the backup were replayed from Kafka",
        ),
        backups=(
            BackupResult(
                name="nightly", taken_s=12.0, snapshot_id=8412, rows_at_backup=14_400, age_at_fault_s=18.0
            ),
        ),
        rows_replayed=9_720,
        replay_rate_per_s=665.8,
        projection=Projection(
            events_per_s=50_000.0,
            table_rows=2_000_000_000,
            rows=(
                ProjectionRow("restore catalog from backup 'nightly'", 1.9, 14_400, 7_579.0, None, 1.9),
                ProjectionRow(
                    "replay orders.v1 from the backup's offsets",
                    14.6,
                    9_720,
                    665.8,
                    1_296_000_000,
                    1_946_530.5,
                ),
                ProjectionRow(
                    "reconcile dwh.orders against the source", 6.2, 24_120, 3_890.0, 2_000_000_000, 514_138.8
                ),
            ),
            total_s=2_460_671.2,
            assumptions=(
                "a nightly backup is on average 12 h old at fault time (RPO), so 12 h of events at "
                "50,000/s are replayed; replay and reconcile scale linearly with rows at the measured rates"
            ),
        ),
        timeline=_TIMELINE,
        went_well=(
            "The query-success alert fired 4.5 s after the fault, within the 10 s expectation.",
            "The nightly backup restored cleanly and the replay lost no rows.",
        ),
        went_badly=(
            "Freshness could not be measured while the table was missing, so its alert fired late.",
            "At production volume the replay would take about 22 days.",
        ),
        action_items=(
            "Alert on the catalog entry's existence, not only on query failures.",
            "Take catalog backups hourly to bound the replay.",
            "Document the replay step in the metadata-loss runbook.",
        ),
        journal_path=".datadrill/runs/20250601T100000Z-metadata-loss-7f3a/journal.jsonl",
    )
    return dataclasses.replace(report, **overrides)
