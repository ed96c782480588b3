"""Has the pipeline carried the source's changes up to a key into the table?

A reconciliation on a live pipeline must not take a row still on its way for a lost one:
a repair would insert it, and the sink would then write it a second time (or, for a
drifted row, the repair's correct row would be joined by the wrong one it replaced). The
table's newest key alone cannot say: an order re-emitted through the outbox (reprocessed
dead letters, a re-snapshot) keeps its old key, and the sink's partitions do not advance
in step. So, for the reference platform, caught up to key ``K`` means:

1. no outbox row of a key up to ``K`` waits to be published (both relays delete the rows
   they published, the CDC relay after Kafka acknowledged them); then
2. the table records, for every partition of the topic, a next offset at or past the high
   watermark taken after (1). The reference sink writes those offsets in the same Iceberg
   commit as the rows (:func:`~datadrill.platform.catalog.sink_state`), so what they cover
   is in the table.

A source without the outbox skips (1); a table that carries no such offsets (another sink
writes it) falls back on its newest key, as does any target other than the reference one.

Example::

    waited = wait_caught_up(stack, db, lambda: sink.max_key(table, "order_id") >= cutoff,
                            cutoff=cutoff)
    waited.caught_up, waited.detail
    # False, "the table holds fewer messages than were published: orders.v1[1] at 7 of 9 ..."
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datadrill.platform.source_conn import SourceConnection

if TYPE_CHECKING:
    from datadrill.stack.port import Stack

log = logging.getLogger("datadrill.catch_up")

# How long a reconciliation waits for the pipeline before it compares anyway.
CATCH_UP_S = 30.0
POLL_S = 0.2
KAFKA_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CatchUp:
    """How a wait for the pipeline ended: ``detail`` says what was still on its way when it
    timed out (empty when caught up). ``settled``: caught up by the outbox and the table's
    offsets, so a row missing now is not on its way (by the newest key alone it may be)."""

    caught_up: bool
    waited_s: float
    detail: str = ""
    settled: bool = False


def has_outbox(db: SourceConnection) -> bool:
    """Does the source have the reference platform's outbox (a team's own source may not)?"""
    if db.dialect == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'"
    else:
        sql = "SELECT 1 WHERE to_regclass('outbox') IS NOT NULL"
    return db.execute(sql).fetchone() is not None


def outbox_waiting(db: SourceConnection, cutoff: int) -> bool:
    """Does an outbox row of a key up to ``cutoff`` wait to be published?"""
    return db.execute("SELECT 1 FROM outbox WHERE order_id <= ? LIMIT 1", (cutoff,)).fetchone() is not None


def behind(table_offsets: dict[int, int], marks: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Partitions whose messages up to ``marks`` the table does not all hold:
    partition → (the table's next offset, the mark). A partition the table has no offset
    for is behind unless it holds nothing (mark 0)."""
    return {
        partition: (table_offsets.get(partition, 0), mark)
        for partition, mark in sorted(marks.items())
        if table_offsets.get(partition, 0) < mark
    }


def _describe_behind(late: dict[int, tuple[int, int]], topic: str) -> str:
    parts = ", ".join(f"{topic}[{p}] at {have:,} of {mark:,}" for p, (have, mark) in late.items())
    return f"the table holds fewer messages than were published: {parts}"


def wait_caught_up(
    stack: Stack,
    db: SourceConnection,
    newest_key_reached: Callable[[], bool],
    *,
    cutoff: int,
    timeout_s: float = CATCH_UP_S,
    reference: bool = True,
) -> CatchUp:
    """Wait (at most ``timeout_s``) until the pipeline has carried the source's changes up
    to key ``cutoff`` into the table, as the module docstring says; ``newest_key_reached``
    is the fallback test (the table's newest key has reached ``cutoff``). A wait that
    times out is logged with what was behind."""
    waited = _wait(stack, db, newest_key_reached, cutoff=cutoff, timeout_s=timeout_s, reference=reference)
    if not waited.caught_up:
        log.warning("the pipeline has not caught up after %.0f s: %s", waited.waited_s, waited.detail)
    return waited


def _wait(
    stack: Stack,
    db: SourceConnection,
    newest_key_reached: Callable[[], bool],
    *,
    cutoff: int,
    timeout_s: float,
    reference: bool,
) -> CatchUp:
    from confluent_kafka import Consumer
    from pyiceberg.exceptions import NoSuchTableError

    from datadrill.faults.retention import topic_partitions, watermarks
    from datadrill.platform.catalog import sink_state

    started = time.monotonic()
    deadline = started + timeout_s
    detail = "the table's newest key is below the source's"
    if not reference:
        while not newest_key_reached():
            if time.monotonic() >= deadline:
                return CatchUp(False, time.monotonic() - started, detail)
            time.sleep(POLL_S)
        return CatchUp(True, time.monotonic() - started)
    catalog = None
    try:
        catalog = stack.catalog()
        catalog.load_table(stack.table)
    except NoSuchTableError as exc:
        return _no_table(stack, exc, started)
    except Exception as exc:  # noqa: BLE001 - unreachable for now: the wait below retries and says why
        log.debug("the catalog does not answer yet: %s", exc)
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": "datadrill-catch-up",
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
            "client.id": "datadrill-catch-up",
        }
    )
    marks: dict[int, int] | None = None
    outbox: bool | None = None
    try:
        while True:
            try:
                if marks is None:
                    outbox = has_outbox(db) if outbox is None else outbox
                    if outbox and outbox_waiting(db, cutoff):
                        detail = (
                            f"the outbox still holds events of keys up to {cutoff:,} (is the relay running?)"
                        )
                    else:
                        partitions = topic_partitions(consumer, stack.topic, timeout_s=KAFKA_TIMEOUT_S)
                        found = watermarks(consumer, stack.topic, partitions or [], timeout_s=KAFKA_TIMEOUT_S)
                        marks = {p: high for p, (_, high) in found.items()}
                if marks is not None:
                    catalog = catalog or stack.catalog()
                    offsets, _ = sink_state(catalog.load_table(stack.table))
                    if not offsets:
                        # Not the reference sink's table (or never committed to): its newest key.
                        if newest_key_reached():
                            return CatchUp(True, time.monotonic() - started)
                    else:
                        late = behind(offsets, marks)
                        if not late:
                            return CatchUp(True, time.monotonic() - started, settled=True)
                        detail = _describe_behind(late, stack.topic) + " (is the sink running?)"
            except NoSuchTableError as exc:
                return _no_table(stack, exc, started)
            except Exception as exc:  # noqa: BLE001 - source, Kafka or catalog unreachable: wait on, say why
                detail = f"cannot tell: {type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                return CatchUp(False, time.monotonic() - started, detail)
            time.sleep(POLL_S)
    finally:
        consumer.close()


def _no_table(stack: Stack, exc: Exception, started: float) -> CatchUp:
    # The sink waits for a lost table and never makes one: nothing the pipeline does brings
    # it back, so waiting out the timeout would only delay the comparison's own error.
    return CatchUp(
        False,
        time.monotonic() - started,
        f"cannot tell: the table {stack.table} is not in the catalog ({exc})",
    )


__all__ = ["CATCH_UP_S", "CatchUp", "behind", "has_outbox", "outbox_waiting", "wait_caught_up"]
