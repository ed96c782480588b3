"""Component faults and steps on any component (reference or declared), HangComponent on a
real process this test starts, connector components dispatched to Kafka Connect's REST
API (the fake stack's ``connect`` port playing a real cluster), and the component-name
checks of the loader, the preflight and ``datadrill run --dry-run``."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fake_stack import FakeStack, _Process
from pydantic import ValidationError

from datadrill.clock import MonotonicClock
from datadrill.config import StackConfig, parse_config
from datadrill.engine.loader import load_scenario
from datadrill.engine.preflight import check_capabilities
from datadrill.engine.wait import wait_until
from datadrill.errors import ConfigError, ControlError
from datadrill.faults.base import DrillContext
from datadrill.faults.conformance import check_plugin
from datadrill.faults.hang import read_proc_state
from datadrill.faults.ledger import FaultLedger, cleanup, inject
from datadrill.faults.registry import plugin_for
from datadrill.model import HangComponent, KillComponent, PauseComponent, RestartConnector, ResumeComponent
from datadrill.model.faults import ConnectorTaskFailure
from datadrill.recovery import run_step
from datadrill.stack.port import ComponentStatus

CONNECT_URL = "http://127.0.0.1:8083"


def declared(connect: bool = False, reference: bool = True) -> StackConfig:
    """A config with a process component ``enricher`` and, with ``connect``, a connector
    component ``orders-sink`` (connector ``iceberg-sink`` of the cluster at [connect] url)."""
    components: dict[str, Any] = {"enricher": {"command": ["python", "-m", "enricher"]}}
    data: dict[str, Any] = {"components": components, "platform": {"reference": reference}}
    if connect:
        components["orders-sink"] = {"connector": "iceberg-sink"}
        data["connect"] = {"url": CONNECT_URL}
    return parse_config(data, source="datadrill.toml")


# -- the model -------------------------------------------------------------------------


def test_component_faults_and_steps_take_any_component_name() -> None:
    assert KillComponent(at_s=0, component="enricher").component == "enricher"
    assert ConnectorTaskFailure(at_s=0, component="enricher").component == "enricher"
    assert PauseComponent(component="orders-sink").describe() == "pause the orders-sink"
    assert ResumeComponent(component="enricher").component == "enricher"
    assert KillComponent(at_s=0).component == "sink"  # the defaults stay
    hang = HangComponent("enricher", at_s=5, duration_s=20)
    assert (hang.kind, hang.describe()) == ("component.hang", "enricher hung (SIGSTOP) for 20 s")
    for bad in ("", "has space", "-lead", "a/b"):
        with pytest.raises(ValidationError, match="should match pattern"):
            KillComponent(at_s=0, component=bad)
    with pytest.raises(ValidationError, match="duration_s"):
        HangComponent("enricher", at_s=0)  # type: ignore[call-arg]


def test_mid_commit_stays_for_the_relay_and_the_sink() -> None:
    assert KillComponent(at_s=0, component="relay", moment="mid_commit").moment == "mid_commit"
    with pytest.raises(
        ValidationError, match=r"relay or the sink \(they have crash points; 'enricher' has none\)"
    ):
        KillComponent(at_s=0, component="enricher", moment="mid_commit")
    with pytest.raises(ValidationError, match="not a crash loop"):
        KillComponent(at_s=0, component="sink", moment="mid_commit", times=2, every_s=1)


# -- names checked before anything runs --------------------------------------------------

SCENARIO = """\
from datadrill.model import *

