"""From journal events to measurements and a verdict (no stack: synthetic journals)."""

from __future__ import annotations

from typing import Any

import pytest

from datadrill.engine.measure import judge, measure
from datadrill.model.report import Severity, Verdict


def _journal(
    *,
    bad_from: float = 10.0,
    bad_until: float = 16.0,
    interval: float = 0.5,
    end: float = 30.0,
    alert_at: float | None = 12.0,
    recovered: bool = True,
    finished: bool = True,
    verified: bool = True,
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    def add(t: float, type_: str, **fields: Any) -> None:
        events.append({"t": t, "type": type_, "wall": "2026-11-22T00:00:00+00:00", **fields})

    add(
        0.0,
        "run_started",
        scenario="s",
        run_id="r1",
        probe_interval_s=interval,
        stabilisation_s=5,
        workload_rate=1000,
        seed=3,
        slos=[
            {
                "name": "q",
                "statement": "queries succeed, 99.9% of the time",
                "kind": "query_success",
                "unit": "ok",
                "threshold": None,
                "objective": 0.999,
                "alert": "bad for 2 s",
            }
        ],
        expectations={"detect_within_s": 5, "recover_within_s": 10, "max_budget_burn": None},
        production={"events_per_s": 50_000, "table_rows": 1_000_000_000},
        policy={"period_days": 28, "postmortem_at": 0.2, "freeze_at": 1.0},
    )
    add(0.0, "backup_taken", name="nightly", snapshot_id=1, rows=100)
    add(bad_from, "fault_injected", fault_id=1, kind="metadata.catalog_entry", description="gone")
    t = 0.0
    while t < end:
        good = not (bad_from <= t < bad_until)
        add(t, "sample", slo="q", value=1.0 if good else 0.0, good=good, error=None)
        t = round(t + interval, 6)
    if alert_at is not None:
        add(alert_at, "alert_fired", slo="q", rule="bad for 2 s")
    add(13.0, "phase_started", name="replay Kafka", kind="recovery_step")
    add(
        15.0,
        "phase_finished",
        name="replay Kafka",
        kind="recovery_step",
        ok=True,
        rows=20_000,
        rate_per_s=10_000.0,
    )
    if recovered:
        add(bad_until + 5, "recovered", stable_since=bad_until, stable_for_s=5)
    add(end - 1, "fault_reverted", fault_id=1, kind="metadata.catalog_entry", description="gone", note="n/a")
    add(
        end,
        "integrity_verified",
        compared_rows=30_000,
        duplicates=0,
        omissions=0 if verified else 3,
        discrepancies=0,
        unexpected=0,
        verified=verified,
        detail="ok" if verified else "3 missing",
    )
    if finished:
        add(end, "run_finished", verdict="passed", reasons=[])
    return events


def test_time_to_detect_and_recover() -> None:
    report = measure(_journal())
    assert report.fault_start_s == 10.0
    assert report.ttd_s == pytest.approx(2.0)
    assert report.ttr_s == pytest.approx(6.0)
    assert report.complete


def test_bad_time_and_error_budget() -> None:
    report = measure(_journal())
    (slo,) = report.slos
    assert slo.bad_s == pytest.approx(6.0)
    assert slo.observed_s == pytest.approx(30.0)
    assert slo.good_ratio == pytest.approx(0.8)
    # 6 s bad where 0.1% of 30 s (0.03 s) was allowed: 200 budgets.
    assert slo.budget_burned == pytest.approx(200.0)
    assert slo.period_budget_burned == pytest.approx(6.0 / (0.001 * 28 * 86_400))
    assert not slo.met
    assert slo.first_alert_s == 12.0


def test_backup_age_is_the_rpo_and_projection_scales() -> None:
    report = measure(_journal())
    (backup,) = report.backups
    assert backup.age_at_fault_s == pytest.approx(10.0)
    assert report.projection is not None
    (row,) = report.projection.rows
    assert row.projected_rows == 20_000 * 50  # 50,000 / 1,000 events per second
    assert row.projected_s == pytest.approx(1_000_000 / 10_000.0)


def test_postmortem_and_severity() -> None:
    report = measure(_journal())
    assert report.postmortem_required is False  # 6 s of a 28-day budget is small
    assert report.severity is Severity.SEV2  # an SLO missed
    assert any("missed" in line for line in report.went_badly)
    assert any("back up the catalog" in line.lower() for line in report.action_items)


def test_verdicts() -> None:
    assert judge(measure(_journal()), status="ok") == (Verdict.PASSED, ())
    late = measure(_journal(alert_at=17.0))
    verdict, reasons = judge(late, status="ok")
    assert verdict is Verdict.SLO_VIOLATED and "detected after 7.0 s" in reasons[0]
    assert judge(measure(_journal(alert_at=None)), status="ok")[0] is Verdict.NOT_DETECTED
    assert judge(measure(_journal(recovered=False)), status="ok")[0] is Verdict.NOT_RECOVERED
    assert judge(measure(_journal(verified=False)), status="ok")[0] is Verdict.NOT_RECOVERED
    assert judge(measure(_journal()), status="aborted", status_reasons=("x",)) == (Verdict.ABORTED, ("x",))
    assert judge(measure(_journal()), status="error")[0] is Verdict.ERROR


def test_a_killed_run_still_reports() -> None:
    report = measure(_journal(finished=False))
    assert not report.complete
    assert report.verdict is Verdict.ABORTED
    assert "ends before the run finished" in report.reasons[0]
    assert report.ttd_s == pytest.approx(2.0)


def test_journal_without_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="run_started"):
        measure([{"t": 0, "type": "sample", "wall": "x"}])
