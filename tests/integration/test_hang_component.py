"""HangComponent on the embedded stack: a declared component's process stops (its
heartbeat in logs/NAME.log stops growing) and goes on after the revert; a hang a runner
left behind is reverted by the stack's reaper when the run's lease expires; a scenario
naming a component the running stack lacks is refused by `datadrill run --dry-run`."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TEST_CONFIG, run_cli, stop_stack
from datadrill.backends.embedded import EmbeddedBackend
from datadrill.clock import MonotonicClock
from datadrill.config import parse_config
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.faults.hang import read_proc_state
from datadrill.faults.ledger import FaultLedger, inject
from datadrill.model import HangComponent
from datadrill.paths import StatePaths
from datadrill.session import start_stack
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

HEARTBEAT = r"""
import itertools, time
for beat in itertools.count():
    print(f"beat {beat}", flush=True)
    time.sleep(0.05)
"""

TYPO = """
from datadrill.model import *
SCENARIO = Scenario(
    name="typo",
    slos=(SLO("queries", sli=QuerySuccess(), objective=0.999),),
    schedule=(HangComponent("beatr", at_s=1, duration_s=2),),
)
"""


@pytest.fixture(scope="module")
def beating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """A stack running only a declared component ``beater`` that logs a heartbeat line
    every 50 ms."""
    root = tmp_path_factory.mktemp("hang")
    script = root / "beater.py"
    script.write_text(HEARTBEAT, encoding="utf-8")
    data = {
        **TEST_CONFIG,
        "platform": {"reference": False},
        "components": {"beater": {"command": [sys.executable, str(script)], "ready": {"log": "beat 0"}}},
    }
    config = parse_config(data, source="test")
    stack = start_stack(EmbeddedBackend(), StatePaths(root / ".datadrill"), config, timeout_s=90)
    yield stack
    stop_stack(stack)


def beats(stack: StackClient) -> int:
    return stack.paths.log("beater").read_text(encoding="utf-8").count("beat ")


def test_a_hung_declared_component_makes_no_progress_until_continued(
    beating: StackClient, tmp_path: Path
) -> None:
    stack = beating
    wait_until(lambda: beats(stack) > 3, timeout=60, what="the beater's heartbeat")
    pid = stack.components.get("beater").pid
    assert pid is not None
    context = DrillContext(stack, tmp_path, MonotonicClock())
    handle = inject(
        HangComponent("beater", at_s=0, duration_s=30),
        context,
        ledger=FaultLedger.for_stack(stack.paths.root),
    )
    assert handle.landed == f"beater (pid {pid}) stopped: state T in /proc/{pid}/stat"
    stopped_at = beats(stack)
    # Twenty heartbeats' time: a running beater would have logged about twenty lines.
    time.sleep(1.0)
    assert beats(stack) == stopped_at
    status = stack.components.get("beater")
    assert (status.pid, status.restarts) == (pid, 0)  # hung, not crashed: nothing restarted it
    assert handle.revert().startswith(f"beater (pid {pid}) continued (SIGCONT): state ")
    wait_until(lambda: beats(stack) > stopped_at + 3, timeout=30, what="the heartbeat to go on")
    assert stack.components.get("beater").pid == pid
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []


def test_dry_run_refuses_a_component_the_running_stack_lacks(beating: StackClient, tmp_path: Path) -> None:
    scenario = tmp_path / "typo.py"
    scenario.write_text(TYPO, encoding="utf-8")
    result = run_cli("run", "--dry-run", "--state-dir", str(beating.paths.root), str(scenario))
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert "schedule[0].component = 'beatr' is invalid: a component of this stack: beater" in said, said


def test_the_reaper_continues_a_hang_whose_run_stopped_renewing(stack: StackClient, tmp_path: Path) -> None:
    """The reference sink hung under a run lease that is never renewed, as by a runner
    SIGKILLed mid-hang: the stack reverts it from the fault ledger."""
    run_id = uuid.uuid4().hex[:12]
    stack.runs.acquire(run_id=run_id, scenario="hang", pid=os.getpid(), run_dir=str(tmp_path), lease_s=1.0)
    context = DrillContext(stack, tmp_path, MonotonicClock(), run_id=run_id)
    ledger = FaultLedger.for_stack(stack.paths.root)
    handle = inject(HangComponent("sink", at_s=0, duration_s=60), context, ledger=ledger)
    pid = int(handle.data["pid"])
    wait_until(lambda: stack.runs.holder() is None, timeout=60, interval=0.1, what="the lease to expire")
    notes = [
        r["note"] for r in ledger.records() if r.get("op") == "reverted" and r.get("id") == handle.fault_id
    ]
    assert notes and notes[0].startswith(f"reverted by lease expiry: sink (pid {pid}) continued (SIGCONT)"), (
        notes
    )
    seen = read_proc_state(pid)
    assert seen is not None and seen.state != "T"
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack")
