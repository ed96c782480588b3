"""``datadrill run --dry-run`` on the embedded stack, as a user runs it: the plan of two
shipped scenarios with their targets resolved on this stack, exit 0, nothing written to
the fault ledger or the working directory; a scenario naming a missing table exits 1 and
names it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import run_cli
from datadrill.engine.wait import wait_until
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _ledger(stack: StackClient) -> bytes | None:
    path = stack.paths.fault_ledger
    return path.read_bytes() if path.exists() else None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_dry_run_prints_the_plan_and_changes_nothing(stack: StackClient, tmp_path: Path) -> None:
    # The plan says whether every SLI is inside its SLO now: let a fresh stack settle first.
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack")
    ledger_before = _ledger(stack)
    workload_before = stack.workload.get()
    result = run_cli(
        "run",
        "--dry-run",
        str(SCENARIOS / "metadata_loss.py"),
        str(SCENARIOS / "broker_loss.py"),
        "--state-dir",
        str(stack.paths.root),
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = _lines(result.stdout)
    catalog = stack.paths.catalog_db.resolve()
    assert (
        f"t+15 s: catalog entry of dwh.orders deleted → the catalog entry of dwh.orders "
        f"(SQLite catalog at {catalog})"
    ) in lines, output
    assert any(
        line.startswith("t+0 s: take catalog backup 'nightly' of dwh.orders (") and "rows now" in line
        for line in lines
    ), output
    broker = f"broker 2 of 3 ({stack.kafka.bootstrap_servers.split(',')[1]})"
    assert f"t+2 s (until t+10 s): broker 2 down for 8 s → {broker}" in lines, output
    assert "recovery: runbook, 2 s after the first alert" in lines
    assert "3. replay Kafka from table offsets with 4 workers" in lines, output
    assert lines.count("would run: yes") == 2, output
    # Nothing changed: no ledger line, the workload as it was, no run directory.
    assert _ledger(stack) == ledger_before
    assert stack.workload.get() == workload_before
    assert list(tmp_path.iterdir()) == []
    assert stack.catalog().table_exists(stack.table)


def test_dry_run_of_a_missing_table_exits_1_naming_it(stack: StackClient, tmp_path: Path) -> None:
    scenario = tmp_path / "missing_table.py"
    scenario.write_text(
        textwrap.dedent(
            """
            from datadrill.model import SLO, Automatic, DeleteCatalogEntry, QuerySuccess, Scenario

            SCENARIO = Scenario(
                name="missing-table",
                slos=(SLO("mart queries succeed", sli=QuerySuccess(), objective=0.99),),
                schedule=(DeleteCatalogEntry(at_s=5, table="dwh.returns"),),
                recovery=Automatic(),
            )
            """
        )
    )
    ledger_before = _ledger(stack)
    result = run_cli("run", "--dry-run", str(scenario), "--state-dir", str(stack.paths.root), cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    problems = [line for line in _lines(result.stdout) if line.startswith("✗ schedule[0]")]
    assert len(problems) == 1, output
    assert "DeleteCatalogEntry.table = 'dwh.returns'" in problems[0]
    assert "lists dwh.orders" in problems[0]
    assert "Traceback" not in output
    assert _ledger(stack) == ledger_before