SCENARIO = Scenario(
    name="hang",
    slos=(SLO("queries", sli=QuerySuccess(), objective=0.999),),
    schedule=({fault},),
    recovery=Runbook(steps=({step},)),
)
"""


def scenario_file(tmp_path: Path, fault: str, step: str = "ResumeComponent('sink')") -> Path:
    path = tmp_path / "x.py"
    path.write_text(SCENARIO.format(fault=fault, step=step))
    return path


def test_the_loader_refuses_a_component_the_config_lacks(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, "HangComponent('enrichr', at_s=1, duration_s=2)")
    load_scenario(path)  # without a config any well-formed name passes
    with pytest.raises(ConfigError) as caught:
        load_scenario(path, config=declared())
    assert str(caught.value) == (
        f"{path}: schedule[0].component = 'enrichr' is invalid: a component of this stack: "
        "workload, relay, sink, enricher"
    )
    good = scenario_file(tmp_path, "HangComponent('enricher', at_s=1, duration_s=2)")
    assert load_scenario(good, config=declared()).faults[0].component == "enricher"


def test_without_the_reference_platform_its_components_are_unknown(tmp_path: Path) -> None:
    path = scenario_file(
        tmp_path, "KillComponent(at_s=1, component='enricher')", step="PauseComponent('sink')"
    )
    with pytest.raises(
        ConfigError,
        match=r"recovery\.steps\[0\]\.component = 'sink' is invalid: a component "
        r"of this stack: enricher$",
    ):
        load_scenario(path, config=declared(reference=False))


def test_a_connect_clusters_connectors_are_left_to_the_preflight(tmp_path: Path) -> None:
    # With [connect] url a name may be one of the cluster's connectors: only the stack can ask.
    path = scenario_file(tmp_path, "KillComponent(at_s=1, component='orders-jdbc')")
    assert load_scenario(path, config=declared(connect=True)).faults[0].component == "orders-jdbc"


def test_the_preflight_names_the_stacks_components_and_connectors(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    stack.config = declared(connect=True)
    stack.connect.embedded = False
    stack.connect.connector_types = {"iceberg-sink": "sink", "orders-jdbc": "source"}
    ok = load_scenario(scenario_file(tmp_path, "KillComponent(at_s=1, component='orders-jdbc')"))
    check_capabilities(ok, stack, source="x.py")
    bad = load_scenario(scenario_file(tmp_path, "HangComponent('enrichr', at_s=1, duration_s=1)"))
    with pytest.raises(ConfigError) as caught:
        check_capabilities(bad, stack, source="scenarios/x.py")
    assert str(caught.value) == (
        "scenarios/x.py: schedule[0].component = 'enrichr' is invalid: a component of this stack: "
        "workload, relay, sink, enricher, orders-sink, iceberg-sink, orders-jdbc (with the connectors "
        f"of Kafka Connect at {CONNECT_URL}: iceberg-sink, orders-jdbc)"
    )
    # A runbook may restart a connector component by its component name.
    restart = load_scenario(
        scenario_file(
            tmp_path, "KillComponent(at_s=1, component='orders-sink')", step="RestartConnector('orders-sink')"
        )
    )
    check_capabilities(restart, stack, source="x.py")
    stack.connect.connector_types = {"orders-jdbc": "source"}
    with pytest.raises(
        ConfigError, match=r"recovery\.steps\[0\]\.component = 'orders-sink'.*no 'iceberg-sink'"
    ):
        check_capabilities(restart, stack, source="x.py")


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a stack was started for a scenario that names a component no stack has")


def test_dry_run_refuses_an_unknown_component_without_a_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datadrill.cli.main import main

    (tmp_path / "datadrill.toml").write_text(
        '[components.enricher]\ncommand = ["python", "-m", "enricher"]\n'
    )
    path = scenario_file(tmp_path, "HangComponent('enrichr', at_s=1, duration_s=2)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATADRILL_STATE_DIR", raising=False)
    stderr = io.StringIO()
    argv = ["datadrill", "run", "--dry-run", "--state-dir", str(tmp_path / "state"), str(path)]
    with (
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
        mock.patch.object(sys, "argv", argv),
        mock.patch("datadrill.session.start_stack", _refuse),
        pytest.raises(SystemExit) as exited,
    ):
        main()
    assert exited.value.code == 2
    text = " ".join(stderr.getvalue().split())  # rich wraps the line to the terminal
    assert (
        "schedule[0].component = 'enrichr' is invalid: a component of this stack: workload, relay, sink, enricher"
        in text
    )
    assert not (tmp_path / "state").exists()


# -- connector components: Kafka Connect's REST API -------------------------------------


@pytest.fixture
def cluster_stack(tmp_path: Path) -> FakeStack:
    """A stack whose [connect] url is a real cluster with connector ``iceberg-sink`` (the
    component ``orders-sink``), beside a declared process ``enricher``."""
    stack = FakeStack(tmp_path / "stack")
    stack.config = declared(connect=True)
    stack.connect.embedded = False
    stack.connect.connector_types = {"iceberg-sink": "sink"}
    stack.components.procs["iceberg-sink"] = _Process(900)  # the cluster's task, in the fake
    stack.components.procs["enricher"] = _Process(700)
    return stack


def test_a_connector_components_faults_and_steps_go_through_connect(
    cluster_stack: FakeStack, tmp_path: Path
) -> None:
    stack = cluster_stack
    context = DrillContext(stack, tmp_path / "run", MonotonicClock())
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    kill = KillComponent(at_s=0, component="orders-sink")
    assert plugin_for(kill.kind).target(kill, context) == (
        f"connector iceberg-sink of Kafka Connect at {CONNECT_URL} (iceberg-sink RUNNING): "
        "POST /connectors/iceberg-sink/restart?includeTasks=true"
    )
    inject(kill, context, ledger=ledger).revert()
    assert ("connect.restart", "iceberg-sink", True, False) in stack.calls

    run_step(PauseComponent(component="orders-sink"), context)
    assert stack.connect.status("iceberg-sink").state == "PAUSED"
    run_step(ResumeComponent(component="orders-sink"), context)
    assert stack.connect.status("iceberg-sink").state == "RUNNING"
    assert [c for c in stack.calls if c[0] in ("connect.pause", "connect.resume")] == [
        ("connect.pause", "iceberg-sink"),
        ("connect.resume", "iceberg-sink"),
    ]
    run_step(RestartConnector(component="orders-sink"), context)
    assert ("connect.restart", "iceberg-sink", True, True) in stack.calls
    assert not [c for c in stack.calls if c[0] in ("kill", "pause", "resume")]  # no process touched


def test_a_crash_loop_of_a_connector_component_restarts_it_times_times(
    cluster_stack: FakeStack, tmp_path: Path
) -> None:
    context = DrillContext(cluster_stack, tmp_path / "run", MonotonicClock())
    spec = KillComponent(at_s=0, component="orders-sink", times=3, every_s=0.05)
    handle = inject(spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl"))

    def restarts() -> int:
        return sum(1 for c in cluster_stack.calls if c[:2] == ("connect.restart", "iceberg-sink"))

    wait_until(lambda: restarts() == 3, timeout=30, what="three restarts of iceberg-sink")
    assert handle.revert() == "nothing to revert: Kafka Connect restarted connector iceberg-sink"


def test_a_hung_connector_component_is_paused_then_resumed(cluster_stack: FakeStack, tmp_path: Path) -> None:
    context = DrillContext(cluster_stack, tmp_path / "run", MonotonicClock())
    spec = HangComponent("orders-sink", at_s=0, duration_s=5)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == (
        f"connector iceberg-sink of Kafka Connect at {CONNECT_URL} (iceberg-sink RUNNING): "
        "PUT /connectors/iceberg-sink/pause, resume after 5 s"
    )
    assert check_plugin(plugin, spec, context, ledger=FaultLedger(tmp_path / "c.jsonl")) == []
    handle = inject(spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl"))
    assert handle.landed == "Kafka Connect reports iceberg-sink PAUSED"
    assert handle.revert() == "connector iceberg-sink resumed (iceberg-sink RUNNING)"
    assert not [c for c in cluster_stack.calls if c[0] == "kill"]


def test_a_declared_process_beside_a_connect_cluster_stays_a_process(
    cluster_stack: FakeStack, tmp_path: Path
) -> None:
    context = DrillContext(cluster_stack, tmp_path / "run", MonotonicClock())
    inject(KillComponent(at_s=0, component="enricher"), context, ledger=FaultLedger(tmp_path / "l.jsonl"))
    assert ("kill", "enricher", "SIGKILL") in cluster_stack.calls
    assert not [c for c in cluster_stack.calls if c[0] == "connect.restart"]


def test_a_connector_component_the_cluster_lacks_is_an_error(
    cluster_stack: FakeStack, tmp_path: Path
) -> None:
    cluster_stack.connect.connector_types = {"orders-jdbc": "source"}
    context = DrillContext(cluster_stack, tmp_path / "run", MonotonicClock())
    with pytest.raises(ConfigError, match=r"component = 'orders-sink'.*no 'iceberg-sink'.*only orders-jdbc"):
        run_step(PauseComponent(component="orders-sink"), context)


# -- HangComponent on a real process ----------------------------------------------------


class ProcessComponents:
    """The components port over real processes this test starts: ``kill`` signals them as
    the stack's control route does; ``restart`` plays the supervisor starting a new one."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.signals: list[tuple[str, str, int]] = []

    def start(self, name: str) -> int:
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]
        )
        return self.procs[name].pid

    def restart(self, name: str) -> int:
        old = self.procs[name]
        old.kill()
        old.wait()
        return self.start(name)

    def get(self, name: str) -> ComponentStatus:
        if name not in self.procs:
            raise ControlError(f"unknown component {name!r}")
        proc = self.procs[name]
        return ComponentStatus(name, "", True, "running", pid=proc.pid)

    def list(self) -> tuple[ComponentStatus, ...]:
        return tuple(self.get(name) for name in self.procs)

    def kill(self, name: str, signal: str = "SIGKILL") -> int:
        import signal as signals

        pid = self.procs[name].pid
        self.signals.append((name, signal, pid))
        os.kill(pid, signals.Signals[signal])
        return pid

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()


