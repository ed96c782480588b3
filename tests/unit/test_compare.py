"""Compare: recovery paths measured on the same loss, one applied — the model's rules, the
measurement modes found by kind, the runner's phases on an in-memory stack, and the
report's side-by-side table, row sources, stages and action items (no processes)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fake_stack import FakeStack
from pydantic import ValidationError

from datadrill import events as ev
from datadrill.clock import FakeClock
from datadrill.engine.loader import load_scenario
from datadrill.engine.measure import measure
from datadrill.engine.runner import Runner
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.faults.registry import PluginError
from datadrill.integrity.result import ReconcileResult
from datadrill.model import (
    SLO,
    Compare,
    DeleteCatalogEntry,
    Expectations,
    PauseComponent,
    QuerySuccess,
    RecoveryPath,
    ReplayKafka,
    ResnapshotFromSource,
    ResumeComponent,
    RollbackProducer,
    Runbook,
    Scenario,
    SchemaDrift,
    ThresholdAlert,
)
from datadrill.model.scenario import ProductionVolume, SteadyState
from datadrill.recovery import StepResult, register_step, unregister_step
from datadrill.recovery.compare import check_compare, measure_for, path_steps, run_compare
from datadrill.recovery.registry import implementations
from datadrill.reporting._content import build_content
from datadrill.reporting.html import render_html
from datadrill.reporting.markdown import render_markdown

CDC = RecoveryPath("CDC re-snapshot", steps=(ResnapshotFromSource(workers=4),))
KAFKA = RecoveryPath("Kafka replay", steps=(ReplayKafka(start="earliest", workers=4),))


# -- the model ---------------------------------------------------------------------------


def test_a_compare_names_the_path_it_applies_and_measures_the_others_first() -> None:
    compare = Compare(paths=(CDC, KAFKA), apply="Kafka replay")
    assert compare.applied is KAFKA and compare.measured == (CDC,)
    order = [(path.name, measured) for path, _, measured in path_steps(compare)]
    assert order == [("CDC re-snapshot", True), ("Kafka replay", False)]
    assert "CDC re-snapshot measured" in compare.describe() and "Kafka replay applied" in compare.describe()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"paths": (CDC, KAFKA), "apply": "kafka"}, "apply='kafka' names no path"),
        ({"paths": (CDC, CDC), "apply": "CDC re-snapshot"}, "repeated: ['CDC re-snapshot']"),
        ({"paths": (CDC,), "apply": "CDC re-snapshot"}, "at least 2"),
        (
            {
                "paths": (RecoveryPath("pause", steps=(PauseComponent(component="sink"),)), KAFKA),
                "apply": "Kafka replay",
            },
            "PauseComponent (pause_component) has no measurement mode",
        ),
    ],
)
def test_a_bad_compare_is_refused_with_what_is_allowed(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        Compare(**kwargs)


def test_paths_cannot_nest() -> None:
    inner = Compare(paths=(CDC, KAFKA), apply="Kafka replay")
    with pytest.raises(ValidationError, match="paths cannot nest"):
        Compare(paths=(RecoveryPath("nested", steps=(inner,)), CDC), apply="CDC re-snapshot")


def test_a_compare_applying_a_replay_needs_the_sink_paused_around_it() -> None:
    compare = Compare(paths=(CDC, KAFKA), apply="Kafka replay")
    with pytest.raises(ValidationError, match="pause the sink before the Compare"):
        Runbook(steps=(compare,))
    Runbook(steps=(PauseComponent(component="sink"), compare, ResumeComponent(component="sink")))
    # Only measured, a replay writes nothing: no pause is needed.
    Runbook(steps=(Compare(paths=(CDC, KAFKA), apply="CDC re-snapshot"),))


def test_a_scenario_with_a_bad_compare_fails_to_load_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad_compare.py"
    path.write_text(
        "from datadrill.model import *\n"
        "from datadrill.model import Compare, RecoveryPath\n"
        "SCENARIO = Scenario(name='x', slos=(SLO('q', sli=QuerySuccess(), objective=0.9),),\n"
        "    schedule=(DeleteCatalogEntry(at_s=1),),\n"
        "    recovery=Runbook(steps=(Compare(paths=(\n"
        "        RecoveryPath('restore', steps=(RestoreCatalogBackup(),)),\n"
        "        RecoveryPath('cdc', steps=(ResnapshotFromSource(),))), apply='cdc'),)))\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "\n" not in message and "bad_compare.py" in message and "(line " in message
    assert "RestoreCatalogBackup (restore_catalog_backup) has no measurement mode" in message


def test_names_inside_a_compares_paths_are_checked_like_the_runbooks(tmp_path: Path) -> None:
    path = tmp_path / "restore_in_path.py"
    path.write_text(
        "from datadrill.model import *\n"
        "from datadrill.model import Compare, RecoveryPath\n"
        "SCENARIO = Scenario(name='x', slos=(SLO('q', sli=QuerySuccess(), objective=0.9),),\n"
        "    schedule=(TakeCatalogBackup(at_s=0, name='nightly'), DeleteCatalogEntry(at_s=1)),\n"
        "    recovery=Runbook(steps=(Compare(paths=(\n"
        "        RecoveryPath('restore', steps=(RestoreCatalogBackup(backup='weekly'),)),\n"
        "        RecoveryPath('cdc', steps=(ResnapshotFromSource(),))), apply='restore'),)))\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_scenario(path)
    assert "recovery restores backup 'weekly' but the schedule takes ['nightly']" in str(caught.value)

    from datadrill.engine.preflight import named_components

    compare = Compare(
        paths=(CDC, RecoveryPath("restart", steps=(PauseComponent(component="enricher"),))), apply="restart"
    )
    scenario = Scenario(
        name="x",
        slos=(SLO("q", sli=QuerySuccess(), objective=0.9),),
        schedule=(DeleteCatalogEntry(at_s=1),),
        recovery=Runbook(steps=(compare,)),
    )
    assert list(named_components(scenario)) == [("recovery.steps[0].paths[1].steps[0].component", "enricher")]


# -- measurement modes found by kind -----------------------------------------------------


@dataclass(frozen=True)
class ProbeStep:
    """A plugin's step spec (StepSpec: kind and describe)."""

    label: str = "probe"
    kind: str = "test.probe"

    def describe(self) -> str:
        return f"{self.label} the platform"


