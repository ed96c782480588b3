"""The two CDC scenarios run for real on a stack of their own: a PostgreSQL source (the
stack's throwaway server, ``wal_level=logical``) read by the CDC relay.

cdc_slot_loss: the slot dropped under load leaves a hole; data integrity alerts; the
re-snapshot and the reconciliation bring every order back exactly once, and the report
projects the re-snapshot to production volume. cdc_replication_lag: a stalled slot makes
replication lag and freshness alert; the backlog drains on its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import drain, start_stack, stop_stack
from datadrill.engine.loader import load_scenario
from datadrill.engine.runner import Runner
from datadrill.model.report import RunReport, Verdict
from datadrill.stack.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_bindir: Path) -> Iterator[StackClient]:
    running = start_stack(
        tmp_path_factory.mktemp("cdc-scenarios") / ".datadrill",
        **{"source.server": "postgresql", "relay.mode": "cdc"},
    )
    yield running
    stop_stack(running)


def _run(stack: StackClient, name: str, run_dir: Path) -> RunReport:
    report = Runner(load_scenario(SCENARIOS / name), stack=stack, run_dir=run_dir).run()
    assert isinstance(report, RunReport)
    return report


def test_replication_lag_alerts_and_the_backlog_drains(stack: StackClient, tmp_path: Path) -> None:
    report = _run(stack, "cdc_replication_lag.py", tmp_path)
    assert report.verdict is Verdict.PASSED, report.reasons
    alerted = {slo.name for slo in report.slos if slo.first_alert_s is not None}
    assert alerted == {"replication lag", "mart freshness"}, report.slos
    assert report.integrity is not None and report.integrity.verified and report.integrity.affected == 0, (
        report.integrity
    )
    drained = drain(stack, timeout=120)
    assert drained.exact, drained.describe()


def test_slot_loss_is_detected_and_resnapshotted(stack: StackClient, tmp_path: Path) -> None:
    report = _run(stack, "cdc_slot_loss.py", tmp_path)
    assert report.verdict is Verdict.PASSED, report.reasons
    alerted = {slo.name for slo in report.slos if slo.first_alert_s is not None}
    assert "no holes, rows match the source" in alerted, report.slos
    steps = {phase.name.split(" ")[0]: phase for phase in report.phases if phase.kind == "recovery_step"}
    resnapshot = steps["re-snapshot"]
    assert resnapshot.ok and resnapshot.rows and resnapshot.rows > 0, resnapshot
    assert resnapshot.rate_per_s and resnapshot.rate_per_s > 0
    # The reconciliation after it found the table whole: nothing left to repair.
    assert steps["reconcile"].ok and "0 missing" in steps["reconcile"].detail, steps["reconcile"]
    assert report.integrity is not None and report.integrity.verified and report.integrity.affected == 0, (
        report.integrity
    )
    assert report.projection is not None
    (row,) = [r for r in report.projection.rows if r.phase == resnapshot.name]
    assert (
        row.measured_rows == resnapshot.rows and row.projected_rows and row.projected_rows > resnapshot.rows
    )
    drained = drain(stack, timeout=120)
    assert drained.exact, drained.describe()
