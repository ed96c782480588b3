"""ConnectorTaskFailure, RestartConnector, ConnectorHealth and the connector faults that go
through Kafka Connect's API, on the in-memory stack (its ``connect`` port plays the stack's
own Connect API, or with ``embedded`` False a real Connect cluster named by [connect] url)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_stack import FakeStack

from datadrill.clock import FakeClock
from datadrill.errors import ConfigError, FaultNotLanded
from datadrill.faults.base import DrillContext
from datadrill.faults.conformance import check_plugin
from datadrill.faults.connector import ConnectorTaskFailureFault
from datadrill.faults.ledger import FaultLedger, inject
from datadrill.faults.registry import plugin_for
from datadrill.faults.stack_state import pause_spec
from datadrill.model import ConnectorHealth, ConnectorTaskFailure, KillComponent, RestartConnector
from datadrill.model.recovery import PauseComponent, ResumeComponent, Runbook
from datadrill.model.slo import ConnectorErrorRate, RestartRate
from datadrill.platform.supervisor import EventLog
from datadrill.probes.base import ProbeEnv
from datadrill.probes.registry import build_probe
from datadrill.recovery import run_step


@pytest.fixture
def stack(tmp_path: Path) -> FakeStack:
    return FakeStack(tmp_path / "stack")


@pytest.fixture
def context(stack: FakeStack, tmp_path: Path) -> DrillContext:
    return DrillContext(stack, tmp_path / "run", FakeClock())


def test_a_task_failure_stays_until_restart_connector(
    stack: FakeStack, context: DrillContext, tmp_path: Path
) -> None:
    spec = ConnectorTaskFailure(at_s=0, component="sink")
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == "connector sink's task 0 (sink RUNNING) at http://127.0.0.1:8083"
    handle = inject(spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl"))
    assert handle.landed.startswith("sink RUNNING (task 0 FAILED); trace: org.apache.kafka.connect.errors")
    assert ("fail", "sink") in stack.calls
    assert stack.connect.status("sink").failed_tasks

    result = run_step(RestartConnector(component="sink"), context)
    assert result.detail.startswith("connector sink: task 0 restarted (was FAILED); sink RUNNING after ")
    assert ("connect.restart", "sink", True, True) in stack.calls
    assert handle.revert() == "nothing to revert: sink RUNNING"


def test_revert_restarts_a_task_still_failed(stack: FakeStack, context: DrillContext, tmp_path: Path) -> None:
    handle = inject(
        ConnectorTaskFailure(at_s=0, component="relay"), context, ledger=FaultLedger(tmp_path / "l")
    )
    assert handle.revert() == "connector relay restarted (its task was FAILED); now relay RUNNING"


def test_the_fault_conforms(context: DrillContext, tmp_path: Path) -> None:
    problems = check_plugin(
        ConnectorTaskFailureFault(),
        ConnectorTaskFailure(at_s=0),
        context,
        ledger=FaultLedger(tmp_path / "ledger.jsonl"),
    )
    assert problems == []


def test_confirm_refuses_a_task_that_never_failed(context: DrillContext) -> None:
    spec = ConnectorTaskFailure(at_s=0)
    with pytest.raises(FaultNotLanded, match=r"connector sink's task FAILED within 1 s; saw sink RUNNING"):
        plugin_for(spec.kind).confirm(spec, context, {"component": "sink"}, 1.0)


def test_a_real_connect_cluster_refuses_the_fault_with_the_reason(
    stack: FakeStack, context: DrillContext
) -> None:
    stack.connect.embedded = False
    spec = ConnectorTaskFailure(at_s=0)
    with pytest.raises(ConfigError) as caught:
        plugin_for(spec.kind).target(spec, context)
    assert caught.value.field == "ConnectorTaskFailure.component"
    assert "cannot be made to fail a task through its REST API" in str(caught.value)
    with pytest.raises(ConfigError):
        plugin_for(spec.kind).apply(spec, context, {"component": "sink"})
    assert ("fail", "sink") not in stack.calls


def test_pause_and_resume_of_a_connector_go_through_connect(stack: FakeStack, context: DrillContext) -> None:
    assert (
        run_step(PauseComponent(component="sink"), context).detail
        == "sink stopped through Kafka Connect's API"
    )
    assert stack.connect.status("sink").state == "PAUSED"
    resumed = run_step(ResumeComponent(component="sink"), context)
    assert resumed.detail == "connector sink resumed (sink RUNNING)"
    # The workload is not a connector: the components port.
    run_step(PauseComponent(component="workload"), context)
    run_step(ResumeComponent(component="workload"), context)
    assert stack.calls == [
        ("connect.pause", "sink"),
        ("connect.resume", "sink"),
        ("pause", "workload"),
        ("resume", "workload"),
    ]


def test_the_runners_pause_on_a_connect_cluster_is_confirmed_by_its_status(
    stack: FakeStack, context: DrillContext, tmp_path: Path
) -> None:
    stack.connect.embedded = False
    handle = inject(pause_spec("sink"), context, ledger=FaultLedger(tmp_path / "ledger.jsonl"))
    assert handle.landed == "Kafka Connect reports sink PAUSED"
    assert handle.revert() == "connector sink resumed (sink RUNNING)"
    assert stack.calls == [("connect.pause", "sink"), ("connect.resume", "sink")]


def test_a_name_the_connect_cluster_does_not_know_is_refused(stack: FakeStack, context: DrillContext) -> None:
    stack.connect.embedded = False
    stack.connect.connector_types = {"orders-jdbc": "source"}
    with pytest.raises(ConfigError, match=r"component = 'sink'.*Kafka Connect cluster at .*: orders-jdbc"):
        run_step(PauseComponent(component="sink"), context)
    assert not [c for c in stack.calls if c[0] == "pause"]  # not the stack's own sink instead


def test_a_kill_on_a_connect_cluster_is_a_rest_restart(
    stack: FakeStack, context: DrillContext, tmp_path: Path
) -> None:
    stack.connect.embedded = False
    spec = KillComponent(at_s=0, component="sink")
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == (
        "connector sink of Kafka Connect at http://127.0.0.1:8083 (sink RUNNING): "
        "POST /connectors/sink/restart?includeTasks=true"
    )
    handle = inject(spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl"))
    assert handle.landed.startswith("Kafka Connect answered the restart (sink RUNNING (task 0 RESTARTING))")
    assert ("connect.restart", "sink", True, False) in stack.calls
    assert not [c for c in stack.calls if c[0] == "kill"]
    with pytest.raises(ConfigError, match=r"KillComponent\.moment"):
        plugin.target(KillComponent(at_s=0, component="sink", moment="mid_commit"), context)


def test_a_kill_on_the_embedded_stack_stays_a_sigkill(
    stack: FakeStack, context: DrillContext, tmp_path: Path
) -> None:
    inject(KillComponent(at_s=0, component="sink"), context, ledger=FaultLedger(tmp_path / "ledger.jsonl"))
    assert ("kill", "sink", "SIGKILL") in stack.calls
    assert not [c for c in stack.calls if c[0] == "connect.restart"]


def test_restart_connector_is_a_runbook_step(stack: FakeStack, context: DrillContext) -> None:
    runbook = Runbook(steps=(RestartConnector(component="orders-jdbc"),))
    assert runbook.steps[0].describe() == "restart the orders-jdbc connector's failed tasks"
    assert run_step(RestartConnector(), context).detail == (
        "nothing to restart: no task of sink was FAILED; sink RUNNING"
    )


def test_connector_health_reads_connect(stack: FakeStack) -> None:
    env = ProbeEnv.from_stack(stack, FakeClock())
    probe = build_probe(ConnectorHealth(component="sink"), env)
    assert probe.measure().good
    stack.connect.pause("sink")
    paused = probe.measure()
    assert (paused.value, paused.good, paused.error) == (0.0, False, "sink PAUSED")
    stack.connect.resume("sink")
    stack.components.fail("sink", "boom")
    assert probe.measure().error == "sink RUNNING (task 0 FAILED)"
    with pytest.raises(ConfigError, match=r"ConnectorHealth\.component = 'nope'.*Connector nope not found"):
        build_probe(ConnectorHealth(component="nope"), env)


def test_task_failures_count_as_restarts_and_as_connector_errors(stack: FakeStack) -> None:
    clock = FakeClock()
    env = ProbeEnv.from_stack(stack, clock)
    restarts = build_probe(RestartRate(max_per_min=0.5, window_s=60), env)
    errors = build_probe(ConnectorErrorRate(max_per_s=10), env)
    assert restarts.measure().value == 0
    errors.measure()
    log = EventLog(stack.paths.events_file)
    log.append({"event": "process_failed", "component": "sink", "mono": clock.monotonic()})
    log.append({"event": "process_failed", "component": "workload", "mono": clock.monotonic()})
    clock.sleep(1.0)
    assert restarts.measure().value == 2.0  # two failures in a 60 s window: 2/min
    assert errors.measure().value == 1.0  # the sink's (the workload is not a connector): 1 in 1 s