@dataclass(frozen=True)
class FixStep:
    kind: str = "test.fix"

    def describe(self) -> str:
        return "fix the platform"


@dataclass
class Calls:
    seen: list[tuple[str, str]] = field(default_factory=list)


class MeasurablePlugin:
    """A StepPlugin whose object also offers measure(): Compare finds it behind ``run``."""

    kind = "test.probe"

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def run(self, step: Any, context: DrillContext) -> StepResult:
        self.calls.seen.append(("run", step.kind))
        return StepResult("probed", rows=1_000, rate_per_s=1_000.0)

    def measure(self, step: Any, context: DrillContext) -> StepResult:
        self.calls.seen.append(("measure", step.kind))
        return StepResult("would probe 2,000 rows", rows=2_000, rate_per_s=4_000.0)


@pytest.fixture
def plugins() -> Any:
    calls = Calls()

    def fix(step: Any, context: DrillContext) -> StepResult:
        calls.seen.append(("run", step.kind))
        return StepResult("fixed 500 rows", rows=500, rate_per_s=250.0)

    register_step("test.probe", MeasurablePlugin(calls).run)
    register_step("test.fix", fix)
    try:
        yield calls
    finally:
        unregister_step("test.probe")
        unregister_step("test.fix")


def test_the_built_in_steps_offer_their_measurement_mode() -> None:
    known = implementations()
    assert measure_for("resnapshot_from_source", known) is not None
    assert measure_for("replay_kafka", known) is not None
    assert measure_for("reconcile", known) is None


def test_a_plugins_measurement_mode_is_found_and_one_without_is_refused(plugins: Calls) -> None:
    known = implementations()
    assert measure_for("test.probe", known) is not None
    assert measure_for("test.fix", known) is None
    ok = Compare(
        paths=(RecoveryPath("probe", steps=(ProbeStep(),)), RecoveryPath("fix", steps=(FixStep(),))),
        apply="fix",
    )
    check_compare(ok, known)
    backwards = Compare(
        paths=(RecoveryPath("probe", steps=(ProbeStep(),)), RecoveryPath("fix", steps=(FixStep(),))),
        apply="probe",
    )
    with pytest.raises(PluginError, match=r"path 'fix' steps\[0\] \(test.fix\) is measured, not applied"):
        check_compare(backwards, known)


