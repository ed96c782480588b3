"""The runner end to end against an in-memory stack: steady state, a fault, an alert, a
runbook, verification, the ledger and the reports — no process, no socket, a fake clock.

This is the proof that the harness sees stacks only through the ``Stack`` protocol.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fake_stack import FakeStack

from datadrill.clock import FakeClock
from datadrill.engine.runner import Runner
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.faults.ledger import FaultLedger
from datadrill.integrity.result import ReconcileResult
from datadrill.model import (
    SLO,
    BrokerLoss,
    Expectations,
    KafkaRequestErrors,
    QuerySuccess,
    RollbackProducer,
    Runbook,
    Scenario,
    SchemaDrift,
    ThresholdAlert,
)
from datadrill.model.recovery import PauseComponent, ResumeComponent
from datadrill.model.report import Verdict
from datadrill.model.scenario import SteadyState
from datadrill.reporting import write_reports
from datadrill.stack.port import KafkaCapability


class YieldingClock(FakeClock):
    """Fake time for the runner's loop. The runbook runs on a thread of its own; while it
    works, the runner's sleeps wait for it in real time, so its steps take no fake time
    and every figure below is the same on every run, however loaded the machine."""

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
    )


def _scenario(**changes: object) -> Scenario:
    fields: dict[str, object] = {
        "name": "fake-drift",
        "slos": (SLO("mart queries succeed", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=1)),),
        "schedule": (SchemaDrift(at_s=2, change="rename", enforcement=False),),
        "recovery": Runbook(
            steps=(PauseComponent(component="relay"), RollbackProducer(), ResumeComponent(component="relay")),
            response_delay_s=1,
        ),
        "steady_state": SteadyState(warmup_s=1, timeout_s=10),
        "expectations": Expectations(detect_within_s=5, recover_within_s=30),
        "stabilisation_s": 2.0,
        "max_duration_s": 600.0,
    }
    fields.update(changes)
    return Scenario(**fields)  # type: ignore[arg-type]


def test_a_whole_game_day_runs_on_an_in_memory_stack(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    scenario = _scenario()  # loads the plugins (and their imports) before the clock starts
    threads_before = {t.name for t in threading.enumerate()}
    runner = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact)
    began = time.monotonic()
    report = runner.run()
    elapsed = time.monotonic() - began

    assert report.verdict is Verdict.PASSED, report.reasons
    # Detected after the alert's 1 s for-duration (probing every 0.5 s), within 5 s.
    assert report.ttd_s is not None and 1.0 <= report.ttd_s <= 5.0
    assert report.ttr_s is not None and report.ttr_s > report.ttd_s
    assert report.integrity is not None and report.integrity.verified
    kinds = [p.kind for p in report.phases]
    assert kinds[0] == "steady_state" and "verification" in kinds
    assert [p.name for p in report.phases if p.kind == "recovery_step"] == [
        s.describe() for s in _scenario().recovery.steps  # type: ignore[union-attr]
    ]
    # What the runner did to the stack, through the protocol only: the relay is a connector,
    # paused and resumed through Kafka Connect's API.
    assert ("connect.pause", "relay") in stack.calls and ("connect.resume", "relay") in stack.calls
    assert stack.platform.contract.writer is None and stack.platform.contract.enforce
    assert ("workload", scenario.workload.rate, scenario.workload.canary_interval_s) in stack.calls
    assert stack.workload.settings.rate == 200.0  # the stack's own rate again
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []
    # The reports render from the journal alone.
    written = write_reports(report, tmp_path / "run", formats=("md", "json"))
    assert "fake-drift" in written["md"].read_text(encoding="utf-8")
    # In memory, with fake time: far from the minute the same scenario takes for real
    # (a generous bound: the figure itself is printed by `pytest -s`).
    print(f"fake-stack game day: {elapsed:.3f} s of real time")
    assert elapsed < 30, elapsed
    leftover = {t.name for t in threading.enumerate()} - threads_before
    assert not {name for name in leftover if name == "probe-round"}


def test_an_unrecovered_fault_fails_the_run_and_is_still_reverted(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    # No runbook: nothing rolls the producer back until the run gives up and reverts.
    scenario = _scenario(recovery=Runbook(steps=(PauseComponent(component="relay"),), response_delay_s=1),
                         max_duration_s=20.0)
    report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact).run()
    assert report.verdict is Verdict.NOT_RECOVERED
    assert stack.platform.contract.writer is None  # the fault came back out
    assert not stack.components.get("relay").paused  # the runbook's pause too
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []


def test_a_fault_the_backend_cannot_do_is_refused_before_anything_is_injected(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack", capabilities=frozenset({KafkaCapability.BROKER_LOSS}))
    scenario = _scenario(schedule=(BrokerLoss(at_s=1, broker=1, duration_s=2),
                                   KafkaRequestErrors(at_s=2)))
    from datadrill.engine.preflight import check_capabilities

    with pytest.raises(ConfigError, match=r"schedule\[1\].*request_errors: the fake stack was built without it"):
        check_capabilities(scenario, stack, source="fake.py")
    report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact).run()
    assert report.verdict is Verdict.ERROR
    assert not [c for c in stack.calls if c[0] in ("broker_down", "push_request_errors")]


def test_a_task_failure_on_a_real_connect_cluster_is_refused_before_the_run(tmp_path: Path) -> None:
    from datadrill.engine.preflight import check_capabilities
    from datadrill.model import ConnectorTaskFailure

    stack = FakeStack(tmp_path / "stack")
    scenario = _scenario(schedule=(ConnectorTaskFailure(at_s=1, component="sink"),))
    check_capabilities(scenario, stack, source="fake.py")  # the stack's own Connect API: fine
    stack.connect.embedded = False  # now a real cluster's, named by [connect] url
    with pytest.raises(ConfigError, match=r"schedule\[0\].*real cluster's, whose REST API cannot fail a task"):
        check_capabilities(scenario, stack, source="fake.py")
    report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact).run()
    assert report.verdict is Verdict.ERROR
    assert not [c for c in stack.calls if c[0] == "fail"]


def test_a_runbook_restarting_a_connector_connect_does_not_know_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    from datadrill.engine.preflight import check_capabilities
    from datadrill.model.recovery import RestartConnector

    stack = FakeStack(tmp_path / "stack")
    scenario = _scenario(recovery=Runbook(steps=(RestartConnector(component="sinkk"),)))
    with pytest.raises(ConfigError, match=r"recovery.steps\[0\].component = 'sinkk'.*relay, sink"):
        check_capabilities(scenario, stack, source="fake.py")
    check_capabilities(_scenario(recovery=Runbook(steps=(RestartConnector(component="sink"),))), stack, source="f")


def test_a_dead_stack_process_ends_the_run_with_an_error_that_says_so(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    stack.pid = 4242  # a stack with a process: the runner watches it

    class DyingClock(YieldingClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.monotonic() - 1000.0 > 4:  # after the fault, before recovery ends
                stack.die()

    report = Runner(_scenario(), stack=stack, run_dir=tmp_path / "run", clock=DyingClock(), verify=_exact).run()
    assert report.verdict is Verdict.ERROR
    assert any("stack process (pid 4242) died" in reason for reason in report.reasons), report.reasons


def test_a_late_fault_ends_when_the_next_on_its_key_is_due(tmp_path: Path) -> None:
    """A duration counts from when a fault took effect: one that landed late still holds
    its exclusive key when the next fault on that key is due. It is reverted first, so the
    two never overlap; a fault on another key is left alone."""
    from datadrill.engine.journal import Journal

    stack = FakeStack(tmp_path / "stack")
    scenario = _scenario(
        schedule=(BrokerLoss(at_s=2, duration_s=2, broker=1), BrokerLoss(at_s=5, duration_s=2, broker=1))
    )
    runner = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact)

    class Handle:
        description = "a fault"
        reverted = 0

        def revert(self) -> str:
            self.reverted += 1
            return "reverted"

    same, other = Handle(), Handle()
    runner._exclusive = {1: "broker:1", 2: "broker:2"}
    timed = [(100.0, 1, "kafka.broker_loss", same), (100.0, 2, "kafka.broker_loss", other)]
    (tmp_path / "run").mkdir()
    runner.journal = Journal.create(tmp_path / "run" / "journal.jsonl", clock=FakeClock())
    try:
        runner._end_overlapping(scenario.schedule[1], timed)
    finally:
        runner.journal.close()
    assert same.reverted == 1 and other.reverted == 0
    assert [entry[1] for entry in timed] == [2]