@pytest.fixture
def process_stack(tmp_path: Path) -> Iterator[FakeStack]:
    stack = FakeStack(tmp_path / "stack")
    stack.config = declared()
    components = ProcessComponents()
    components.start("enricher")
    stack.components = components  # type: ignore[assignment]
    yield stack
    components.stop_all()


def state_of(pid: int) -> str:
    seen = read_proc_state(pid)
    assert seen is not None
    return seen.state


def test_a_hang_stops_the_process_and_the_revert_continues_it(
    process_stack: FakeStack, tmp_path: Path
) -> None:
    components: ProcessComponents = process_stack.components  # type: ignore[assignment]
    pid = components.procs["enricher"].pid
    context = DrillContext(process_stack, tmp_path / "run", MonotonicClock())
    spec = HangComponent("enricher", at_s=0, duration_s=5)
    assert plugin_for(spec.kind).target(spec, context).startswith(f"component enricher (pid {pid}, state ")
    handle = inject(spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl"))
    assert handle.landed == f"enricher (pid {pid}) stopped: state T in /proc/{pid}/stat"
    assert state_of(pid) == "T"
    assert handle.revert().startswith(f"enricher (pid {pid}) continued (SIGCONT): state ")
    assert state_of(pid) != "T"
    assert [s[1] for s in components.signals] == ["SIGSTOP", "SIGCONT"]
    again = plugin_for(spec.kind).revert(handle.data, context)  # idempotent
    assert again.startswith(f"nothing to revert: enricher (pid {pid}) is not stopped (state ")
    assert len(components.signals) == 2


def test_the_hang_conforms(process_stack: FakeStack, tmp_path: Path) -> None:
    context = DrillContext(process_stack, tmp_path / "run", MonotonicClock())
    spec = HangComponent("enricher", at_s=0, duration_s=1)
    assert check_plugin(plugin_for(spec.kind), spec, context, ledger=FaultLedger(tmp_path / "c.jsonl")) == []


def test_cleanup_continues_a_process_a_dead_run_left_stopped(
    process_stack: FakeStack, tmp_path: Path
) -> None:
    components: ProcessComponents = process_stack.components  # type: ignore[assignment]
    pid = components.procs["enricher"].pid
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    # Injected and never reverted, as if the runner had been SIGKILLed right after.
    inject(
        HangComponent("enricher", at_s=0, duration_s=60),
        DrillContext(process_stack, tmp_path, MonotonicClock()),
        ledger=ledger,
    )
    assert state_of(pid) == "T"
    (result,) = cleanup(process_stack, ledger=ledger)
    assert result.ok and result.note.startswith(f"enricher (pid {pid}) continued (SIGCONT)")
    assert state_of(pid) != "T"
    assert ledger.outstanding() == []


def test_a_component_restarted_meanwhile_gets_no_sigcont(process_stack: FakeStack, tmp_path: Path) -> None:
    components: ProcessComponents = process_stack.components  # type: ignore[assignment]
    old = components.procs["enricher"].pid
    handle = inject(
        HangComponent("enricher", at_s=0, duration_s=60),
        DrillContext(process_stack, tmp_path, MonotonicClock()),
        ledger=FaultLedger(tmp_path / "ledger.jsonl"),
    )
    new = components.restart("enricher")
    assert handle.revert() == (
        f"nothing to revert: pid {old} of enricher is gone (now pid {new}); a process started since needs no SIGCONT"
    )
    assert [s[1] for s in components.signals] == ["SIGSTOP"]


def test_a_hang_that_does_not_land_is_reported(process_stack: FakeStack, tmp_path: Path) -> None:
    from datadrill.errors import FaultNotLanded

    components: ProcessComponents = process_stack.components  # type: ignore[assignment]
    # A control route that answers and signals nothing: the kernel's view says so.
    components.kill = lambda name, signal="SIGKILL": components.procs[name].pid  # type: ignore[method-assign]
    with pytest.raises(
        FaultNotLanded, match=r"expected enricher \(pid \d+\) stopped \(state T\) within 1 s; saw enricher"
    ):
        inject(
            HangComponent("enricher", at_s=0, duration_s=5),
            DrillContext(process_stack, tmp_path, MonotonicClock()),
            ledger=FaultLedger(tmp_path / "ledger.jsonl"),
            landing_bound_s=1,
        )


def test_proc_state_parses_a_command_name_with_spaces_and_parens(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["123456"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text(f"42 (my (odd) name) {' '.join(fields)}\n")
    seen = read_proc_state(42, proc=tmp_path)
    assert seen is not None and (seen.state, seen.start_ticks) == ("S", 123456)
    assert read_proc_state(43, proc=tmp_path) is None