def test_run_compare_measures_first_and_applies_one_path(plugins: Calls, tmp_path: Path) -> None:
    context = DrillContext(FakeStack(tmp_path / "stack"), tmp_path, FakeClock())  # type: ignore[arg-type]
    compare = Compare(
        paths=(RecoveryPath("fix", steps=(FixStep(),)), RecoveryPath("probe", steps=(ProbeStep(),))),
        apply="fix",
    )
    result = run_compare(compare, context, implementations())
    assert plugins.seen == [("measure", "test.probe"), ("run", "test.fix")]
    assert result.rows == 500  # only what was applied
    assert result.extra is not None and result.extra["compare"]["apply"] == "fix"


# -- the runner and the report, on an in-memory stack ---------------------------------------


class YieldingClock(FakeClock):
    """Fake time; the runner's sleeps wait for the runbook's thread (see test_runner_fake_stack)."""

    def sleep(self, seconds: float) -> None:
        if threading.current_thread() is threading.main_thread():
            for thread in threading.enumerate():
                if thread.name == "recovery":
                    thread.join(timeout=30)
        super().sleep(seconds)


def _exact(context: DrillContext) -> ReconcileResult:
    return ReconcileResult(
        compared_rows=10, source_rows=5, sink_rows=5, duplicates=(), omissions=(), discrepancies=(),
        unexpected=(), elapsed_s=0.01, queries=2, ranges_examined=1,
    )  # fmt: skip


def _scenario(compare: Compare) -> Scenario:
    return Scenario(
        name="fake-compare",
        slos=(SLO("mart queries succeed", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=1)),),
        schedule=(SchemaDrift(at_s=2, change="rename", enforcement=False),),
        recovery=Runbook(
            steps=(PauseComponent(component="relay"), compare, ResumeComponent(component="relay")),
            response_delay_s=1,
        ),
        steady_state=SteadyState(warmup_s=1, timeout_s=10),
        expectations=Expectations(detect_within_s=5, recover_within_s=30),
        stabilisation_s=2.0,
        max_duration_s=600.0,
        production=ProductionVolume(events_per_s=200_000, table_rows=1_000_000),
    )


def test_the_runner_journals_each_path_step_and_the_report_sets_them_side_by_side(
    plugins: Calls, tmp_path: Path
) -> None:
    compare = Compare(
        paths=(
            RecoveryPath("probe only", steps=(ProbeStep(),)),
            RecoveryPath("roll back and fix", steps=(RollbackProducer(), FixStep())),
        ),
        apply="roll back and fix",
    )
    runner = Runner(
        _scenario(compare), stack=FakeStack(tmp_path / "stack"), run_dir=tmp_path / "run",
        clock=YieldingClock(), verify=_exact,
    )  # fmt: skip
    report = runner.run()
    assert report.verdict.value == "passed", report.reasons
    # The measured path ran its measurement mode only, before the applied path ran for real.
    assert plugins.seen == [("measure", "test.probe"), ("run", "test.fix")]
    names = [p.name for p in report.phases if p.kind == "recovery_step"]
    measured = "probe only (measured, not applied): probe the platform"
    applied = "roll back and fix: fix the platform"
    assert names.index(measured) < names.index("roll back and fix: roll the producer back to the contract's writer schema")
    assert names.index(applied) < names.index(compare.describe())  # the Compare's phase ends last

    comparison = report.comparison
    assert comparison is not None and comparison.applied == "roll back and fix"
    probe, fix = comparison.paths
    assert (probe.name, probe.applied, probe.rows) == ("probe only", False, 2_000)
    assert (fix.name, fix.applied, fix.rows) == ("roll back and fix", True, 500)
    assert [s.measured for s in probe.steps] == [True] and [s.measured for s in fix.steps] == [False, False]
    # Projected to 200,000 events/s from the workload's rate (the stack's default 1,000/s
    # for the fake drift scenario), step by step with the report's own projection.
    scale = 200_000 / runner.scenario.workload.rate
    assert probe.steps[0].projected_rows == int(2_000 * scale)
    assert probe.projected_s is not None and probe.projected_s > 0
    assert probe.meets_objective == (probe.projected_s <= 30)
    assert fix.meets_objective == (fix.projected_s is not None and fix.projected_s <= 30)

    # The run's own projection and replay figures count only what was applied.
    assert report.projection is not None
    projected = [row.phase for row in report.projection.rows]
    assert measured not in projected and compare.describe() not in projected and applied in projected
    assert [(r.source, r.rows) for r in report.row_sources] == []  # plugin steps name no source
    assert [s.name for s in report.stages] == [
        "Loss and detection",
        "Recovery paths weighed",
        "Recovery",
        "Reconciliation and verification",
    ]
    assert any("Recovery path 'probe only' (measured)" in item for item in report.action_items)

    content = build_content(report)
    titles = [section.title for section in content.sections]
    assert titles.index("Recovery") < titles.index("Recovery paths compared") < titles.index("Integrity")
    markdown = render_markdown(report)
    assert "| probe only | measured, not applied | 2,000 |" in markdown


