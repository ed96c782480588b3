"""The incident, whole, on the embedded stack: the catalog entry lost, a backup older than
Kafka's retention, the CDC re-snapshot measured beside Kafka replay + reserve backfill on
the same loss, the rest repaired from the source, integrity verified — and a report that
reads as the postmortem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import start_stack, stop_stack
from datadrill.engine.journal import read_journal
from datadrill.engine.loader import load_scenario
from datadrill.engine.runner import Runner
from datadrill.model.report import RunReport, Verdict
from datadrill.reporting import write_reports
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "incident_replay.py"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """A stack of this module's own: retention deletes records of its topic, and the
    reserve and backup must see only this scenario's history."""
    running = start_stack(tmp_path_factory.mktemp("incident") / ".datadrill")
    yield running
    stop_stack(running)


@pytest.fixture(scope="module")
def run(stack: StackClient, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunReport, Path]:
    run_dir = tmp_path_factory.mktemp("incident-run")
    report = Runner(load_scenario(SCENARIO), stack=stack, run_dir=run_dir).run()
    return report, run_dir


def test_the_incident_is_recovered_and_verified(run: tuple[RunReport, Path]) -> None:
    report, run_dir = run
    assert report.verdict is Verdict.PASSED, report.reasons
    # Stage 1: queries failed the way Trino fails on a lost table, and that alerted first.
    samples = [e for e in read_journal(run_dir / "journal.jsonl") if e["type"] == "sample"]
    errors = [s.get("error") or "" for s in samples if s["slo"] == "mart queries succeed" and not s["good"]]
    assert errors and any("TABLE_NOT_FOUND" in error for error in errors), errors[:3]
    # Stage 4: nothing lost, nothing twice.
    assert report.integrity is not None and report.integrity.verified, report.integrity
    assert report.integrity.omissions > 0  # the rows in neither Kafka nor the reserve, found and repaired
    assert report.integrity.repaired_rows >= report.integrity.omissions


def test_both_paths_are_measured_on_the_same_loss_and_projected(run: tuple[RunReport, Path]) -> None:
    report, _ = run
    comparison = report.comparison
    assert comparison is not None and comparison.applied == "Kafka replay + reserve backfill"
    cdc, kafka = comparison.paths
    assert (cdc.name, cdc.applied) == ("CDC re-snapshot", False)
    assert all(step.measured and step.ok for step in cdc.steps)
    # Each path measured rows of its own: the re-snapshot every row since the stale backup,
    # the applied path what Kafka kept and what the reserve holds.
    assert cdc.rows is not None and cdc.rows > 0 and kafka.rows is not None and kafka.rows > 0
    assert [step.step for step in kafka.steps] == ["replay_kafka", "backfill_from_reserve"]
    assert not any(step.measured for step in kafka.steps)
    for path in (cdc, kafka):
        assert path.projected_s is not None and path.projected_s > 0
        assert path.meets_objective == (path.projected_s <= 120)
    # The run's projection and replay figures are of what was applied only.
    assert report.projection is not None
    assert not any("(measured, not applied)" in row.phase for row in report.projection.rows)


def test_the_postmortem_says_where_the_rows_came_from(run: tuple[RunReport, Path]) -> None:
    report, run_dir = run
    sources = {source.source: source.rows for source in report.row_sources}
    assert sources["restored catalog backup (rows in its snapshot)"] > 0
    assert sources["Kafka replay"] > 0
    assert sources["reserve backfill"] > 0
    assert sources["repair from the source (rows inserted)"] > 0
    assert [stage.name for stage in report.stages] == [
        "Loss and detection",
        "Recovery paths weighed",
        "Recovery",
        "Reconciliation and verification",
    ]
    actions = "\n".join(report.action_items)
    assert "Back up the catalog more often than Kafka keeps records" in actions
    assert "Keep reserve copies fresher than Kafka's retention" in actions
    assert "Recovery path 'CDC re-snapshot' (measured)" in actions

    written = write_reports(report, run_dir, formats=("md", "json"))
    markdown = written["md"].read_text(encoding="utf-8")
    for heading in ("The incident, stage by stage", "Recovery paths compared", "Where the rows came from"):
        assert heading in markdown
    document = json.loads(written["json"].read_text(encoding="utf-8"))
    assert report.comparison is not None
    assert [p["name"] for p in document["comparison"]["paths"]] == [p.name for p in report.comparison.paths]
    # Figures for the README and the closing note (pytest -s).
    for path in report.comparison.paths:
        print(
            f"{path.name}: {path.rows} rows measured in {path.measured_s:.1f} s, "
            f"projected {path.projected_s:.0f} s at production volume, meets objective: {path.meets_objective}"
        )


def test_measurement_modes_read_and_change_nothing(
    run: tuple[RunReport, Path], stack: StackClient, tmp_path: Path
) -> None:
    """Each built-in measurement mode on a live pipeline whose sink is paused (rows wait in
    Kafka and the source): it reports what it would bring back, and the table's snapshot
    stays as it was."""
    import contextlib

    from datadrill.clock import MonotonicClock
    from datadrill.engine.wait import wait_until
    from datadrill.faults.base import DrillContext
    from datadrill.integrity.targets import open_sink
    from datadrill.model import BackfillFromReserve, ReplayKafka, ResnapshotFromSource
    from datadrill.recovery.compare import measure_step
    from datadrill.recovery.registry import implementations

    context = DrillContext(stack, tmp_path, MonotonicClock())
    stack.components.pause("sink")
    try:
        with open_sink(stack) as sink:
            held = sink.max_key(stack.table, "order_id")

        def source_ahead() -> bool:
            with contextlib.closing(stack.source()) as db:
                (newest,) = db.execute("SELECT MAX(order_id) FROM orders").fetchone()
            return int(newest) >= held + 500

        wait_until(source_ahead, timeout=120, what="500 orders written past the paused sink's table")
        before = stack.catalog().load_table(stack.table).current_snapshot()
        known = implementations()
        replay = measure_step(ReplayKafka(start="earliest", workers=4), context, known)
        resnapshot = measure_step(ResnapshotFromSource(workers=4), context, known)
        backfill = measure_step(BackfillFromReserve(reserve="reserve", workers=4), context, known)
        after = stack.catalog().load_table(stack.table).current_snapshot()
    finally:
        stack.components.resume("sink")
    assert before is not None and after is not None and after.snapshot_id == before.snapshot_id
    # Kafka holds what the paused sink has not written; the source holds it too.
    assert replay.rows is not None and replay.rows > 0, replay.detail
    assert resnapshot.rows is not None and resnapshot.rows > 0, resnapshot.detail
    # The reserve predates every row the table lacks: nothing to backfill.
    assert backfill.rows == 0, backfill.detail
    for result in (replay, resnapshot, backfill):
        assert "measured" in result.detail
