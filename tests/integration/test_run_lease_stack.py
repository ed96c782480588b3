"""The run lease on a real stack: a second drill is refused (exit 2, naming the holder) or
waits (--wait); `datadrill cleanup` keeps a live run's faults; a runner stopped (SIGSTOP)
for longer than its lease gets its faults reverted by the stack, and when it wakes it
touches nothing and ends saying so; a stop condition aborts a run with every fault out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli, start_stack, stop_stack
from datadrill.engine.journal import read_journal
from datadrill.engine.wait import wait_until
from datadrill.faults.ledger import FaultLedger
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

HOLDER = """
from datadrill.model import *
SCENARIO = Scenario(
    name="lease-holder",
    workload=Workload(rate=300, canary_interval_s=0.5),
    slos=(SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999),),
    steady_state=SteadyState(warmup_s=0.5, timeout_s=60),
    schedule=(LagSpike(at_s=0.5, duration_s={duration}, burst_factor=2, mode="pause"),),
    recovery=Automatic(),
    probe_interval_s=0.25,
    stabilisation_s=0.5,
    max_duration_s=120,
    verify_integrity=False,
)
"""

STOPPED = """
from datadrill.model import *
SCENARIO = Scenario(
    name="lag-limit",
    workload=Workload(rate=400, canary_interval_s=0.5),
    slos=(
        SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999),
        SLO("consumer lag", sli=ConsumerLag(max_messages=100_000), objective=0.99),
    ),
    steady_state=SteadyState(warmup_s=0.5, timeout_s=60),
    schedule=(LagSpike(at_s=0.5, duration_s=60, burst_factor=5, mode="pause"),),
    recovery=Automatic(),
    stop_when=(SLILimit(slo="consumer lag", above=1500),),
    probe_interval_s=0.25,
    stabilisation_s=0.5,
    max_duration_s=120,
    verify_integrity=False,
)
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    running = start_stack(tmp_path_factory.mktemp("lease") / ".datadrill")
    yield running
    stop_stack(running)


def _start(stack: StackClient, scenario: Path, run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    # Output to a file beside the run (a pipe nobody reads could fill and block the run).
    log = run_dir.parent / f"{run_dir.name}.log"
    with log.open("wb") as out:
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
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _outstanding(stack: StackClient) -> list[str]:
    return [e.kind for e in FaultLedger.for_stack(stack.paths.root).outstanding()]


def _faulted(journal: Path) -> bool:
    return journal.exists() and any(e["type"] == "fault_injected" for e in read_journal(journal))


def test_a_second_drill_is_refused_cleanup_keeps_the_live_runs_faults_and_wait_takes_turns(
    stack: StackClient, tmp_path: Path
) -> None:
    holder_file = tmp_path / "holder.py"
    # Long enough for the checks below on a loaded machine; they end it early by waiting.
    holder_file.write_text(HOLDER.format(duration=40))
    short_file = tmp_path / "short.py"
    short_file.write_text(HOLDER.format(duration=2))
    first = _start(stack, holder_file, tmp_path / "first")
    try:
        wait_until(
            lambda: _faulted(tmp_path / "first" / "journal.jsonl"), timeout=120, what="the first run's fault"
        )
        lease = stack.runs.holder()
        assert lease is not None and lease.scenario == "lease-holder" and lease.pid == first.pid

        refused = run_cli(
            "run",
            str(holder_file),
            "--state-dir",
            str(stack.paths.root),
            "--report-dir",
            str(tmp_path / "second"),
        )
        assert refused.returncode == 2, refused.stdout + refused.stderr
        message = " ".join(refused.stderr.split())
        assert "lease-holder" in message and f"pid {first.pid}" in message and "--wait" in message
        assert "Traceback" not in refused.stderr
        assert not (tmp_path / "second").exists()  # nothing written for the refused run

        cleaned = run_cli("cleanup", "--state-dir", str(stack.paths.root))
        assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
        assert "kept" in cleaned.stdout and f"live run {lease.run_id}" in " ".join(cleaned.stdout.split())
        assert "consumer.lag_spike" in _outstanding(stack)  # the live run's fault stays
        assert stack.components.get("sink").paused

        waiting = _start(stack, short_file, tmp_path / "third", "--wait")
        assert first.wait(timeout=180) in (0, 1)
        assert waiting.wait(timeout=180) in (0, 1), (tmp_path / "third.log").read_text()
        third = read_journal(tmp_path / "third" / "journal.jsonl")
        first_events = read_journal(tmp_path / "first" / "journal.jsonl")
        # Turns, not overlap: the waiting run started after the first one finished.
        assert third[0]["mono"] >= first_events[-1]["mono"]
    finally:
        first.kill()
        first.wait()
    assert _outstanding(stack) == []
    assert stack.runs.holder() is None


def test_a_stopped_runner_loses_its_lease_and_wakes_up_hands_off(stack: StackClient, tmp_path: Path) -> None:
    holder_file = tmp_path / "holder.py"
    holder_file.write_text(HOLDER.format(duration=30))
    run_dir = tmp_path / "run"
    runner = _start(stack, holder_file, run_dir, "--lease", "2")
    try:
        wait_until(lambda: _faulted(run_dir / "journal.jsonl"), timeout=120, what="the run's fault")
        assert stack.components.get("sink").paused
        runner.send_signal(signal.SIGSTOP)  # alive, but renewing nothing: only the lease can tell
        wait_until(lambda: stack.runs.holder() is None, timeout=60, interval=0.1, what="the lease to expire")
        assert _outstanding(stack) == []
        assert not stack.components.get("sink").paused
        notes = [
            r["note"] for r in FaultLedger.for_stack(stack.paths.root).records() if r.get("op") == "reverted"
        ]
        assert any(n.startswith("reverted by lease expiry") for n in notes), notes
        events = read_journal(run_dir / "journal.jsonl")
        assert [e["type"] for e in events].count("lease_expired") == 1
        runner.send_signal(signal.SIGCONT)
        assert runner.wait(timeout=120) == 1
    finally:
        runner.send_signal(signal.SIGCONT)
        runner.kill()
        runner.wait()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"] == "error"
    assert any("lost its lease" in reason for reason in report["reasons"]), report["reasons"]
    ledger = FaultLedger.for_stack(stack.paths.root).records()
    reverted = [r["id"] for r in ledger if r.get("op") == "reverted"]
    assert len(reverted) == len(set(reverted))  # the woken runner reverted nothing twice
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack")


def test_a_stop_condition_aborts_the_run_and_reverts_everything(stack: StackClient, tmp_path: Path) -> None:
    scenario = tmp_path / "lag_limit.py"
    scenario.write_text(STOPPED)
    run_dir = tmp_path / "run"
    result = run_cli(
        "run", str(scenario), "--state-dir", str(stack.paths.root), "--report-dir", str(run_dir), timeout=240
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"] == "aborted"
    (reason,) = report["reasons"]
    assert "stop condition crossed" in reason and "consumer lag above 1,500" in reason, reason
    events = read_journal(run_dir / "journal.jsonl")
    crossed = next(e for e in events if e["type"] == "stop_condition")
    assert crossed["value"] > 1500
    # Long before the fault's 60 s were up.
    assert crossed["t"] - next(e["t"] for e in events if e["type"] == "fault_injected") < 50
    assert _outstanding(stack) == []
    assert not stack.components.get("sink").paused
    assert stack.workload.get().rate == 400
