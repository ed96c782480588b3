"""The CDC faults on a real stack: a PostgreSQL source (the stack's own throwaway server,
``wal_level=logical``) read by the CDC relay through a logical replication slot.

Each fault's effect and its revert, seen from the server (``pg_replication_slots``) and
from the platform: a stall makes ReplicationLag grow and then drain; an outage refuses
connections through the fault proxy's ``source`` path and accepts them again, and the
workload rides it out without a gap in its order ids; a dropped slot is recreated by the
relay and DataIntegrity counts the hole it leaves. The tests share one stack and run in
file order: the slot drop, which loses events on purpose, comes last."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from conftest import drain, heartbeat, start_stack, stop_stack
from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.faults.conformance import check_plugin
from datadrill.faults.ledger import FaultLedger, inject
from datadrill.faults.registry import plugin_for
from datadrill.model import (
    DataIntegrity,
    DropReplicationSlot,
    ReplicationLag,
    ReplicationSlotStall,
    SourceOutage,
)
from datadrill.probes.base import ProbeEnv, Sample
from datadrill.probes.sli import DataIntegrityProbe, ReplicationLagProbe
from datadrill.stack.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_bindir: Path) -> Iterator[StackClient]:
    running = start_stack(
        tmp_path_factory.mktemp("cdc-faults") / ".datadrill",
        **{"source.server": "postgresql", "relay.mode": "cdc"},
    )
    yield running
    stop_stack(running)


@pytest.fixture
def env(stack: StackClient) -> Iterator[ProbeEnv]:
    probes = ProbeEnv.from_stack(stack, MonotonicClock())
    yield probes
    probes.close()


def _context(stack: StackClient, tmp_path: Path) -> DrillContext:
    return DrillContext(stack, tmp_path, MonotonicClock())


def _lag(probe: ReplicationLagProbe) -> Sample:
    sample = probe.measure()
    assert sample.value is not None, sample.error
    return sample


def _relay_streaming(stack: StackClient) -> None:
    wait_until(
        lambda: stack.paths.heartbeat("relay").exists() and heartbeat(stack, "relay").get("connected"),
        timeout=60,
        what="the CDC relay streaming its slot",
    )


def _bad(sample: Sample) -> Sample | None:
    return None if sample.good else sample


def _orders(stack: StackClient) -> tuple[int, int, int]:
    with stack.source() as db:
        count, low, high = db.execute("SELECT count(*), min(order_id), max(order_id) FROM orders").fetchone()
    return int(count), int(low or 0), int(high or 0)


def test_replication_lag_reads_the_relays_slot(stack: StackClient, env: ProbeEnv) -> None:
    _relay_streaming(stack)
    probe = ReplicationLagProbe(ReplicationLag(max_bytes=50_000_000), env)
    try:
        sample = _lag(probe)
        assert sample.good and sample.value is not None and sample.value >= 0
    finally:
        probe.close()
    missing = ReplicationLagProbe(ReplicationLag(max_bytes=1, slot="no_such_slot"), env)
    try:
        assert missing.measure() == Sample(None, False, "replication slot no_such_slot does not exist")
    finally:
        missing.close()


def test_a_stall_piles_up_wal_until_reverted_then_the_backlog_drains(
    stack: StackClient, env: ProbeEnv, tmp_path: Path
) -> None:
    _relay_streaming(stack)
    probe = ReplicationLagProbe(ReplicationLag(max_bytes=200_000), env)
    ledger = FaultLedger.for_stack(stack.paths.root)
    try:
        handle = inject(ReplicationSlotStall(at_s=0, duration_s=60), _context(stack, tmp_path), ledger=ledger)
        assert "bytes behind" in handle.landed
        assert stack.paths.relay_stall.exists()
        assert wait_until(lambda: heartbeat(stack, "relay").get("stalled"), timeout=30, what="the relay stalled")
        # The workload writes on; the server keeps all of it for the slot.
        stalled = wait_until(lambda: _bad(_lag(probe)), timeout=60, what="replication lag above 200,000 bytes")
        assert stalled.value is not None and stalled.value > 200_000
        note = handle.revert()
        assert "deleted" in note and not stack.paths.relay_stall.exists()
        wait_until(lambda: _lag(probe).good, timeout=90, what="the backlog drained below 200,000 bytes")
    finally:
        probe.close()
        stack.paths.relay_stall.unlink(missing_ok=True)
    assert ledger.outstanding() == []


def test_a_source_outage_refuses_connections_and_the_workload_rides_it_out(
    stack: StackClient, tmp_path: Path
) -> None:
    _relay_streaming(stack)
    via = str(stack.state["source_via"])
    assert via != stack.source_uri  # the platform's way goes through the fault proxy
    workload_pid = stack.components.get("workload").pid
    ledger = FaultLedger.for_stack(stack.paths.root)
    handle = inject(SourceOutage(at_s=0, duration_s=30), _context(stack, tmp_path), ledger=ledger)
    try:
        assert "refuses connections" in handle.landed
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(via, connect_timeout=3).close()
        wait_until(
            lambda: "source_error" in heartbeat(stack, "workload"), timeout=30, what="the workload seeing the outage"
        )
        count_during, _, _ = _orders(stack)
    finally:
        note = handle.revert()
    assert note == "proxy 'source' up again: the source accepts connections"
    psycopg2.connect(via, connect_timeout=3).close()
    wait_until(lambda: _orders(stack)[0] > count_during + 100, timeout=60, what="the workload writing again")
    # It rode the outage out in one process, and retried its batch with the same ids.
    assert stack.components.get("workload").pid == workload_pid
    count, low, high = _orders(stack)
    assert count == high - low + 1, f"{count} orders with ids {low}..{high}: a gap or a duplicate"
    assert ledger.outstanding() == []


@pytest.mark.parametrize(
    "spec", [ReplicationSlotStall(at_s=0, duration_s=5), SourceOutage(at_s=0, duration_s=5)], ids=lambda s: s.kind
)
def test_the_timed_cdc_faults_conform(stack: StackClient, tmp_path: Path, spec: Any) -> None:
    _relay_streaming(stack)
    assert check_plugin(plugin_for(spec.kind), spec, _context(stack, tmp_path)) == []
    wait_until(lambda: stack.status().healthy, timeout=60, what="a healthy stack after the revert")


def test_after_stall_and_outage_every_order_is_in_the_table_once(stack: StackClient) -> None:
    stack.workload.set(rate=0)
    try:
        result = drain(stack, timeout=120)
        assert result.exact, result.describe()
    finally:
        stack.workload.set(rate=400)


def test_a_dropped_slot_is_recreated_and_integrity_counts_the_hole(
    stack: StackClient, env: ProbeEnv, tmp_path: Path
) -> None:
    _relay_streaming(stack)
    integrity = DataIntegrityProbe(DataIntegrity(every_s=0.5, hole_grace_s=2.0), env)
    first = integrity.measure()  # the run's keys start after the sink's newest now
    assert first.good, first.error
    recreated_before = int(heartbeat(stack, "relay").get("slot_recreated", 0))
    ledger = FaultLedger.for_stack(stack.paths.root)
    handle = inject(DropReplicationSlot(at_s=0), _context(stack, tmp_path), ledger=ledger)
    assert handle.landed.startswith(("slot datadrill_relay gone", "slot datadrill_relay recreated"))
    assert handle.revert().startswith("nothing to put back")
    wait_until(
        lambda: int(heartbeat(stack, "relay").get("slot_recreated", 0)) > recreated_before,
        timeout=60,
        what="the relay recreating its slot",
    )
    holed = wait_until(
        lambda: _bad(integrity.measure()),
        timeout=90,
        what="DataIntegrity counting the hole the drop left",
    )
    assert holed.value is not None and holed.value > 0
    assert holed.error is not None and "holes: source rows missing below the sink's newest key" in holed.error
    lag = ReplicationLagProbe(ReplicationLag(max_bytes=50_000_000), env)
    try:
        wait_until(lambda: _lag(lag).good, timeout=60, what="the new slot's lag measured and small")
    finally:
        lag.close()
    assert ledger.outstanding() == []


def test_the_drop_conforms(stack: StackClient, tmp_path: Path) -> None:
    _relay_streaming(stack)
    spec = DropReplicationSlot(at_s=0)
    assert check_plugin(plugin_for(spec.kind), spec, _context(stack, tmp_path)) == []
