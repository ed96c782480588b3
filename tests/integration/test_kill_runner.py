"""SIGKILL the runner at 20 points of three scenarios and run nothing afterwards: the stack
reverts the dead run's faults by itself (the run lease), the ledger records every revert,
the stack is healthy, the journal holds every event recorded before the kill, and
``datadrill report`` on the killed run's journal says which faults the stack reverted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli, start_stack, stop_stack
from datadrill.engine.journal import read_journal
from datadrill.engine.wait import wait_until
from datadrill.faults.ledger import FaultLedger
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

LEASE_S = 3.0
# After the lease: the reaper is a fresh Python process that imports the fault plugins.
MARGIN_S = 60.0

_COMMON = """
    workload=Workload(rate=300, canary_interval_s=0.5),
    slos=(SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999, alert=ThresholdAlert(for_s=0.5)),),
    steady_state=SteadyState(warmup_s=0.5, timeout_s=60),
    recovery=Automatic(),
    probe_interval_s=0.25,
    stabilisation_s=0.5,
    max_duration_s=60,
    verify_integrity=False,
"""

# Three scenarios, every built-in fault kind the stack process must be able to revert alone.
SCENARIOS = {
    "kafka-and-workload": f"""
from datadrill.model import *
SCENARIO = Scenario(
    name="kill-kafka",
    schedule=(
        LagSpike(at_s=0.2, duration_s=2.5, burst_factor=3, mode="pause"),
        BrokerLoss(at_s=0.5, duration_s=2.5, broker=3),
        KafkaRequestErrors(at_s=1.0, count=50),
        BrokerLatency(at_s=1.2, duration_s=2.0, rtt_ms=30),
    ),{_COMMON})
""",
    "metadata": f"""
from datadrill.model import *
SCENARIO = Scenario(
    name="kill-metadata",
    schedule=(
        HideTable(at_s=0.2, duration_s=2.0),
        DeleteMetadataFiles(at_s=2.6, duration_s=1.5, keep_newest=0),
    ),{_COMMON})
""",
    "contract-and-network": f"""
from datadrill.model import *
SCENARIO = Scenario(
    name="kill-contract",
    schedule=(
        SchemaDrift(at_s=0.2, duration_s=2.5, change="rename"),
        NetworkFault(at_s=0.5, duration_s=2.0, path="query", toxic="latency", attributes={{"latency": 300}}),
        LagSpike(at_s=1.0, duration_s=2.0, burst_factor=2, mode="throttle", throttle_rows_per_s=50),
    ),{_COMMON})
""",
}
POINTS = {"kafka-and-workload": 7, "metadata": 7, "contract-and-network": 6}  # 20 in all


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
            "--lease",
            str(LEASE_S),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _assert_clean(stack: StackClient, original_rate: float) -> None:
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []
    assert stack.catalog().table_exists(stack.table)
    leaders = stack.control.get("/kafka/leaders")
    assert leaders["down"] == []
    assert stack.workload.get().rate == original_rate
    assert not stack.paths.sink_throttle.exists()
    assert stack.platform.producer_contract().writer is None
    assert not stack.components.get("sink").paused
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack after the lease expired")


def _reverts(stack: StackClient) -> dict[str, list[str]]:
    notes: dict[str, list[str]] = {}
    for record in FaultLedger.for_stack(stack.paths.root).records():
        if record.get("op") == "reverted":
            notes.setdefault(str(record["id"]), []).append(str(record.get("note", "")))
    return notes


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_sigkill_at_many_points_the_stack_reverts_by_itself(tmp_path: Path, name: str) -> None:
    stack = start_stack(tmp_path / ".datadrill")
    try:
        scenario = tmp_path / f"{name}.py"
        scenario.write_text(SCENARIOS[name])
        original_rate = stack.workload.get().rate
        # One run to the end tells how many events a whole run records.
        full = _run(stack, scenario, tmp_path / "full")
        assert full.wait(timeout=180) in (0, 1)  # passed or not, but ran (2 would be bad input)
        total = len(read_journal(tmp_path / "full" / "journal.jsonl"))
        _assert_clean(stack, original_rate)
        count = POINTS[name]
        points = sorted({max(2, round(2 + i * (total - 3) / (count - 1))) for i in range(count)})
        assert len(points) == count
        by_lease = 0
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
            before = read_journal(journal)
            assert [e["seq"] for e in before] == list(range(1, len(before) + 1))  # nothing lost
            if not finished_by_itself:
                assert len(before) >= point  # every event recorded before the kill is there
            # Nothing is run afterwards: the stack alone must bring everything back.
            wait_until(
                lambda: stack.runs.holder() is None,
                timeout=LEASE_S + MARGIN_S,
                interval=0.1,
                what="the stack to revert the killed run's faults and free its lease",
            )
            _assert_clean(stack, original_rate)
            reverts = _reverts(stack)
            assert all(len(notes) == 1 for notes in reverts.values()), reverts  # never twice
            events = read_journal(journal)
            expired = [e for e in events if e["type"] == "lease_expired"]
            injected = {e["fault_id"] for e in before if e["type"] == "fault_injected"}
            reverted_by_runner = {e["fault_id"] for e in before if e["type"] == "fault_reverted"}
            left = injected - reverted_by_runner
            if any(e["type"] == "run_finished" for e in before):
                # The run ended. A kill between its last journal line and the release of
                # its lease leaves the lease to expire: with nothing left to revert.
                assert len(expired) <= 1, events
                assert not [
                    e
                    for e in events
                    if e["type"] == "fault_reverted" and e["note"].startswith("reverted by lease expiry")
                ], events
                continue
            assert len(expired) == 1, events
            by_lease_ids = {
                e["fault_id"]
                for e in events
                if e["type"] == "fault_reverted" and e["note"].startswith("reverted by lease expiry")
            }
            # A fault the runner reverted (ledger) but died before journaling: not the stack's.
            run_id = next(e["run_id"] for e in before if e["type"] == "run_started")
            ledgered = {
                int(r["journal_id"]): str(r["id"])
                for r in FaultLedger.for_stack(stack.paths.root).records()
                if r.get("op") == "intent" and r.get("run_id") == run_id and r.get("journal_id")
            }
            for fault_id in left - by_lease_ids:
                (note,) = reverts[ledgered[fault_id]]
                assert not note.startswith("reverted by lease expiry"), note
            assert by_lease_ids <= set(ledgered)
            left &= by_lease_ids
            by_lease += len(by_lease_ids)
            report = run_cli("report", str(run_dir), "--format", "json")
            assert report.returncode == 0, report.stderr
            document = json.loads(report.stdout)
            notes = {f["description"]: f["revert_note"] for f in document["faults"]}
            for fault_id in left:
                described = next(e["description"] for e in before if e.get("fault_id") == fault_id)
                assert notes[described].startswith("reverted by lease expiry"), notes
            assert any("lease" in reason for reason in document["reasons"]), document["reasons"]
        # Most kills hit while faults were applied: the stack's own reverts were exercised.
        assert by_lease >= count // 2
    finally:
        stop_stack(stack)
