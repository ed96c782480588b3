"""Kafka data loss on the embedded stack: retention takes what a replay still needed, and
the topic is deleted and comes back empty.

Each test freezes the table (sink paused), lets the relay publish every outbox event
(workload stopped, outbox empty), and only then injects the fault through the conformance
check, so which orders are lost is known exactly: those in Kafka and not yet in the table
(plus whatever an earlier test lost). No duration decides an outcome: the retention cut
sits in the middle of a quiet gap during which nothing is produced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import heartbeat, start_stack, stop_stack
from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.faults.conformance import check_plugin
from datadrill.faults.ledger import FaultLedger
from datadrill.faults.registry import plugin_for
from datadrill.integrity.exactly_once import check_exactly_once, source_order_ids
from datadrill.model import KafkaRetention, ReplayKafka, TopicDeleted
from datadrill.recovery.replay import run_replay_kafka
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

RATE = 400
# A stretch with nothing produced, between the records retention deletes and those it keeps.
QUIET_S = 6.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """A stack of this module's own: its faults delete Kafka data other tests would miss."""
    running = start_stack(tmp_path_factory.mktemp("kafka-loss") / ".datadrill")
    yield running
    stop_stack(running)


def _missing(stack: StackClient) -> set[int]:
    """Source orders the table does not hold."""
    engine = stack.query_engine()
    try:
        with stack.source() as db:
            engine.register_arrow("source_orders", source_order_ids(db))
        rows = engine.rows(
            f"SELECT order_id FROM source_orders ANTI JOIN (SELECT DISTINCT order_id FROM {stack.table}) "
            "USING (order_id)",
            tables=(stack.table,),
        )
    finally:
        engine.close()
    return {int(r[0]) for r in rows}


def _outbox_empty(stack: StackClient) -> bool:
    with stack.source() as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0]) == 0


def _publish_everything(stack: StackClient) -> None:
    """Stop the workload and wait until the relay has published every outbox event."""
    stack.workload.set(rate=0)
    wait_until(lambda: _outbox_empty(stack), timeout=60, interval=0.1, what="the outbox to empty")


def _watermarks(stack: StackClient) -> dict[int, tuple[int, int]]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": "kafka-loss-test"})
    try:
        partitions = sorted(consumer.list_topics(timeout=10).topics[stack.topic].partitions)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(stack.topic, p), timeout=10, cached=False)
            for p in partitions
        }
    finally:
        consumer.close()


def _table_offsets(stack: StackClient) -> dict[int, int]:
    from datadrill.platform.catalog import sink_state

    return sink_state(stack.catalog().load_table(stack.table))[0]


def _orders(stack: StackClient) -> int:
    with stack.source() as db:
        return int(db.execute("SELECT count(*) FROM orders").fetchone()[0])


def _freeze_with_orders_in_kafka_only(stack: StackClient) -> None:
    """Pause the sink, let orders reach Kafka that the table does not get, and publish them
    all (the workload stopped, canaries stopped after at most one more)."""
    stack.workload.set(rate=RATE, canary_interval_s=3600)
    wait_until(
        lambda: heartbeat(stack, "sink").get("rows_committed", 0) > 0, timeout=60, what="rows in the table"
    )
    before = len(_missing(stack))
    stack.components.pause("sink")
    wait_until(lambda: len(_missing(stack)) > before + 100, timeout=60, what="orders beyond the paused sink")
    _publish_everything(stack)


def _quiet(stack: StackClient, seconds: float) -> tuple[dict[int, tuple[int, int]], float]:
    """Wait out ``seconds`` in which nothing reaches Kafka (tried again while a last canary
    or outbox event lands); returns the watermarks and the wall time the quiet began."""
    for _ in range(5):
        marks, began = _watermarks(stack), time.time()
        time.sleep(seconds)
        if _outbox_empty(stack) and _watermarks(stack) == marks:
            return marks, began
    raise AssertionError(f"records kept reaching {stack.topic} with the workload stopped")


class _WallHeldAt(MonotonicClock):
    """The real monotonic clock; wall time held at one moment (the retention cut's "now")."""

    def __init__(self, wall: float) -> None:
        self._wall = wall

    def wall(self) -> float:
        return self._wall


