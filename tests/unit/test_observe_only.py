"""Observe-only runs on an in-memory stack: with ``[platform] reference = false`` the runner
injects faults into the pretend traffic and measures, drives no workload, skips the
reference platform's final reconciliation and says so in the report; a scenario that needs
the reference platform (or names a component the stack lacks) is refused before the run,
with nothing written and nothing changed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fake_stack import FakeStack, _Process

from datadrill.clock import FakeClock
from datadrill.config import ComponentConfig, PlatformConfig, StackConfig
from datadrill.engine.observe import OBSERVE_ONLY_NOTE, check_platform
from datadrill.engine.runner import Runner
from datadrill.errors import ConfigError
from datadrill.faults.ledger import FaultLedger
from datadrill.model import (
    SLO,
    CanaryLatency,
    ConnectorErrorRate,
    ConnectorHealth,
    ConsumerLag,
    DataIntegrity,
    Expectations,
    KillComponent,
    LagSpike,
    QuerySuccess,
    ReplayKafka,
    RestartRate,
    RollbackProducer,
    Runbook,
    Scenario,
    SchemaDrift,
    ThresholdAlert,
)
from datadrill.model.faults import ConnectorTaskFailure
from datadrill.model.recovery import PauseComponent, RestartConnector, ResumeComponent
from datadrill.model.report import Verdict
from datadrill.model.scenario import SteadyState, Workload
from datadrill.model.slo import Target
from datadrill.reporting import write_reports

TEAM = Target(topic="clicks", group="sessionizer", table="analytics.sessions", event_time_column="ended_at")


class YieldingClock(FakeClock):
    """Fake time; a runbook thread's steps take none (see test_runner_fake_stack)."""

    def sleep(self, seconds: float) -> None:
        if threading.current_thread() is threading.main_thread():
            for thread in threading.enumerate():
                if thread.name == "recovery":
                    thread.join(timeout=30)
        super().sleep(seconds)


def _team_stack(root: Path, *, reference: bool = False) -> FakeStack:
    """A stack that runs the team's producer and consumer (and, with ``reference``, the
    reference platform beside them)."""
    stack = FakeStack(root)
    stack.config = StackConfig(
        platform=PlatformConfig(reference=reference),
        components={
            "producer": ComponentConfig(command=("python", "producer.py")),
            "sessionizer": ComponentConfig(command=("python", "consumer.py"), group="sessionizer"),
        },
    )
    if not reference:
        stack.components.procs = {}
        stack.connect.connector_types = {}
    stack.components.procs |= {"producer": _Process(201), "sessionizer": _Process(202)}
    stack.connect.connector_types |= {"producer": "source", "sessionizer": "sink"}
    return stack


def _scenario(**changes: Any) -> Scenario:
    fields: dict[str, Any] = {
        "name": "sessionizer-task-failure",
        "workload": Workload(rate=0),
        "slos": (
            SLO("sessionizer healthy", sli=ConnectorHealth(component="sessionizer"), objective=0.99,
                alert=ThresholdAlert(for_s=1)),
            SLO("sessions queryable", sli=QuerySuccess(target=TEAM), objective=0.99),
        ),
        "schedule": (ConnectorTaskFailure(at_s=2, component="sessionizer", duration_s=3),),
        "steady_state": SteadyState(warmup_s=1, timeout_s=10),
        "expectations": Expectations(detect_within_s=5, recover_within_s=30),
        "stabilisation_s": 2.0,
        "max_duration_s": 120.0,
    }
    fields.update(changes)
    return Scenario(**fields)