def test_a_plugin_without_a_measurement_mode_is_refused_before_the_run(plugins: Calls, tmp_path: Path) -> None:
    compare = Compare(
        paths=(RecoveryPath("fix", steps=(FixStep(),)), RecoveryPath("probe", steps=(ProbeStep(),))),
        apply="probe",
    )
    stack = FakeStack(tmp_path / "stack")
    runner = Runner(_scenario(compare), stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact)
    with pytest.raises(ConfigError, match=r"recovery.steps\[1\].*test.fix\) is measured, not applied"):
        runner.run()
    assert not (tmp_path / "run" / "journal.jsonl").exists() and plugins.seen == []


# -- the report from a journal: sources, stages and action items ---------------------------

WALL = "2026-11-30T00:00:00+00:00"


def _incident_journal(measured_ok: bool = True) -> list[ev.Event]:
    events: list[ev.Event] = []

    def add(t: float, event: ev.Event) -> None:
        events.append(event.model_copy(update={"seq": len(events) + 1, "t": t, "mono": t, "wall": WALL}))

    def phase(t0: float, t1: float, name: str, step: str, **finished: Any) -> None:
        add(t0, ev.PhaseStarted(name=name, kind="recovery_step", step=step))
        add(t1, ev.PhaseFinished(name=name, kind="recovery_step", step=step, **finished))

    add(
        0.0,
        ev.RunStarted(
            scenario="incident", run_id="r", workload_rate=500,
            expectations=ev.ExpectationsInfo(detect_within_s=10, recover_within_s=600),
            production=ev.ProductionInfo(events_per_s=50_000, table_rows=5_000_000_000),
        ),
    )  # fmt: skip
    add(0.0, ev.BackupTaken(name="nightly", snapshot_id=1, rows=1_000))
    add(8.0, ev.ReserveTaken(name="reserve", table="dwh.orders", snapshot_id=2, rows=4_000))
    add(20.0, ev.FaultInjected(fault_id=1, kind="kafka.retention", description="Kafka keeps only 8 s"))
    add(22.0, ev.FaultInjected(fault_id=2, kind="metadata.catalog_entry", description="catalog entry deleted"))
    add(24.0, ev.AlertFired(slo="mart queries succeed", rule="bad for 2 s"))
    phase(26.0, 26.5, "restore the catalog from backup 'nightly'", "restore_catalog_backup", rows=1_000)
    compare = "compare recovery paths"
    add(27.0, ev.PhaseStarted(name=compare, kind="recovery_step", step="compare"))
    measured = {"compare_path": "CDC", "compare_measured": True}
    applied = {"compare_path": "Kafka", "compare_measured": False}
    if measured_ok:
        phase(27.0, 29.0, "CDC (measured, not applied): re-snapshot", "resnapshot_from_source",
              rows=6_000, rate_per_s=3_000.0, extra=measured)  # fmt: skip
    else:
        phase(27.0, 29.0, "CDC (measured, not applied): re-snapshot", "resnapshot_from_source",
              ok=False, detail="QueryFailed: source down", extra=measured)  # fmt: skip
    phase(29.0, 31.0, "Kafka: replay Kafka from earliest", "replay_kafka", rows=2_000, rate_per_s=1_000.0,
          extra={"replay_rows": 2_000, "unreachable_total": 1_234, **applied})  # fmt: skip
    phase(31.0, 32.0, "Kafka: backfill from reserve", "backfill_from_reserve", rows=3_000, rate_per_s=3_000.0,
          extra=applied)  # fmt: skip
    add(32.0, ev.PhaseFinished(name=compare, kind="recovery_step", step="compare", extra={"compare": {
        "apply": "Kafka", "paths": [
            {"name": "CDC", "applied": False, "steps": ["resnapshot_from_source"]},
            {"name": "Kafka", "applied": True, "steps": ["replay_kafka", "backfill_from_reserve"]},
        ]}}))  # fmt: skip
    phase(32.0, 34.0, "reconcile source against sink and repair", "reconcile", rows=14_000, rate_per_s=7_000.0,
          extra={"compared_rows": 14_000, "duplicates": 0, "omissions": 400, "discrepancies": 0,
                 "unexpected": 0, "repaired_rows": 410, "inserted_rows": 400})  # fmt: skip
    add(40.0, ev.RunFinished(verdict="passed"))
    return events