def test_retention_moves_the_low_watermarks_and_a_replay_from_earliest_reports_the_gap(
    stack: StackClient, tmp_path: Path
) -> None:
    _freeze_with_orders_in_kafka_only(stack)  # burst A: in Kafka, not in the table
    try:
        recorded = _table_offsets(stack)
        after_a, quiet_from = _quiet(stack, QUIET_S)
        frozen = _missing(stack)
        orders = _orders(stack)
        stack.workload.set(rate=RATE)  # burst B: newer than the quiet stretch
        wait_until(lambda: _orders(stack) > orders + 200, timeout=30, what="new orders")
        _publish_everything(stack)
        after_b = _watermarks(stack)
        assert any(after_b[p][1] > after_a[p][1] for p in after_b)

        # The cut falls early in the quiet stretch (burst A before it, burst B after), however
        # long the conformance check takes to apply it: the fault reads "now" from the
        # context's wall clock, held here at the moment the spec is made.
        now = time.time()
        context = DrillContext(stack, tmp_path / "run", _WallHeldAt(now))
        spec = KafkaRetention(at_s=0, keep_newest_s=now - (quiet_from + 0.2))
        problems = check_plugin(
            plugin_for(spec.kind), spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl")
        )
        assert problems == []
        # Each partition now starts at burst B's first record: burst A is gone from Kafka.
        assert _watermarks(stack) == {p: (after_a[p][1], after_b[p][1]) for p in after_b}
        result = run_replay_kafka(ReplayKafka(start="earliest", workers=2), context)
        expected = {
            str(p): {"from": recorded[p], "to": after_a[p][1], "count": after_a[p][1] - recorded[p]}
            for p in sorted(after_a)
            if p in recorded and recorded[p] < after_a[p][1]
        }
        assert result.extra is not None
        assert result.extra["unreachable_offsets"] == expected
        assert result.extra["unreachable_total"] == sum(e["count"] for e in expected.values()) > 0
        assert (
            "were deleted by retention before the replay: those rows need the source or a reserve"
            in result.detail
        )
        # Both workers' batches went into the table as one commit (fewer than batch_rows rows).
        assert result.rows > 0 and ", 1 commit)" in result.detail, result.detail
        # Burst B came back through the replay; burst A's orders (and only they) stay missing.
        assert _missing(stack) == frozen
        with stack.source() as db:
            engine = stack.query_engine()
            try:
                assert check_exactly_once(db, engine, table=stack.table).duplicated_orders == 0
            finally:
                engine.close()
    finally:  # the module's stack goes on to the next test with its sink running
        if stack.components.get("sink").paused:
            stack.components.resume("sink")
        stack.workload.set(rate=RATE)


def test_topic_deleted_the_pipeline_carries_new_events_exactly_once(
    stack: StackClient, tmp_path: Path
) -> None:
    context = DrillContext(stack, tmp_path / "run", MonotonicClock())
    _freeze_with_orders_in_kafka_only(stack)
    _quiet(stack, 1.0)
    lost = _missing(stack)  # in Kafka only (or lost before): they go with the topic
    spec = TopicDeleted(at_s=0)
    problems = check_plugin(
        plugin_for(spec.kind), spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl")
    )
    assert problems == []
    assert all(high == 0 for _, high in _watermarks(stack).values())

    # The sink resumes from the table's offsets, beyond the new topic's high watermarks.
    # New orders only once it has reset: a new topic that grew past the table's offsets
    # before the sink fetched would be read from there without an out-of-range error (the
    # README's "Retention and topic loss" says so); this test is about the reset.
    pid = stack.components.resume("sink")

    def reset() -> bool:
        beat = heartbeat(stack, "sink")
        return beat.get("pid") == pid and beat.get("offset_resets", 0) > 0

    wait_until(reset, timeout=60, what="the sink to find its offsets out of range and reset them")
    stack.workload.set(rate=RATE)
    wait_until(
        lambda: heartbeat(stack, "sink").get("rows_committed", 0) > 0, timeout=60, what="the sink to commit new rows"
    )
    _publish_everything(stack)
    try:
        wait_until(lambda: _missing(stack) == lost, timeout=90, interval=0.2, what="new orders in the table")
        # New orders reached the table; the orders lost with the topic (and only they) are
        # missing; nothing is doubled.
        with stack.source() as db:
            engine = stack.query_engine()
            try:
                result = check_exactly_once(db, engine, table=stack.table)
            finally:
                engine.close()
    finally:
        stack.workload.set(rate=RATE)
    assert result.duplicated_orders == 0, result.describe()
    assert result.unexpected_orders == 0, result.describe()
    assert result.missing_orders == len(lost), result.describe()
    assert result.sink_rows == result.source_orders - len(lost), result.describe()
