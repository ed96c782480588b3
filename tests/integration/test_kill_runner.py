"""SIGKILL the runner at many points of a scenario: after `datadrill cleanup` no fault is
left applied, the stack is healthy, and the journal holds every event recorded before the
kill (fsync'd per event, sequence numbers without gaps)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli, start_stack, stop_stack
from datadrill.engine.journal import read_journal
from datadrill.engine.wait import wait_until
from datadrill.faults.ledger import FaultLedger
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

KILL_POINTS = 20
SCENARIO = """
from datadrill.model import *

SCENARIO = Scenario(
    name="kill-target",
    workload=Workload(rate=300, canary_interval_s=0.5),
    slos=(SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999, alert=ThresholdAlert(for_s=0.5)),),
    steady_state=SteadyState(warmup_s=0.5, timeout_s=60),
    schedule=(
        LagSpike(at_s=0.2, duration_s=2.5, burst_factor=3, mode="pause"),
        BrokerLoss(at_s=0.5, duration_s=2.5, broker=3),
        HideTable(at_s=0.8, duration_s=2.0),
        KafkaRequestErrors(at_s=1.0, count=50),
        BrokerLatency(at_s=1.2, duration_s=2.0, rtt_ms=30),
    ),
    recovery=Automatic(),
    probe_interval_s=0.25,
    stabilisation_s=0.5,
    max_duration_s=60,
    verify_integrity=False,
)
"""


def _run(stack: StackClient, scenario: Path, run_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datadrill.cli",
            "run",
            str(scenario),
            "--state-dir",
            str(stack.paths.root),
            "--report-dir",
            str(run_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _assert_clean(stack: StackClient, original_rate: float) -> None:
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []
    assert stack.catalog().table_exists(stack.table)
    leaders = stack.control.get("/kafka/leaders")
    assert leaders["down"] == []
    workload = json.loads(stack.paths.workload_file.read_text())
    assert workload["rate"] == original_rate
    assert not (stack.paths.run / "sink.throttle").exists()
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack after cleanup")


def test_sigkill_at_many_points_then_cleanup(tmp_path: Path) -> None:
    stack = start_stack(tmp_path / ".datadrill")
    try:
        scenario = tmp_path / "kill_target.py"
        scenario.write_text(SCENARIO)
        original_rate = json.loads(stack.paths.workload_file.read_text())["rate"]
        # One run to the end tells how many events a whole run records.
        full = _run(stack, scenario, tmp_path / "full")
        assert full.wait(timeout=180) in (0, 1)  # passed or not, but ran (2 would be bad input)
        total = len(read_journal(tmp_path / "full" / "journal.jsonl"))
        _assert_clean(stack, original_rate)
        points = sorted({max(2, round(2 + i * (total - 3) / (KILL_POINTS - 1))) for i in range(KILL_POINTS)})
        assert len(points) >= KILL_POINTS * 0.9
        killed_with_faults = 0
        for point in points:
            run_dir = tmp_path / f"kill-{point}"
            journal = run_dir / "journal.jsonl"
            process = _run(stack, scenario, run_dir)

            def reached(j: Path = journal, p: int = point, proc: subprocess.Popen[bytes] = process) -> bool:
                return proc.poll() is not None or (j.exists() and len(read_journal(j)) >= p)

            wait_until(reached, timeout=120, interval=0.02, what=f"{point} journal events")
            finished_by_itself = process.poll() is not None  # runs vary a little in length
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            events = read_journal(journal)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # nothing lost
            if not finished_by_itself:
                assert len(events) >= point  # every event recorded before the kill is there
            if FaultLedger.for_stack(stack.paths.root).outstanding():
                killed_with_faults += 1
            result = run_cli("cleanup", "--state-dir", str(stack.paths.root))
            assert result.returncode == 0, result.stdout + result.stderr
            _assert_clean(stack, original_rate)
            # The report of the killed run can still be rendered.
            report = run_cli("report", str(run_dir), "--format", "json")
            assert report.returncode == 0, report.stderr
            time.sleep(0.2)
        # Most kills hit while faults were applied: the test exercised cleanup for real.
        assert killed_with_faults >= KILL_POINTS // 2
    finally:
        stop_stack(stack)
