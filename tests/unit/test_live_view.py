"""The live view and the end-of-run summary, rendered to a recording console."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest
from report_factory import make_report
from rich.console import Console, RenderableType

from datadrill import events as ev
from datadrill.cli.live import (
    Span,
    event_line,
    plan_timeline,
    print_summary,
    render_live,
    render_log,
    render_slis,
    render_step_progress,
    render_timeline,
)
from datadrill.clock import FakeClock
from datadrill.engine.runner import LiveState
from datadrill.faults.base import DrillContext
from datadrill.integrity.reconcile import SqliteSide, reconcile
from datadrill.model import (
    SLO,
    DeleteCatalogEntry,
    Expectations,
    PauseComponent,
    QuerySuccess,
    Reconcile,
    ReplayKafka,
    RestoreCatalogBackup,
    ResumeComponent,
    Runbook,
    Scenario,
    SteadyState,
    TakeCatalogBackup,
    ThresholdAlert,
)
from datadrill.model.report import Verdict
from datadrill.platform.source_db import SCHEMA
from datadrill.probes import Sample
from datadrill.recovery.replay import ThrottledProgress

SCENARIO = Scenario(
    name="metadata-loss",
    slos=(
        SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999, alert=ThresholdAlert(for_s=2)),
        SLO("mart answers", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=5)),
    ),
    steady_state=SteadyState(warmup_s=3, timeout_s=60),
    schedule=(TakeCatalogBackup(at_s=0, name="nightly"), DeleteCatalogEntry(at_s=15, table="dwh.orders")),
    recovery=Runbook(
        steps=(
            PauseComponent(component="sink"),
            RestoreCatalogBackup(backup="nightly"),
            ReplayKafka(workers=4),
            ResumeComponent(component="sink"),
            Reconcile(repair=True),
        ),
        response_delay_s=2,
    ),
    expectations=Expectations(detect_within_s=10, recover_within_s=90),
    stabilisation_s=5,
    max_duration_s=180,
)
REPLAY = ReplayKafka(workers=4).describe()


def text_of(renderable: RenderableType, width: int = 100) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def mid_run() -> LiveState:
    """The headline drill 32 s in: fault at t+18.2 s, alert at t+21 s, replay running."""
    state = LiveState(SCENARIO.name)
    state.phase = "fault injection and recovery"
    state.elapsed_s = 32.1
    state.fault_start_s = 18.2
    state.detected_s = 21.0
    state.recovery_step = REPLAY
    state.active_faults = ["catalog entry of dwh.orders deleted"]
    state.samples = {"mart queries succeed": Sample(value=0.0, good=False, error="table not found")}
    state.alerts = {"mart queries succeed": "FIRING"}
    state.recent = [
        ev.PhaseFinished(t=3.2, name="steady state", kind="steady_state", detail="every SLI good for 3 s"),
        ev.PhaseStarted(t=3.2, name="fault injection and recovery", kind="fault"),
        ev.BackupTaken(t=3.3, name="nightly", snapshot_id=8412, rows=15_000),
        ev.FaultInjected(
            t=18.2,
            fault_id=1,
            kind="delete_catalog_entry",
            description="delete the catalog entry of dwh.orders",
        ),
        ev.AlertFired(t=21.0, slo="mart queries succeed", rule="bad for 2 s"),
        ev.PhaseFinished(t=23.4, name="pause the sink", kind="recovery_step", detail="sink stopped"),
        ev.PhaseFinished(
            t=24.4,
            name="restore the catalog from backup 'nightly'",
            kind="recovery_step",
            rows=15_000,
            rate_per_s=8_000.0,
            detail="15,000 rows in the restored snapshot",
        ),
        ev.PhaseStarted(t=24.5, name=REPLAY, kind="recovery_step"),
    ]
    state.step_progress = (12_345, 21_213, "rows", 1.5)
    return state


# -- the rolling log ----------------------------------------------------------------------------


def test_log_has_one_line_per_event_with_its_run_time() -> None:
    state = LiveState(SCENARIO.name)
    state.recent = [
        ev.FaultInjected(
            t=15.0,
            fault_id=1,
            kind="delete_catalog_entry",
            description="delete the catalog entry of dwh.orders",
        ),
        ev.AlertFired(t=18.0, slo="mart queries succeed"),
        ev.PhaseFinished(
            t=31.2,
            name="replay Kafka",
            kind="recovery_step",
            rows=21_213,
            rate_per_s=8_143.2,
            detail="21,213 rows replayed from 21,213 messages on 4 partitions",
        ),
    ]
    log = render_log(state)
    assert log is not None
    assert text_of(log).splitlines() == [
        " t+15.0 s  fault injected: delete the catalog entry of dwh.orders",
        " t+18.0 s  alert fired: mart queries succeed",
        " t+31.2 s  step finished: replay Kafka — 21,213 rows at 8,143 rows/s",
    ]


def test_log_is_absent_before_any_event() -> None:
    assert render_log(LiveState(SCENARIO.name)) is None


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            ev.FaultReverted(t=1, fault_id=1, description="broker 2 down", note="broker 2 back"),
            "fault reverted: broker 2 down — broker 2 back",
        ),
        (ev.AlertFired(t=1, slo="lag", rule="burn rate > 10×"), "alert fired: lag (burn rate > 10×)"),
        (ev.PhaseStarted(t=1, name="pause the sink", kind="recovery_step"), "step started: pause the sink"),
        (ev.PhaseStarted(t=1, name="steady state", kind="steady_state"), "steady state started"),
        (
            ev.PhaseFinished(t=1, name="replay", kind="recovery_step", ok=False, detail="TimeoutError: p3"),
            "step FAILED: replay — TimeoutError: p3",
        ),
        (
            ev.PhaseFinished(t=1, name="steady state", kind="steady_state", ok=False, detail="not reached"),
            "steady state FAILED — not reached",
        ),
        (
            ev.PhaseFinished(
                t=1, name="integrity verification", kind="verification", rows=24_120, rate_per_s=8e3
            ),
            "integrity verification finished — 24,120 rows at 8,000 rows/s",
        ),
        (ev.BackupTaken(t=1, name="nightly", snapshot_id=7), "backup taken: 'nightly' (snapshot 7)"),
        (
            ev.Recovered(t=40, stable_since=35.0, stable_for_s=5.0),
            "recovered: every SLI good since t+35.0 s (for 5.0 s)",
        ),
        (
            ev.IntegrityVerified(
                t=1,
                compared_rows=10,
                duplicates=0,
                omissions=1,
                discrepancies=0,
                unexpected=0,
                verified=False,
                detail="1 missing",
            ),
            "integrity NOT verified: 1 missing",
        ),
        (
            ev.LeftoverReverted(t=1, kind="pause", description="sink paused", note="resumed"),
            "reverted what a killed run left: sink paused — resumed",
        ),
        (ev.ComponentResumed(t=1, component="sink", note="left paused"), "sink resumed: left paused"),
        (ev.HarnessError(t=1, message="StackProcessDied: pid 7"), "harness error: StackProcessDied: pid 7"),
        (ev.RunFinished(t=1, verdict=Verdict.PASSED), "run finished: passed"),
    ],
)
def test_every_event_reads_as_a_sentence(event: ev.EventBase, line: str) -> None:
    assert event_line(event)[0] == line


def test_an_event_of_a_newer_version_still_gets_a_line() -> None:
    event = ev.parse_event({"type": "quota_exceeded", "t": 3.0, "quota": "disk"})
    assert isinstance(event, ev.UnknownEvent)
    assert event_line(event) == ("quota exceeded", "dim")


# -- the running step ---------------------------------------------------------------------------


def test_step_progress_with_a_known_total() -> None:
    progress = render_step_progress(mid_run())
    assert progress is not None
    line = text_of(progress).rstrip()
    assert line.startswith("progress ")
    assert line.endswith(" 12,345 of 21,213 rows (58%) · 8,230 rows/s · 1.5 s")


def test_step_progress_without_a_total_counts_up() -> None:
    state = mid_run()
    state.step_progress = (512, None, "letters", 0.25)
    progress = render_step_progress(state)
    assert progress is not None
    assert text_of(progress).rstrip().endswith(" 512 letters · 2,048 letters/s · 250 ms")


def test_no_step_progress_when_no_step_reports_it() -> None:
    state = mid_run()
    state.step_progress = None
    assert render_step_progress(state) is None


# -- the timeline -------------------------------------------------------------------------------


def test_timeline_before_the_run_is_all_plan() -> None:
    state = LiveState(SCENARIO.name)
    timeline = plan_timeline(state, SCENARIO)
    assert [stage.status for stage in timeline.stages] == [
        "now",
        "next",
        "next",
        "next",
        "next",
        "next",
        "next",
    ]
    # steady state 3 s, the fault at +15 s, recovery expected within 90 s of it, 5 s stable
    assert timeline.horizon == pytest.approx(3 + 15 + 90 + 5)
    assert [mark.t for mark in timeline.marks] == [3.0, 18.0]


def test_timeline_mid_run_places_the_schedule_from_the_fault_phase() -> None:
    timeline = plan_timeline(mid_run(), SCENARIO)
    assert [(mark.glyph, mark.t) for mark in timeline.marks] == [("◆", 3.2), ("✕", 18.2), ("!", 21.0)]
    stages = {stage.text: stage.status for stage in timeline.stages}
    assert stages == {
        "steady state 3 s": "done",
        "+0 s catalog backup 'nightly' of dwh.ord…": "done",
        "+15 s catalog entry of dwh.orders deleted": "done",
        "alert after 2.8 s": "done",
        "runbook 3/5: replay Kafka from table offsets wit…": "now",
        "stabilise 5 s": "next",
        "verify integrity": "next",
    }


def test_timeline_finds_the_fault_phase_from_the_fault_once_the_log_has_moved_on() -> None:
    state = mid_run()
    state.recent = state.recent[-3:]  # the phase events have scrolled out of the log
    timeline = plan_timeline(state, SCENARIO)
    assert [mark.t for mark in timeline.marks][:2] == [pytest.approx(3.2), pytest.approx(18.2)]


def test_timeline_while_waiting_for_the_alert() -> None:
    state = mid_run()
    state.detected_s = None
    state.recovery_step = None
    state.elapsed_s = 20.0
    state.recent = state.recent[:4]  # up to the fault
    text = text_of(render_timeline(state, SCENARIO), width=300)
    assert "! waiting for an alert: 1.8 s (expected within 10 s)" in text
    assert "· runbook 5 steps, 2 s after the alert" in text


def test_timeline_at_the_end_of_a_run() -> None:
    state = mid_run()
    state.elapsed_s = 80.0
    state.recovery_step = None
    state.recent = [
        ev.Recovered(t=70.0, stable_since=65.0, stable_for_s=5.0),
        ev.PhaseStarted(t=70.1, name="revert faults", kind="revert"),
        ev.PhaseFinished(t=70.2, name="revert faults", kind="revert"),
        ev.PhaseStarted(t=70.2, name="integrity verification", kind="verification"),
        ev.PhaseFinished(t=79.0, name="integrity verification", kind="verification", rows=24_120),
        ev.RunFinished(t=80.0, verdict=Verdict.PASSED),
    ]
    timeline = plan_timeline(state, SCENARIO)
    assert all(stage.status == "done" for stage in timeline.stages)
    assert timeline.horizon == 80.0
    bar = text_of(render_timeline(state, SCENARIO)).splitlines()[0]
    assert bar.endswith(" t+80.0 s")
    assert "─" not in bar  # nothing left to plan


def test_timeline_at_the_end_once_recovery_has_left_the_log() -> None:
    state = mid_run()
    state.elapsed_s = 78.0  # the last probe round; the verdict comes later
    state.recovery_step = None
    state.recent = [
        ev.PhaseFinished(t=70.0, name="fault injection and recovery", kind="fault", detail="recovered"),
        ev.PhaseStarted(t=70.1, name="revert faults", kind="revert"),
        ev.PhaseFinished(t=70.2, name="revert faults", kind="revert"),
        ev.PhaseStarted(t=70.2, name="integrity verification", kind="verification"),
        ev.PhaseFinished(t=79.0, name="integrity verification", kind="verification", rows=24_120),
        ev.RunFinished(t=80.0, verdict=Verdict.PASSED),
    ]
    state.step_progress = (24_120, None, "rows", 8.8)  # what the check last reported
    timeline = plan_timeline(state, SCENARIO)
    assert timeline.horizon == 80.0
    assert timeline.spans[-1] == Span(65.0, 80.0, "green")  # stable for 5 s before the phase ended
    text = text_of(render_live(state, SCENARIO))
    assert "─" not in text.splitlines()[1]
    assert "elapsed:   80.0 s" in text
    assert "progress" not in text  # the check is over


def test_the_runbook_step_comes_from_the_log_before_the_runner_notes_it() -> None:
    state = mid_run()
    state.recovery_step = "resume the sink"  # noted at the last probe round
    state.recent = [
        *state.recent,
        ev.PhaseStarted(t=26.0, name="reconcile source against sink and repair", kind="recovery_step"),
    ]
    assert "▶ runbook 5/5: reconcile source against sink and r…" in text_of(
        render_timeline(state, SCENARIO), 300
    )


def test_timeline_names_a_failed_step() -> None:
    state = mid_run()
    state.recovery_step = None
    state.recent = [*state.recent[:-1], ev.PhaseFinished(t=30.0, name=REPLAY, kind="recovery_step", ok=False)]
    assert "✗ runbook step failed: replay Kafka" in text_of(render_timeline(state, SCENARIO))


def test_timeline_bar_fills_the_width_and_ends_with_the_time() -> None:
    for width in (80, 100):
        bar = text_of(render_timeline(mid_run(), SCENARIO), width=width).splitlines()[0]
        assert len(bar) == width
        assert bar.endswith(" t+32.1 s")
        assert bar.count("✕") == 1 and bar.count("◆") == 1 and bar.count("!") == 1


# -- the SLIs -----------------------------------------------------------------------------------


def test_a_long_probe_error_is_cut_not_the_value_or_the_alert() -> None:
    state = mid_run()
    error = "table dwh.orders does not exist in the catalog (NoSuchTableError) " * 3
    state.samples = {
        "mart queries succeed": Sample(value=0.0, good=False, error=error),
        "mart answers": Sample(value=1.0, good=True),
    }
    lines = text_of(render_slis(state, SCENARIO), width=80).splitlines()
    assert lines[2].startswith(" mart queries succeed │  FAIL │ BAD table dwh.orders does not exist")
    assert lines[2].rstrip().endswith("… │ FIRING")
    assert lines[3].startswith(" mart answers         │    ok │ ok ")


# -- the whole view -----------------------------------------------------------------------------


def test_live_view_has_every_part_in_order() -> None:
    text = text_of(render_live(mid_run(), SCENARIO))
    order = [
        "datadrill metadata-loss  phase: fault injection and recovery",
        "━",
        "✓ steady state 3 s",
        "mart queries succeed",
        "faults: catalog entry of dwh.orders deleted",
        "progress ",
        "t+3.2 s  steady state finished — every SLI good for 3 s",
        "t+24.5 s  step started: replay Kafka",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "FIRING" in text and "table not found" in text


def test_live_view_stays_bounded_at_80_columns() -> None:
    state = mid_run()
    state.active_faults = ["x" * 300]
    state.recent = [ev.HarnessError(t=float(i), message="a very long message " * 20) for i in range(8)]
    lines = text_of(render_live(state, SCENARIO), width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) <= 24


# -- the summary --------------------------------------------------------------------------------


def test_summary_says_the_verdict_apart_from_what_the_fault_cost() -> None:
    console = Console(record=True, width=200, file=io.StringIO())
    report = make_report(verdict=Verdict.PASSED, reasons=())
    print_summary(
        console, report, {"md": Path("reports/run/report.md")}, 150.2, Path("scenarios/metadata_loss.py")
    )
    lines = console.export_text().splitlines()
    assert lines[:4] == [
        "PASSED metadata-loss (scenarios/metadata_loss.py) — every expectation of the drill held",
        "  ✓ detected after 4.5 s (expected within 10.0 s)",
        "  ✓ recovered after 1 min 02 s (expected within 2 min 00 s)",
        "  ✓ integrity verified: 24,120 rows compared, 312 repaired",
    ]
    assert lines[4] == "What the fault cost (on purpose; not part of the verdict):"
    assert lines[5] == (
        "  mart queries succeed: 88% good during the drill (objective 99.9%) — 0.74% of the 28-day budget burned"
    )
    assert lines[-2:] == ["  severity SEV-2, run 150 s", "  md    reports/run/report.md"]
    assert "MISSED" not in console.export_text()


def test_summary_prints_journal_text_as_text() -> None:
    console = Console(record=True, width=200, file=io.StringIO())
    print_summary(
        console, make_report(verdict=Verdict.ERROR, reasons=("[bold]x[/bold]",)), {}, 1, Path("s.py")
    )
    assert "  ✗ [bold]x[/bold]" in console.export_text()


# -- progress from long steps -------------------------------------------------------------------


# Progress needs no stack: a context without one is enough.
NO_STACK = cast(Any, None)


def test_throttled_progress_reports_at_most_every_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    seen: list[tuple[int, int | None, str]] = []
    context = DrillContext(NO_STACK, tmp_path, clock, progress=lambda *a: seen.append(a))
    progress = ThrottledProgress(context, total=1_000, unit="messages", every_s=0.2)
    for done in range(0, 1_000, 10):
        progress(done)
        clock.advance(0.01)
    progress(1_000, force=True)
    assert seen[0] == (0, 1_000, "messages")
    assert seen[-1] == (1_000, 1_000, "messages")
    assert len(seen) == 6  # every 20th call over one second, and the last


def test_throttled_progress_without_a_sink_costs_nothing(tmp_path: Path) -> None:
    ThrottledProgress(DrillContext(NO_STACK, tmp_path, FakeClock()))(5)


def _orders(keys: range) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO orders VALUES (?, 1, 100, 'EUR', 'created', 0, 0)", [(k,) for k in keys])
    db.commit()
    return db


def test_reconcile_reports_rows_compared_as_each_side_is_scanned() -> None:
    seen: list[int] = []
    result = reconcile(
        SqliteSide(_orders(range(1, 1_001))), SqliteSide(_orders(range(1, 991))), progress=seen.append
    )
    assert seen == [1_000, 1_990]
    assert seen[-1] == result.compared_rows
    assert len(result.omissions) == 10