def test_the_postmortem_says_which_path_meets_the_objective_and_where_rows_came_from() -> None:
    report = measure(_incident_journal())
    comparison = report.comparison
    assert comparison is not None and comparison.recover_within_s == 600
    cdc, kafka = comparison.paths
    # 50,000 events/s in production vs 500/s here: rows × 100.
    assert cdc.steps[0].projected_rows == 600_000 and kafka.rows == 5_000
    assert cdc.projected_s is not None and kafka.projected_s is not None
    assert cdc.meets_objective == (cdc.projected_s <= 600)
    assert kafka.meets_objective == (kafka.projected_s <= 600)
    # Only what was applied: replay 2,000 rows, not the re-snapshot's measured 6,000.
    assert report.rows_replayed == 2_000
    assert report.projection is not None
    assert all("measured" not in row.phase and row.phase != "compare recovery paths" for row in report.projection.rows)
    assert [(r.source, r.rows) for r in report.row_sources] == [
        ("restored catalog backup (rows in its snapshot)", 1_000),
        ("Kafka replay", 2_000),
        ("reserve backfill", 3_000),
        ("repair from the source (rows inserted)", 400),  # not the 10 it deleted
    ]
    loss = report.stages[0]
    assert (loss.name, loss.start_s, loss.end_s) == ("Loss and detection", 20.0, 24.0)
    actions = "\n".join(report.action_items)
    assert "backup 'nightly' was 22.0 s old when the table was lost" in actions
    assert "Kafka keeps only 8 s at t+20.0 s), so a replay could not close the gap: 1,234 offsets" in actions
    assert "reserve 'reserve' was 14.0 s old" in actions and "400 rows were in neither Kafka nor the reserve" in actions
    assert "Recovery path 'CDC' (measured)" in actions and "Recovery path 'Kafka' (applied)" in actions
    markdown = render_markdown(report)
    page = render_html(report)
    for heading in ("The incident, stage by stage", "Recovery paths compared", "Where the rows came from"):
        assert heading in markdown and heading in page
    assert "| Kafka replay | Kafka: replay Kafka from earliest | 2,000 |" in markdown


def test_a_failed_measurement_leaves_its_path_unprojected_and_says_so() -> None:
    report = measure(_incident_journal(measured_ok=False))
    assert report.comparison is not None
    cdc, kafka = report.comparison.paths
    assert cdc.projected_s is None and cdc.meets_objective is None and kafka.projected_s is not None
    assert any("'CDC' (measured) could not be projected" in item for item in report.action_items)


def test_without_a_production_volume_each_path_is_judged_as_measured() -> None:
    events = _incident_journal()
    start = events[0]
    assert isinstance(start, ev.RunStarted)
    events[0] = start.model_copy(update={"production": None})
    report = measure(events)
    assert report.comparison is not None
    cdc, kafka = report.comparison.paths
    assert cdc.projected_s == pytest.approx(2.0) and kafka.projected_s == pytest.approx(3.0)
    assert cdc.meets_objective is True and kafka.meets_objective is True  # 600 s objective
    assert not any("could not be projected" in item for item in report.action_items)
    assert "with no production volume given (projected as measured)" in render_markdown(report)


def test_a_report_without_a_compare_has_no_incident_sections() -> None:
    events = [e for e in _incident_journal() if not (isinstance(e, ev.PhaseFinished) and e.step == "compare")]
    report = measure(events)
    assert report.comparison is None and report.stages == () and report.row_sources == ()
    assert "Recovery paths compared" not in render_markdown(report)


