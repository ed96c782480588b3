"""Scenarios run for real on the embedded stack: calibration, the headline game day and its
variants, the CLI, and reports regenerated from journals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli, start_stack, stop_stack
from datadrill.engine.journal import read_journal
from datadrill.engine.loader import load_scenario
from datadrill.engine.runner import Runner
from datadrill.engine.wait import wait_until
from datadrill.model.report import Verdict
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """A stack of this module's own, not the session's. These scenarios hold tight SLOs
    (canaries visible within 5 s, calibration within one probe interval); the session's
    stack has by then run other tests for half an hour and its table has grown with each
    (small files, no compaction). In one CI run each probe query there took ~1.6 s, a
    probe round ~5 s, and the canary SLI went bad in steady state: lost to the suite's
    history, not to the scenario."""
    running = start_stack(tmp_path_factory.mktemp("scenarios") / ".datadrill")
    yield running
    stop_stack(running)


def _run(stack: StackClient, name: str, run_dir: Path) -> object:
    scenario = load_scenario(SCENARIOS / name)
    return Runner(scenario, stack=stack, run_dir=run_dir).run()


def test_calibration_measures_within_one_probe_interval(stack: StackClient, tmp_path: Path) -> None:
    from datadrill.model.report import RunReport

    scenario = load_scenario(SCENARIOS / "calibration.py")
    report = Runner(scenario, stack=stack, run_dir=tmp_path).run()
    assert isinstance(report, RunReport)
    interval = scenario.probe_interval_s
    assert report.verdict is Verdict.PASSED, report.reasons
    # Truth: queries fail from the injection until the revert took effect, 6 s after the
    # injection took effect; the alert needs 2 s of failures. The journal stamps each fault
    # event when the change has been made, so the hidden interval is read from it.
    (fault,) = report.faults
    assert fault.reverted_s is not None
    hidden_s = fault.reverted_s - fault.injected_s
    # Renaming back takes a moment on a loaded machine; the schedule itself is exact.
    assert 6.0 <= hidden_s <= 6.0 + 1.0, hidden_s
    assert report.ttd_s is not None and abs(report.ttd_s - 2.0) <= interval, report.ttd_s
    assert report.ttr_s is not None and abs(report.ttr_s - hidden_s) <= interval, (report.ttr_s, hidden_s)
    assert report.integrity is not None and report.integrity.verified
    assert stack.catalog().table_exists(stack.table)


def test_headline_metadata_loss_game_day(stack: StackClient, tmp_path: Path) -> None:
    from datadrill.engine.calibration import SQLITE_DUCKDB, calibrate
    from datadrill.model.report import RunReport
    from datadrill.reporting import write_reports

    # A real calibration at small sizes (seconds, not the default's 10-30 s), handed to the
    # run: the projection's reconciliation takes its per-row cost from it.
    calibration = calibrate(sizes=(100_000, 300_000), engines=(SQLITE_DUCKDB,))
    scenario = load_scenario(SCENARIOS / "metadata_loss.py")
    report = Runner(scenario, stack=stack, run_dir=tmp_path, calibration=lambda: calibration).run()
    assert isinstance(report, RunReport)
    assert report.verdict is Verdict.PASSED, report.reasons
    assert report.ttd_s is not None and report.ttd_s <= 10
    assert report.ttr_s is not None
    assert report.integrity is not None and report.integrity.verified
    (backup,) = report.backups
    assert backup.age_at_fault_s is not None and 14 <= backup.age_at_fault_s <= 17  # the RPO
    assert report.rows_replayed is not None and report.rows_replayed > 0
    assert report.replay_rate_per_s is not None and report.replay_rate_per_s > 0
    kinds = [p.name for p in report.phases if p.kind == "recovery_step"]
    assert kinds == [
        "pause the sink",
        "restore the catalog from backup 'nightly'",
        "replay Kafka from table offsets with 4 workers",
        "resume the sink",
        "reconcile source against sink and repair",
    ]
    assert report.projection is not None and report.projection.total_s > 0
    assert report.projection.modelled
    reconcile = next(row for row in report.projection.rows if row.phase.startswith("reconcile"))
    assert reconcile.model_source == "calibration", reconcile
    assert reconcile.per_row_s is not None and reconcile.per_row_s > 0
    queries = next(s for s in report.slos if s.name == "mart queries succeed")
    assert queries.bad_s > 0 and queries.first_alert_s is not None
    written = write_reports(report, tmp_path)
    assert set(written) == {"md", "html", "json", "junit"}
    junit = ET.parse(written["junit"]).getroot()
    names = {p.get("name") for p in junit.iter("property")}
    assert {"time_to_detect_s", "time_to_recover_s"} <= names
    # Regenerated from the journal alone, by the CLI: the same figures.
    regenerated = run_cli("report", str(tmp_path / "journal.jsonl"), "--format", "json")
    assert regenerated.returncode == 0, regenerated.stderr
    data = json.loads(regenerated.stdout)
    assert data["ttd_s"] == pytest.approx(report.ttd_s)
    assert data["verdict"] == "passed"


@pytest.mark.parametrize("module", ["metadata_files_loss.py", "metadata_loss_reregister.py"])
def test_metadata_loss_variants(stack: StackClient, tmp_path: Path, module: str) -> None:
    from datadrill.model.report import RunReport

    report = _run(stack, module, tmp_path)
    assert isinstance(report, RunReport)
    assert report.verdict is Verdict.PASSED, report.reasons
    assert report.integrity is not None and report.integrity.verified
    assert all(f.reverted_s is not None for f in report.faults)


def test_cli_run_validate_and_exit_codes(stack: StackClient, tmp_path: Path) -> None:
    ok = run_cli("validate", str(SCENARIOS / "calibration.py"), str(SCENARIOS / "metadata_loss.py"))
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("from datadrill.model import *\nSCENARIO = Scenario(name='x', slos=(), schedule=())\n")
    invalid = run_cli("run", str(bad), "--state-dir", str(stack.paths.root))
    assert invalid.returncode == 2
    assert str(bad) in invalid.stderr and "Scenario.slos" in invalid.stderr
    assert "Traceback" not in invalid.stderr
    wrong_stack = run_cli("run", str(SCENARIOS / "calibration.py"), "--stack", "kubernetes")
    assert wrong_stack.returncode == 2 and "embedded" in wrong_stack.stderr
    listed = run_cli("list", str(SCENARIOS))
    assert listed.returncode == 0 and "metadata-loss" in listed.stdout
    result = run_cli(
        "run",
        str(SCENARIOS / "calibration.py"),
        "--state-dir",
        str(stack.paths.root),
        "--report-dir",
        str(tmp_path / "run"),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout and "detected after" in result.stdout
    assert "What the fault cost (on purpose; not part of the verdict):" in result.stdout
    for name in ("journal.jsonl", "report.md", "report.html", "report.json", "junit.xml"):
        assert (tmp_path / "run" / name).is_file(), name


def test_report_from_the_journal_of_a_killed_runner(tmp_path: Path) -> None:
    stack = start_stack(tmp_path / ".datadrill")
    try:
        run_dir = tmp_path / "killed"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "datadrill.cli",
                "run",
                str(SCENARIOS / "calibration.py"),
                "--state-dir",
                str(stack.paths.root),
                "--report-dir",
                str(run_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        journal = run_dir / "journal.jsonl"

        def fault_in_journal() -> bool:
            return journal.exists() and any(e["type"] == "fault_injected" for e in read_journal(journal))

        wait_until(fault_in_journal, timeout=120, interval=0.1, what="the fault to be injected")
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        events = read_journal(journal)
        assert not any(e["type"] == "run_finished" for e in events)
        result = run_cli("report", str(run_dir), "--format", "md")
        assert result.returncode == 0, result.stderr
        assert "incomplete" in result.stdout.lower()
        assert "aborted" in result.stdout.lower()
        # The killed run left the table hidden; fault clean-up of killed runs is the fault
        # ledger's job. Put it back by hand so the stack stops cleanly.
        catalog = stack.catalog()
        if not catalog.table_exists(stack.table):
            catalog.rename_table(stack.table + "__hidden_by_datadrill", stack.table)
    finally:
        stop_stack(stack)
