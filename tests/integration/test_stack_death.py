"""A stack process that dies in the middle of a run (SIGKILL, OOM): the run ends soon after
with the verdict ``error`` and a message naming the pid; ``stack status`` says the process
died; ``stack up`` afterwards starts a healthy stack and reverts what was left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli, start_stack, stop_stack
from datadrill.engine.wait import wait_until
from datadrill.faults.ledger import FaultLedger

pytestmark = pytest.mark.integration

SCENARIO = """
from datadrill.model import (
    SLO, Automatic, BrokerLatency, CanaryLatency, Expectations, QuerySuccess, Scenario,
    SteadyState, ThresholdAlert, Workload,
)

SCENARIO = Scenario(
    name="stack-dies-mid-run",
    workload=Workload(rate=400, canary_interval_s=0.5),
    slos=(
        SLO("queries", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=1)),
        SLO("canaries", sli=CanaryLatency(max_latency_s=30), objective=0.99, alert=ThresholdAlert(for_s=2)),
    ),
    steady_state=SteadyState(warmup_s=1, timeout_s=60),
    schedule=(BrokerLatency(at_s=1, duration_s=60, rtt_ms=200),),
    recovery=Automatic(),
    expectations=Expectations(recover_within_s=90),
    probe_interval_s=0.5,
    max_duration_s=120,
    verify_integrity=False,
)
"""


def _journal_types(path: Path) -> list[str]:
    if not path.exists():
        return []
    types = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            types.append(json.loads(line)["type"])
        except (ValueError, KeyError):
            continue  # a line being written
    return types


def test_a_run_ends_soon_after_its_stack_process_dies(tmp_path: Path) -> None:
    state_dir = tmp_path / ".datadrill"
    stack = start_stack(state_dir)
    scenario = tmp_path / "dies.py"
    scenario.write_text(SCENARIO, encoding="utf-8")
    run_dir = tmp_path / "run"
    runner = subprocess.Popen(
        [sys.executable, "-m", "datadrill.cli", "run", str(scenario), "--state-dir", str(state_dir),
         "--report-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: "fault_injected" in _journal_types(run_dir / "journal.jsonl"),
            timeout=120,
            what="the run to inject its fault",
        )
        pid = int(stack.state["pid"])
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        output, _ = runner.communicate(timeout=120)
        ended_after = time.monotonic() - killed
    finally:
        if runner.poll() is None:
            runner.kill()
    text = output.decode(errors="replace")
    print(f"the run ended {ended_after:.1f} s after the stack process died")
    assert runner.returncode == 1, text
    assert "ERROR" in text and f"stack process (pid {pid}) died" in text, text
    # Generous: the figure that matters is printed above (it was ~90 s before the watch).
    assert ended_after < 60, ended_after

    status = run_cli("stack", "status", "--state-dir", str(state_dir))
    assert status.returncode == 1
    assert f"stack process (pid {pid})" in status.stdout + status.stderr
    assert "died" in status.stdout + status.stderr

    # The fault could not be reverted with the process gone: it waits in the ledger, and
    # the next stack reverts it before it counts as healthy.
    assert FaultLedger.for_stack(state_dir).outstanding() != []
    again = start_stack(state_dir)
    try:
        assert again.status().healthy
        assert FaultLedger.for_stack(state_dir).outstanding() == []
    finally:
        stop_stack(again)
