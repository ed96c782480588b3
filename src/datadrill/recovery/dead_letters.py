"""Reprocess dead letters: every order the relay rejected is re-emitted through the outbox.

The dead letter names its order; the source holds the truth, so the order is read back
from ``orders`` and written to the outbox again with a new event id (the sink drops events
whose ids do not grow within a partition, so replaying the old ids would lose them).
The dead-letter consumer group's committed offsets record what was reprocessed. While it
reads, the step reports how many of the dead letters to reprocess it has read.

An order the table already holds is not re-emitted: a relay that dead-lettered a batch and
crashed (or lost a delivery) before marking it publishes the batch again, and once the
drifted writer is rolled back that batch reaches the table. The step first waits for the
pipeline to carry what it holds into the table (:mod:`datadrill.recovery.catch_up`), so
such an order is found there rather than written twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from datadrill.faults.base import DrillContext
from datadrill.integrity.targets import open_sink
from datadrill.model.recovery import ReprocessDeadLetters
from datadrill.platform.relay import dead_letter_topic
from datadrill.platform.source_conn import SourceConnection
from datadrill.platform.source_db import hold_event_order
from datadrill.recovery.catch_up import wait_caught_up
from datadrill.recovery.replay import ThrottledProgress
from datadrill.recovery.resnapshot import keys_present
from datadrill.recovery.result import StepResult

GROUP = "datadrill-dead-letters"

log = logging.getLogger("datadrill.dead_letters")


def reprocess_dead_letters(context: DrillContext, *, timeout_s: float = 120.0) -> tuple[int, float]:
    """Returns (orders re-emitted, seconds taken)."""
    stack = context.stack
    topic = dead_letter_topic(stack.topic)
    started = time.monotonic()
    consumer = Consumer(
        {"bootstrap.servers": stack.bootstrap_servers, "group.id": GROUP, "enable.auto.commit": False}
    )
    order_ids: list[int] = []
    try:
        partition = TopicPartition(topic, 0)
        (committed,) = consumer.committed([partition], timeout=10)
        low, high = consumer.get_watermark_offsets(partition, timeout=10, cached=False)
        start = committed.offset if committed.offset >= 0 else low
        consumer.assign([TopicPartition(topic, 0, start if start >= 0 else OFFSET_BEGINNING)])
        position = start
        deadline = started + timeout_s
        progress = ThrottledProgress(context, total=max(0, high - start), unit="dead letters")
        while position < high and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() or msg.offset() is None:
                    continue
                letter = json.loads(msg.value() or b"{}")
                order_ids.append(int(letter["order_id"]))
                position = max(position, int(msg.offset() or 0) + 1)
            progress(position - start)
        if position < high:
            raise TimeoutError(f"read {position - start} of {high - start} dead letters in {timeout_s:g} s")
        # A relay that crashed between publishing and marking dead-lettered some orders twice.
        order_ids = sorted(set(order_ids))
        if order_ids:
            order_ids = _not_in_table(context, order_ids)
        with contextlib.closing(stack.source()) as db:
            reemit(db, order_ids)
        consumer.commit(offsets=[TopicPartition(topic, 0, position)], asynchronous=False)
    finally:
        consumer.close()
    return len(order_ids), time.monotonic() - started


def reemit(db: SourceConnection, order_ids: Sequence[int]) -> None:
    """Write the orders ``order_ids`` into the outbox again, with new event ids, in one
    transaction (all re-emitted or none), their ids in commit order beside the workload's
    (:func:`~datadrill.platform.source_db.hold_event_order`)."""
    with db.transaction():
        hold_event_order(db)
        for chunk in range(0, len(order_ids), 500):
            ids = list(order_ids[chunk : chunk + 500])
            marks = ",".join("?" * len(ids))
            db.execute(
                "INSERT INTO outbox (order_id, customer_id, amount_cents, currency, status, created_at_us,"
                f" is_canary) SELECT order_id, customer_id, amount_cents, currency, status, created_at_us,"
                f" is_canary FROM orders WHERE order_id IN ({marks}) ORDER BY order_id",
                ids,
            )


def _not_in_table(context: DrillContext, order_ids: list[int]) -> list[int]:
    """``order_ids`` without those the table holds once the pipeline has caught up."""
    stack = context.stack
    newest = order_ids[-1]
    with contextlib.closing(stack.source()) as db, open_sink(stack) as sink:
        wait_caught_up(stack, db, lambda: sink.max_key(stack.table, "order_id") >= newest, cutoff=newest)
        held = keys_present(sink, stack.table, order_ids)
    if held:
        log.info("%d dead-lettered orders reached the table since; not re-emitted", len(held))
    return [k for k in order_ids if k not in held]


def run_reprocess_dead_letters(step: ReprocessDeadLetters, context: DrillContext) -> StepResult:
    count, elapsed = reprocess_dead_letters(context)
    return StepResult(
        f"{count:,} dead-lettered orders re-emitted through the outbox",
        rows=count,
        rate_per_s=count / elapsed if elapsed > 0 else None,
    )
