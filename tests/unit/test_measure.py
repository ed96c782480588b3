"""From journal events to measurements and a verdict (no stack: synthetic journals)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from datadrill import events as ev
from datadrill.clock import FakeClock
from datadrill.engine.journal import Journal
from datadrill.engine.measure import judge, measure
from datadrill.events import read_events
from datadrill.model.report import Severity, Verdict

WALL = "2026-11-22T00:00:00+00:00"


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
    replay_name: str = "replay Kafka",
) -> list[ev.Event]:
    events: list[ev.Event] = []

    def add(t: float, event: ev.Event) -> None:
        events.append(
            event.model_copy(update={"seq": len(events) + 1, "t": t, "mono": 500.0 + t, "wall": WALL})
        )

    add(
        0.0,
        ev.RunStarted(
            scenario="s",
            run_id="r1",
            probe_interval_s=interval,
            stabilisation_s=5,
            workload_rate=1000,
            seed=3,
            slos=(
                ev.SLOInfo(
                    name="q",
                    statement="queries succeed, 99.9% of the time",
                    kind="query_success",
                    unit="ok",
                    threshold=None,
                    objective=0.999,
                    alert="bad for 2 s",
                ),
            ),
            expectations=ev.ExpectationsInfo(detect_within_s=5, recover_within_s=10),
            production=ev.ProductionInfo(events_per_s=50_000, table_rows=1_000_000_000),
            policy=ev.PolicyInfo(period_days=28, postmortem_at=0.2, freeze_at=1.0),
        ),
    )
    add(0.0, ev.BackupTaken(name="nightly", snapshot_id=1, rows=100))
    add(bad_from, ev.FaultInjected(fault_id=1, kind="metadata.catalog_entry", description="gone"))
    t = 0.0
    while t < end:
        good = not (bad_from <= t < bad_until)
        add(t, ev.Sample(slo="q", value=1.0 if good else 0.0, good=good, error=None))
        t = round(t + interval, 6)
    if alert_at is not None:
        add(alert_at, ev.AlertFired(slo="q", rule="bad for 2 s"))
    add(13.0, ev.PhaseStarted(name=replay_name, kind="recovery_step", step="replay_kafka"))
    add(
        15.0,
        ev.PhaseFinished(
            name=replay_name,
            kind="recovery_step",
            step="replay_kafka",
            ok=True,
            rows=20_000,
            rate_per_s=10_000.0,
        ),
    )
    if recovered:
        add(bad_until + 5, ev.Recovered(stable_since=bad_until, stable_for_s=5))
    add(
        end - 1,
        ev.FaultReverted(fault_id=1, kind="metadata.catalog_entry", description="gone", note="n/a"),
    )
    add(
        end,
        ev.IntegrityVerified(
            compared_rows=30_000,
            duplicates=0,
            omissions=0 if verified else 3,
            discrepancies=0,
            unexpected=0,
            verified=verified,
            detail="ok" if verified else "3 missing",
        ),
    )
    if finished:
        add(end, ev.RunFinished(verdict=Verdict.PASSED, reasons=()))
    return events


def _old_journal() -> list[dict[str, Any]]:
    """A journal as the runner wrote it before events were typed: dicts, no ``step`` on
    recovery phases, the phase recognised by its name (this is the earlier test's journal)."""
    events: list[dict[str, Any]] = []

    def add(t: float, type_: str, **fields: Any) -> None:
        events.append(
            {"seq": len(events) + 1, "type": type_, "t": t, "mono": 500.0 + t, "wall": WALL, **fields}
        )

    add(
        0.0,
        "run_started",
        scenario="s",
        run_id="r1",
        probe_interval_s=0.5,
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
    add(10.0, "fault_injected", fault_id=1, kind="metadata.catalog_entry", description="gone")
    t = 0.0
    while t < 30.0:
        good = not (10.0 <= t < 16.0)
        add(t, "sample", slo="q", value=1.0 if good else 0.0, good=good, error=None)
        t = round(t + 0.5, 6)
    add(12.0, "alert_fired", slo="q", rule="bad for 2 s")
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
    add(21.0, "recovered", stable_since=16.0, stable_for_s=5)
    add(29.0, "fault_reverted", fault_id=1, kind="metadata.catalog_entry", description="gone", note="n/a")
    add(
        30.0,
        "integrity_verified",
        compared_rows=30_000,
        duplicates=0,
        omissions=0,
        discrepancies=0,
        unexpected=0,
        verified=True,
        detail="ok",
    )
    add(30.0, "run_finished", verdict="passed", reasons=[])
    return events


def _write(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


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
    assert any("below its objective during the drill" in line for line in report.went_badly)
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
        measure([ev.Sample(t=0, wall="x", slo="q", good=True)])


def test_recovery_steps_are_recognised_by_their_step_not_their_name() -> None:
    report = measure(_journal(replay_name="bring the table up to date"))
    assert report.rows_replayed == 20_000
    assert report.replay_rate_per_s == 10_000.0
    assert report.projection is not None
    (row,) = report.projection.rows
    assert row.projected_rows == 20_000 * 50  # scaled as a replay, not as a reconciliation


def test_reconcile_step_scales_with_the_table_and_reports_the_damage() -> None:
    events = _journal()
    reconcile = ev.PhaseFinished(
        t=20.0,
        wall=WALL,
        name="compare the two sides",
        kind="recovery_step",
        step="reconcile",
        rows=2_000,
        rate_per_s=1_000.0,
        extra={
            "compared_rows": 2_000,
            "duplicates": 2,
            "omissions": 1,
            "discrepancies": 0,
            "unexpected": 0,
            "repaired_rows": 3,
        },
    )
    report = measure([*events[:-2], reconcile, *events[-2:]])
    assert report.projection is not None
    rows = {row.phase: row for row in report.projection.rows}
    assert rows["compare the two sides"].projected_rows == 2_000 * (1_000_000_000 // 1_000)
    assert report.integrity is not None
    assert (report.integrity.duplicates, report.integrity.omissions, report.integrity.repaired_rows) == (
        2,
        1,
        3,
    )


def test_a_journal_of_the_previous_version_gives_the_same_report(tmp_path: Path) -> None:
    path = _write(tmp_path / "journal.jsonl", _old_journal())
    old = measure(read_events(path), journal_path=str(path))
    new = measure(_journal(), journal_path=str(path))
    assert old == new
    assert old.rows_replayed == 20_000  # the phase named "replay Kafka" is the replay


def test_a_hand_written_journal_without_numbers_or_defaults_still_measures(tmp_path: Path) -> None:
    # The shape of journals tests wrote by hand before: no seq, no mono, no policy.
    lines = [
        {"t": 0.0, "type": "run_started", "wall": WALL, "scenario": "s", "slos": []},
        {
            "t": 1.0,
            "type": "phase_started",
            "wall": WALL,
            "name": "reconcile source against sink",
            "kind": "recovery_step",
        },
        {
            "t": 2.0,
            "type": "phase_finished",
            "wall": WALL,
            "name": "reconcile source against sink",
            "kind": "recovery_step",
            "rows": 10,
            "rate_per_s": 5.0,
        },
    ]
    events = read_events(_write(tmp_path / "journal.jsonl", lines))
    assert isinstance(events[2], ev.PhaseFinished) and events[2].step == "reconcile"
    report = measure(events)
    assert report.probe_interval_s == ev.RunStarted(scenario="s").probe_interval_s
    assert not report.complete and report.verdict is Verdict.ABORTED


def test_measure_over_a_journal_written_by_the_journal(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = Journal.create(tmp_path / "journal.jsonl", clock=clock)
    try:
        for event in sorted(_journal(), key=lambda e: e.t):  # a journal is written in time order
            clock.sleep(max(0.0, journal.start_mono + event.t - clock.monotonic()))
            stamped = journal.record(event.model_copy(update={"seq": 0, "t": 0.0, "mono": None, "wall": ""}))
            assert stamped.t == pytest.approx(event.t)
    finally:
        journal.close()
    events = read_events(tmp_path / "journal.jsonl")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    report = measure(events)
    assert report.ttd_s == pytest.approx(2.0) and report.rows_replayed == 20_000


def test_a_drill_that_burns_more_budget_than_it_allows_is_slo_violated() -> None:
    from dataclasses import replace

    report = measure(_journal())
    burned = max(s.period_budget_burned for s in report.slos)
    assert burned > 0
    within = replace(report, max_budget_burn=burned * 2, budget_period_days=28.0)
    assert judge(within, status="ok") == (Verdict.PASSED, ())
    over = replace(report, max_budget_burn=burned / 2, budget_period_days=28.0)
    verdict, reasons = judge(over, status="ok")
    assert verdict is Verdict.SLO_VIOLATED
    assert any("of the 28-day budget, more than the" in r and "the drill allows" in r for r in reasons), reasons
