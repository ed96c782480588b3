"""The run lease, stop conditions, faults that must land and alerts before the first fault,
on the in-memory stack with fake time (the lease logic itself is the stack process's own:
``backends/stackd/leases.py``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_stack import FakeStack
from test_runner_fake_stack import YieldingClock, _exact, _scenario

from datadrill.backends.stackd.leases import ReapResult, RunLease, RunLeases
from datadrill.clock import FakeClock
from datadrill.engine.runner import Runner
from datadrill.errors import FaultNotLanded, RunLeaseHeld, RunLeaseLost
from datadrill.events import read_events
from datadrill.faults.ledger import FaultLedger, cleanup
from datadrill.faults.registry import plugin_for
from datadrill.model import SLILimit, StackUnhealthy
from datadrill.model.report import Verdict
from datadrill.stack.port import ProducerContract

# -- the stack process's lease ---------------------------------------------------------------


def _leases(clock: FakeClock, reaped: list[str]) -> RunLeases:
    def reaper(lease: RunLease) -> ReapResult:
        reaped.append(lease.run_id)
        return ReapResult(reverted=[{"kind": "x", "ok": True}])

    return RunLeases(clock, reaper=reaper)


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


def test_one_run_at_a_time_the_refusal_names_the_holder() -> None:
    clock = FakeClock()
    leases = _leases(clock, [])
    leases.acquire({"run_id": "a", "scenario": "calibration", "pid": 4242, "lease_s": 10})
    with pytest.raises(RunLeaseHeld, match=r"run a of scenario 'calibration' \(pid 4242\) since") as held:
        leases.acquire({"run_id": "b", "scenario": "metadata-loss", "pid": 1, "lease_s": 10})
    assert held.value.holder["run_id"] == "a"
    # The holder itself may acquire again (idempotent), and after release anyone may.
    leases.acquire({"run_id": "a", "scenario": "calibration", "pid": 4242, "lease_s": 10})
    assert leases.release("a") == {"released": True}
    leases.acquire({"run_id": "b", "scenario": "metadata-loss", "pid": 1, "lease_s": 10})
    assert leases.holder_run_id() == "b"


def test_an_unrenewed_lease_expires_is_reaped_once_and_then_frees_the_stack() -> None:
    clock = FakeClock()
    reaped: list[str] = []
    leases = _leases(clock, reaped)
    leases.acquire({"run_id": "a", "scenario": "s", "pid": 1, "lease_s": 5})
    clock.sleep(4)
    leases.renew("a")
    clock.sleep(4)
    leases.tick()
    assert reaped == []  # renewed 4 s ago: still alive
    clock.sleep(1.5)
    leases.tick()
    leases.tick()
    _wait_for(lambda: leases.holder_run_id() is None)
    assert reaped == ["a"]
    # The run that lost its lease is told so, and cannot take the stack back by renewing.
    with pytest.raises(RunLeaseLost, match="expired and the stack reverted its faults"):
        leases.renew("a")


def test_while_the_stack_reverts_an_expired_run_no_new_run_starts() -> None:
    clock = FakeClock()
    release = threading.Event()

    def slow_reaper(lease: RunLease) -> ReapResult:
        release.wait(10)
        return ReapResult()

    leases = RunLeases(clock, reaper=slow_reaper)
    leases.acquire({"run_id": "a", "scenario": "s", "pid": 1, "lease_s": 1})
    clock.sleep(2)
    leases.tick()
    assert leases.current()["lease"]["state"] == "reverting"
    with pytest.raises(RunLeaseHeld, match="reverting the faults of run a"):
        leases.acquire({"run_id": "b", "scenario": "s", "pid": 2, "lease_s": 1})
    release.set()
    _wait_for(lambda: leases.holder_run_id() is None)
    leases.acquire({"run_id": "b", "scenario": "s", "pid": 2, "lease_s": 1})


def test_a_lease_outside_its_bounds_is_refused() -> None:
    leases = _leases(FakeClock(), [])
    with pytest.raises(ValueError, match="lease_s must be within"):
        leases.acquire({"run_id": "a", "lease_s": 0.1})


def test_a_runner_whose_process_is_gone_is_reaped_before_its_lease_runs_out() -> None:
    import subprocess
    import sys

    from datadrill.procs import pid_namespace

    clock = FakeClock()
    reaped: list[str] = []
    leases = _leases(clock, reaped)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    leases.acquire({"run_id": "a", "scenario": "s", "pid": gone.pid, "lease_s": 600, "pid_ns": pid_namespace()})
    leases.tick()
    _wait_for(lambda: reaped == ["a"])
    # A pid from another pid namespace means nothing here: only the lease's expiry counts.
    leases.acquire({"run_id": "b", "scenario": "s", "pid": gone.pid, "lease_s": 600, "pid_ns": "pid:[1]"})
    leases.tick()
    assert leases.holder_run_id() == "b"


# -- the runner under a lease ----------------------------------------------------------------


def test_a_second_run_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    stack.runs.acquire(run_id="other", scenario="calibration", pid=99, run_dir="", lease_s=60)
    runner = Runner(_scenario(), stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact)
    with pytest.raises(RunLeaseHeld, match="calibration"):
        runner.run()
    assert not (tmp_path / "run").exists()
    assert not stack.calls  # nothing was done to the stack
    assert not FaultLedger.for_stack(stack.paths.root).path.exists()


def test_with_wait_a_run_starts_once_the_holder_is_done(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    stack.runs.acquire(run_id="other", scenario="calibration", pid=99, run_dir="", lease_s=60)
    waits: list[str] = []
    threading.Timer(0.5, stack.runs.release, args=("other",)).start()
    runner = Runner(
        _scenario(),
        stack=stack,
        run_dir=tmp_path / "run",
        clock=YieldingClock(),
        verify=_exact,
        wait_for_stack=True,
        on_wait=waits.append,
    )
    report = runner.run()
    assert report.verdict is Verdict.PASSED, report.reasons
    assert waits and "calibration" in waits[0]
    assert stack.runs.holder() is None  # released at the end


def test_every_fault_is_filed_under_the_run_and_cleanup_keeps_a_live_runs_faults(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    seen: dict[str, Any] = {}

    class Peek(YieldingClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            ledger = FaultLedger.for_stack(stack.paths.root)
            drift = [e for e in ledger.outstanding() if e.kind == "contract.schema_drift"]
            if drift and "cleanup" not in seen:
                # Another shell runs `datadrill cleanup` while the drill runs.
                seen["cleanup"] = cleanup(stack)
                seen["entry"] = drift[0]
                seen["writer"] = stack.platform.contract.writer

    runner = Runner(_scenario(), stack=stack, run_dir=tmp_path / "run", clock=Peek(), verify=_exact)
    report = runner.run()
    assert report.verdict is Verdict.PASSED, report.reasons
    assert seen["entry"].run_id == runner.run_id and seen["entry"].journal_id == 1
    assert seen["cleanup"] and all(r.skipped for r in seen["cleanup"])
    assert seen["writer"] == "rename"  # cleanup did not revert the live run's fault


def test_a_run_that_loses_its_lease_keeps_its_hands_off_the_stack(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    runner: Runner
    lost_at: list[int] = []

    class Starved(YieldingClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            keeper = runner._keeper
            if self.monotonic() - 1000.0 > 4 and keeper is not None and keeper.lost is None:
                # The runner was stopped for longer than its lease: the stack took it back.
                stack.runs.leases.release(runner.run_id)
                _wait_for(lambda: keeper.lost is not None)
                lost_at.append(len(stack.calls))

    runner = Runner(
        _scenario(), stack=stack, run_dir=tmp_path / "run", clock=Starved(), verify=_exact, lease_s=1.0
    )
    report = runner.run()
    assert report.verdict is Verdict.ERROR
    assert any("lost its lease" in reason for reason in report.reasons), report.reasons
    # The runner reverted nothing itself: after the loss the stack is another run's.
    assert stack.platform.contract.writer == "rename"
    (index,) = lost_at
    assert stack.calls[index:] == []  # not even the workload rate was set back


# -- alerts before the first fault -------------------------------------------------------------


def test_an_alert_before_the_first_fault_aborts_the_run_and_is_no_detection(tmp_path: Path) -> None:
    from datadrill.model import SchemaDrift

    stack = FakeStack(tmp_path / "stack")

    class BrokenByAnotherHand(YieldingClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.monotonic() - 1000.0 > 4:
                stack.platform.contract = ProducerContract(writer="retype", enforce=False)

    scenario = _scenario(schedule=(SchemaDrift(at_s=30, change="rename", enforcement=False),))
    report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=BrokenByAnotherHand(), verify=_exact).run()
    assert report.verdict is Verdict.ABORTED
    assert any("steady state lost at t+" in r and "before any fault" in r for r in report.reasons), report.reasons
    assert report.ttd_s is None and report.fault_start_s is None
    assert not [c for c in stack.calls if c[0] in ("pause", "connect.pause")]  # the runbook never started
    events = read_events(tmp_path / "run" / "journal.jsonl")
    assert not [e for e in events if e.type == "fault_injected"]


# -- stop conditions ---------------------------------------------------------------------------


def test_a_crossed_stop_condition_aborts_reverts_and_names_the_value(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    scenario = _scenario(stop_when=(SLILimit(slo="mart queries succeed", below=0.5),))
    report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact).run()
    assert report.verdict is Verdict.ABORTED
    (reason,) = report.reasons
    assert "stop condition crossed at t+" in reason and "mart queries succeed below 0.5" in reason
    assert "mart queries succeed = 0" in reason
    assert stack.platform.contract.writer is None  # the fault came back out
    assert not stack.components.get("relay").paused
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []
    events = read_events(tmp_path / "run" / "journal.jsonl")
    assert [e.type for e in events].count("stop_condition") == 1


def test_an_unhealthy_stack_stop_condition(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")

    class Breaking(YieldingClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if self.monotonic() - 1000.0 > 3.5:
                stack.broken = {"sink"}

    scenario = _scenario(stop_when=(StackUnhealthy(for_s=1.0),))
    report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=Breaking(), verify=_exact).run()
    assert report.verdict is Verdict.ABORTED
    assert "the stack unhealthy for 1 s" in report.reasons[0] and "sink" in report.reasons[0]


def test_a_stop_condition_must_name_an_slo_of_the_scenario() -> None:
    with pytest.raises(ValueError, match=r"stop_when\[0\] names the SLO 'lag'.*mart queries succeed"):
        _scenario(stop_when=(SLILimit(slo="lag", above=1_000_000),))
    with pytest.raises(ValueError, match="exactly one of above= or below="):
        SLILimit(slo="x")


# -- faults that do not land -------------------------------------------------------------------


def test_a_fault_that_does_not_land_is_an_error_not_a_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = FakeStack(tmp_path / "stack")
    plugin = plugin_for("contract.schema_drift")

    def never(spec: Any, context: Any, data: Any, within_s: float) -> str:
        raise FaultNotLanded("the producer still writes its own schema")

    monkeypatch.setattr(plugin, "confirm", never)
    report = Runner(_scenario(), stack=stack, run_dir=tmp_path / "run", clock=YieldingClock(), verify=_exact).run()
    assert report.verdict is Verdict.ERROR
    (reason,) = report.reasons
    assert reason.startswith("fault '") and reason.endswith(
        "' did not take effect: the producer still writes its own schema"
    ), reason
    assert stack.platform.contract.writer is None  # reverted at once
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []


def test_a_stop_condition_during_the_runbook_stops_it_before_its_next_step(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    gate = threading.Event()
    pausing = threading.Event()
    # The relay is a connector: its pause goes through Kafka Connect's API.
    pause = stack.connect.pause

    def slow_pause(name: str) -> None:
        pausing.set()
        gate.wait(30)  # a step still working when the stop condition is crossed
        pause(name)

    stack.connect.pause = slow_pause  # type: ignore[method-assign]

    class Watching(FakeClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            if any(t.name == "recovery" for t in threading.enumerate()):
                # Fake time must not run ahead of the runbook's thread: let it reach the step.
                pausing.wait(10)
            if pausing.is_set() and not stack.broken:
                stack.broken = {"sink"}
                threading.Timer(0.5, gate.set).start()  # the step ends after the abort began

    scenario = _scenario(stop_when=(StackUnhealthy(),))
    report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=Watching(), verify=_exact).run()
    assert report.verdict is Verdict.ABORTED, report.reasons
    assert "stop condition crossed" in report.reasons[0] and "sink" in report.reasons[0], report.reasons
    started = [e.name for e in read_events(tmp_path / "run" / "journal.jsonl") if e.type == "phase_started"]
    steps = [name for name in started if name in {s.describe() for s in scenario.recovery.steps}]  # type: ignore[union-attr]
    assert steps == [scenario.recovery.steps[0].describe()]  # type: ignore[union-attr]
    assert not stack.components.get("relay").paused  # the step's pause came back out
    assert stack.platform.contract.writer is None