def test_an_observe_only_run_injects_and_measures_and_writes_nothing(tmp_path: Path) -> None:
    stack = _team_stack(tmp_path / "stack")
    # No verify callback: on a stack with the reference platform the runner would reconcile
    # the reference source against dwh.orders, which the fake stack cannot (no engine).
    report = Runner(_scenario(), stack=stack, run_dir=tmp_path / "run", clock=YieldingClock()).run()

    assert report.verdict is Verdict.PASSED, report.reasons
    assert report.ttd_s is not None and report.ttr_s is not None and report.ttr_s > report.ttd_s
    assert ("fail", "sessionizer") in stack.calls  # the fault hit the team's consumer
    assert not [c for c in stack.calls if c[0] == "workload"]  # no workload was driven
    assert stack.workload.settings.rate == 200.0
    assert report.integrity is None  # the reference reconciliation was skipped...
    assert report.notes == (
        f"{OBSERVE_ONLY_NOTE} (no workload or canaries were driven, and the final verification "
        "(which reconciles the reference platform's source against its dwh.orders) was skipped)",
    )
    assert report.timeline[0].text.endswith("(observe-only: no reference platform)")
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []
    # ...and the report says so, in every format.
    written = write_reports(report, tmp_path / "run", formats=("md", "html", "json"))
    for path in written.values():
        assert "observe-only: the stack runs no reference platform" in path.read_text(encoding="utf-8").replace(
            "Observe-only", "observe-only"
        )


def test_the_same_scenario_on_a_stack_with_the_reference_platform_drives_the_workload(tmp_path: Path) -> None:
    """The contrast: with the reference platform the runner sets the workload and verifies."""
    stack = _team_stack(tmp_path / "stack", reference=True)
    verified: list[bool] = []

    def verify(context: Any) -> Any:
        from datadrill.integrity.result import ReconcileResult

        verified.append(True)
        return ReconcileResult(
            compared_rows=2, source_rows=1, sink_rows=1, duplicates=(), omissions=(), discrepancies=(),
            unexpected=(), elapsed_s=0.01, queries=2, ranges_examined=1,
        )

    report = Runner(_scenario(), stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=verify).run()
    assert report.verdict is Verdict.PASSED, report.reasons
    assert ("workload", 0.0, 0.5) in stack.calls and verified == [True]
    assert report.notes == ()


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"workload": Workload(rate=100)}, r"workload\.rate = 100\.0", r"expected Workload\(rate=0\): a rate drives the reference platform's order generator, but"),
        (
            {"slos": (SLO("canaries", sli=CanaryLatency(max_latency_s=5, target=TEAM), objective=0.9),)},
            r"slos\[0\]\.sli = 'CanaryLatency'",
            "follows the canaries the reference workload writes",
        ),
        (
            {"slos": (SLO("errors", sli=ConnectorErrorRate(max_per_s=1), objective=0.9),)},
            r"slos\[0\]\.sli = 'ConnectorErrorRate'",
            "reads the reference relay's and sink's error counters",
        ),
        (
            {"slos": (SLO("integrity", sli=DataIntegrity(target=TEAM), objective=0.9),)},
            r"slos\[0\]\.sli = 'DataIntegrity'",
            "reconciles the reference platform's source orders",
        ),
        (
            {"schedule": (LagSpike(at_s=1, duration_s=2),)},
            r"schedule\[0\] = 'LagSpike'",
            "bursts the reference workload",
        ),
        (
            {"schedule": (SchemaDrift(at_s=1, change="rename"),)},
            r"schedule\[0\] = 'SchemaDrift'",
            "reference relay's writer schema",
        ),
        (
            {"schedule": (KillComponent(at_s=1),)},
            r"schedule\[0\]\.component = 'sink'",
            "expected a component of this stack: producer, sessionizer; sink is the reference platform's, but",
        ),
        (
            {"recovery": Runbook(steps=(PauseComponent(component="sessionizer"), RollbackProducer(),
                                        ResumeComponent(component="sessionizer")))},
            r"recovery\.steps\[1\] = 'RollbackProducer'",
            "rolls the reference relay's writer schema back",
        ),
        (
            # ReplayKafka needs the sink paused around it: the pause is what is refused first.
            {"recovery": Runbook(steps=(PauseComponent(component="sink"), ReplayKafka(),
                                        ResumeComponent(component="sink")))},
            r"recovery\.steps\[0\]\.component = 'sink'",
            "expected a component of this stack: producer, sessionizer",
        ),
    ],
)
def test_a_scenario_that_needs_the_reference_platform_is_refused_before_the_run(
    tmp_path: Path, changes: dict[str, Any], field: str, says: str
) -> None:
    stack = _team_stack(tmp_path / "stack")
    scenario = _scenario(**changes)
    runner = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=YieldingClock())
    with pytest.raises(ConfigError, match=rf"^{scenario.name}: {field} is invalid: .*{says}") as refused:
        runner.run()
    assert str(refused.value).endswith(
        "this stack runs none ([platform] reference = false; its components: producer, sessionizer), and an "
        "observe-only run only injects faults into the traffic already there and measures"
    )
    # Refused before anything: no journal, no lease taken, nothing done to the stack.
    assert not (tmp_path / "run").exists()
    assert stack.runs.holder() is None and stack.calls == []
    # The same scenario on a stack with the reference platform passes this check.
    check_platform(scenario, _team_stack(tmp_path / "ref", reference=True), source="s.py")


