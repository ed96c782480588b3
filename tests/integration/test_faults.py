"""The fault library on the embedded stack: every scenario passes, every built-in plugin
conforms, leftovers are cleaned up, and the blast-radius guard refuses remote hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import drain, duplicate_rows, run_cli, start_stack, stop_stack
from datadrill.clock import MonotonicClock
from datadrill.engine.loader import load_scenario
from datadrill.engine.runner import Runner
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.faults.conformance import check_plugin
from datadrill.faults.ledger import FaultLedger, inject
from datadrill.faults.registry import plugin_for
from datadrill.model import (
    BrokerLatency,
    BrokerLoss,
    CatalogOutage,
    ConnectorTaskFailure,
    DeleteCatalogEntry,
    DeleteMetadataFiles,
    HangComponent,
    HideTable,
    KafkaRequestErrors,
    KillComponent,
    LagSpike,
    NetworkFault,
    SchemaDrift,
)
from datadrill.model.report import Verdict
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """A stack of this module's own, not the session's. The scenarios' recovery includes a
    reconciliation of the whole table and a repair; on the session's stack, grown by the
    tests before this module (small files, no compaction), one CI run's repair took 129 s
    where a fresh stack's takes 8 s: the suite's history measured, not the scenario."""
    running = start_stack(tmp_path_factory.mktemp("faults") / ".datadrill")
    yield running
    stop_stack(running)


@pytest.mark.parametrize(
    "module",
    [
        "connector_crash.py",
        "lag_spike.py",
        "broker_loss.py",
        "kafka_errors.py",
        "catalog_outage.py",
        "schema_drift_enforced.py",
        "schema_drift_unenforced.py",
        "network_query_path.py",
    ],
)
def test_fault_scenario_passes_and_leaves_nothing_behind(
    stack: StackClient, tmp_path: Path, module: str
) -> None:
    scenario = load_scenario(SCENARIOS / module)
    report = Runner(scenario, stack=stack, run_dir=tmp_path).run()
    assert report.verdict is Verdict.PASSED, report.reasons
    assert report.integrity is not None and report.integrity.verified, report.integrity
    assert all(f.reverted_s is not None for f in report.faults)
    if scenario.expectations.detect_within_s is not None:
        assert report.ttd_s is not None
    if module == "schema_drift_enforced.py":
        # Enforced: nothing wrong reached the table; the drifted records were dead-lettered.
        integrity = next(s for s in report.slos if s.name == "rows match the source")
        assert integrity.bad_s == 0
        reprocess = next(p for p in report.phases if p.name == "reprocess the dead letters")
        assert reprocess.rows is not None and reprocess.rows > 0
    if module == "schema_drift_unenforced.py":
        # Not enforced: wrong rows reached the table; reconciliation found and repaired them.
        assert report.integrity is not None and report.integrity.discrepancies > 0
        assert report.integrity.repaired_rows > 0
    assert FaultLedger.for_stack(stack.paths.root).outstanding() == []
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack after the scenario")


SPECS: list[Any] = [
    DeleteCatalogEntry(at_s=0),
    DeleteMetadataFiles(at_s=0, keep_newest=1),
    HideTable(at_s=0, duration_s=1),
    CatalogOutage(at_s=0, duration_s=1),
    KillComponent(at_s=0, component="relay"),
    ConnectorTaskFailure(at_s=0, component="relay"),
    # The hung sink keeps its partitions: SIGSTOP, state T in /proc, SIGCONT.
    HangComponent("sink", at_s=0, duration_s=1),
    LagSpike(at_s=0, duration_s=1, burst_factor=2),
    LagSpike(at_s=0, duration_s=1, mode="throttle", throttle_rows_per_s=50),
    BrokerLoss(at_s=0, duration_s=1, broker=3),
    KafkaRequestErrors(at_s=0, count=5),
    # An RTT far above what a loaded machine adds on its own: the check that confirm refuses
    # the unapplied fault must not pass on brokers that are merely slow.
    BrokerLatency(at_s=0, duration_s=1, rtt_ms=1000),
    SchemaDrift(at_s=0, change="drop", enforcement=True),
    NetworkFault(at_s=0, duration_s=1, toxic="latency", attributes={"latency": 50}),
    NetworkFault(at_s=0, duration_s=1, toxic="down"),
]


@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda s: s.kind + "-" + str(getattr(s, "mode", getattr(s, "toxic", "")))
)
def test_builtin_fault_plugins_conform(stack: StackClient, tmp_path: Path, spec: Any) -> None:
    context = DrillContext(stack, tmp_path, MonotonicClock())
    problems = check_plugin(plugin_for(spec.kind), spec, context)
    assert problems == []
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack after the revert")


def test_data_is_exact_after_the_conformance_runs(stack: StackClient, tmp_path: Path) -> None:
    from datadrill.recovery.dead_letters import reprocess_dead_letters

    # The schema-drift check may have dead-lettered a batch: it flows again once reprocessed.
    reprocess_dead_letters(DrillContext(stack, tmp_path, MonotonicClock()))
    result = drain(stack)
    assert result.exact, (result.describe(), duplicate_rows(stack))


def test_cleanup_reverts_what_a_killed_run_left(stack: StackClient, tmp_path: Path) -> None:
    ledger = FaultLedger.for_stack(stack.paths.root)
    context = DrillContext(stack, tmp_path, MonotonicClock())
    # Injected and never reverted, as if the runner had been SIGKILLed right after.
    inject(HideTable(at_s=0, duration_s=60), context, ledger=ledger)
    inject(BrokerLoss(at_s=0, duration_s=60, broker=2), context, ledger=ledger)
    assert not stack.catalog().table_exists(stack.table)
    assert len(ledger.outstanding()) == 2
    result = run_cli("cleanup", "--state-dir", str(stack.paths.root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("reverted") == 2
    assert ledger.outstanding() == []
    assert stack.catalog().table_exists(stack.table)
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack after cleanup")
    again = run_cli("cleanup", "--state-dir", str(stack.paths.root))
    assert again.returncode == 0 and "nothing to clean up" in again.stdout


def test_blast_radius_guard_refuses_a_remote_catalog(tmp_path: Path) -> None:
    result = run_cli(
        "stack",
        "up",
        "--catalog-uri",
        "postgresql://drill@10.9.8.7:5432/catalog",
        "--state-dir",
        str(tmp_path / "s"),
    )
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "10.9.8.7" in message and "safety.allow_hosts" in message
    assert "Traceback" not in result.stderr