def test_a_plugins_fault_can_say_it_needs_the_reference_platform(tmp_path: Path) -> None:
    from pydantic.dataclasses import dataclass

    @dataclass(frozen=True)
    class Spec:
        at_s: float = 0.0
        kind: str = "acme.drain_outbox"
        needs_reference_platform: str = "it drains the reference relay's outbox"

    scenario = _scenario()
    object.__setattr__(scenario, "schedule", (Spec(),))
    with pytest.raises(ConfigError, match=r"schedule\[0\] = 'Spec' is invalid: .*drains the reference relay's outbox"):
        check_platform(scenario, _team_stack(tmp_path / "stack"), source="s.py")


def test_a_users_target_on_an_observe_only_stack_passes(tmp_path: Path) -> None:
    scenario = _scenario(
        slos=(
            SLO("lag", sli=ConsumerLag(max_messages=1000, target=TEAM), objective=0.99),
            SLO("restarts", sli=RestartRate(max_per_min=2, component="sessionizer"), objective=0.99),
            SLO("integrity", sli=DataIntegrity(target=Target(table="analytics.sessions", source_query="SELECT 1")),
                objective=0.99),
        ),
        schedule=(KillComponent(at_s=1, component="sessionizer", times=3, every_s=1),),
        recovery=Runbook(steps=(RestartConnector(component="sessionizer"),)),
    )
    check_platform(scenario, _team_stack(tmp_path / "stack"), source="s.py")


@pytest.mark.parametrize(
    ("sli", "says"),
    [
        (RestartRate(max_per_min=1, component="sesionizer"), r"= 'sesionizer' is invalid: a component of this stack: producer, sessionizer, lake$"),
        (ConnectorHealth(component="sesionizer"), r"= 'sesionizer' is invalid: a connector Kafka Connect knows: producer, sessionizer$"),
        (RestartRate(max_per_min=1, component="lake"), "= 'lake' is invalid: a supervised component: restarts are counted"),
    ],
)
def test_an_sli_naming_a_component_the_stack_lacks_is_refused(tmp_path: Path, sli: Any, says: str) -> None:
    stack = _team_stack(tmp_path / "stack")
    stack.config.components["lake"] = ComponentConfig(connector="iceberg-sink")
    scenario = _scenario(slos=(SLO("named", sli=sli, objective=0.9),))
    with pytest.raises(ConfigError, match=rf"^s\.py: slos\[0\]\.sli\.component {says}"):
        check_platform(scenario, stack, source="s.py")


def test_the_dry_run_lists_the_refusal_among_its_problems(tmp_path: Path) -> None:
    from datadrill.engine.dry_run import plan

    stack = _team_stack(tmp_path / "stack")
    dry = plan(_scenario(schedule=(SchemaDrift(at_s=1, change="rename"),)), stack, FakeClock(), source="s.py")
    assert not dry.ok
    assert any(p.startswith("s.py: schedule[0] = 'SchemaDrift' is invalid: it needs the reference platform") for p in dry.problems), dry.problems
    assert plan(_scenario(), stack, FakeClock(), source="s.py").problems == ()
