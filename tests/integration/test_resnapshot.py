"""ResnapshotFromSource on a live pipeline: a gap made by deleting outbox events the relay
never published is re-read from the source and published through the outbox while the
workload keeps writing; the table ends with every order exactly once. On PostgreSQL,
parallel chunks and a concurrent writer hand out event ids in commit order."""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyiceberg.expressions import In

from conftest import drain, new_database, start_stack, stop_stack
from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.model import Reconcile, ResnapshotFromSource
from datadrill.platform import source_db
from datadrill.platform.source_conn import open_source
from datadrill.recovery import run_step
from datadrill.recovery.dead_letters import reemit
from datadrill.recovery.resnapshot import chunks_of, write_chunk
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """A stack of this module's own: the gap it makes must be the only one."""
    running = start_stack(tmp_path_factory.mktemp("resnapshot") / ".datadrill")
    yield running
    stop_stack(running)


def _make_gap(stack: StackClient, *, at_least: int) -> list[int]:
    """Pause the relay, let the outbox fill, delete what it holds (events that will never
    be published: a lost stretch of the change stream) and resume the relay. Returns the
    orders lost."""
    stack.components.pause("relay")
    try:

        def depth() -> int:
            with stack.source() as db:
                return source_db.outbox_depth(db)

        wait_until(lambda: depth() >= at_least, timeout=60, interval=0.1, what=f"{at_least} outbox events")
        with stack.source() as db, db.transaction():
            lost = [int(r[0]) for r in db.execute("SELECT order_id FROM outbox ORDER BY order_id")]
            db.execute("DELETE FROM outbox")
    finally:
        stack.components.resume("relay")
    return lost


def _context(stack: StackClient, tmp_path: Path) -> DrillContext:
    return DrillContext(stack, tmp_path, MonotonicClock())


def test_the_gap_is_resnapshotted_while_the_workload_writes(stack: StackClient, tmp_path: Path) -> None:
    lost = _make_gap(stack, at_least=1_000)
    assert len(lost) >= 1_000
    # The workload (400 orders/s) keeps writing through the step and after it.
    result = run_step(ResnapshotFromSource(workers=3, chunk_rows=300), _context(stack, tmp_path))
    assert result.ok and result.rows, result.detail
    # The relay's last batch before the pause was published but not yet deleted from the
    # outbox (at-least-once): those orders landed and are not in the gap. The rest are.
    delivered = len(lost) - result.rows
    assert 0 <= delivered < len(lost) // 2, result.detail
    assert result.rate_per_s and result.rate_per_s > 0
    extra = result.extra or {}
    assert extra["chunks"] == math.ceil(result.rows / 300)
    assert extra["workers"] == 3
    assert extra["source"] == "sqlite"
    assert extra["engine"] == "counts and hashes: DuckDB in process"
    # The orders lost were written one after another: one range of keys, up to the last.
    assert extra["gap_ranges"] == [[lost[delivered], max(lost)]]
    assert f"{result.rows:,} missing rows re-snapshotted" in result.detail
    # Nothing lost, and the delivered ones were not published a second time.
    drained = drain(stack)
    assert drained.exact, drained.describe()
    verified = run_step(Reconcile(repair=False), _context(stack, tmp_path))
    assert verified.extra and verified.extra["omissions"] == 0 and verified.extra["duplicates"] == 0


def test_nothing_missing_nothing_written(stack: StackClient, tmp_path: Path) -> None:
    drained = drain(stack)
    assert drained.exact, drained.describe()
    with stack.source() as db:
        before = (source_db.last_event_id(db), source_db.count_orders(db))
    stack.workload.set(rate=0)
    try:
        result = run_step(ResnapshotFromSource(), _context(stack, tmp_path))
    finally:
        stack.workload.set(rate=400)
    assert result.rows == 0 and result.detail.startswith("nothing to re-snapshot"), result.detail
    with stack.source() as db:
        # Canaries go on at rate 0: one event per order written, none besides.
        events = source_db.last_event_id(db) - before[0]
        assert events == source_db.count_orders(db) - before[1]


def test_a_relay_that_does_not_publish_fails_the_step_naming_what_is_missing(
    stack: StackClient, tmp_path: Path
) -> None:
    _make_gap(stack, at_least=200)
    stack.components.pause("relay")
    try:
        with pytest.raises(Exception, match=r"still missing \(keys \d+\.\.\d+\)") as caught:
            run_step(ResnapshotFromSource(timeout_s=3.0), _context(stack, tmp_path))
        assert re.search(r"holds 0 of the [\d,]+ rows", str(caught.value))
    finally:
        stack.components.resume("relay")
    # The events the step wrote wait in the outbox: once the relay runs, nothing is lost.
    drained = drain(stack)
    assert drained.exact, drained.describe()


@pytest.mark.postgres
def test_event_ids_follow_commit_order_on_postgresql(postgres_dsn: str) -> None:
    """Four workers write chunks while a writer inserts orders as the workload does. A
    reader polling the outbox must never find an event id below one it has already seen:
    the sink would drop that event (its id is not above the partition's high-water id)."""
    uri = new_database(postgres_dsn, "resnapshot_order")
    with source_db.connect(uri) as db:
        rows = [
            source_db.OrderRow(i, i % 9, i, "EUR", "created", 1_700_000_000_000_000 + i, False)
            for i in range(1, 20_001)
        ]
        source_db.insert_orders(db, rows)
        db.execute("DELETE FROM outbox")
    stop = threading.Event()
    out_of_order: list[tuple[int, int]] = []
    seen = [0]

    def writer() -> None:
        with open_source(uri) as db:
            order_id = 100_000
            while not stop.is_set():
                order_id += 1
                source_db.insert_orders(
                    db, [source_db.OrderRow(order_id, 1, 1, "EUR", "created", 1_700_000_000_000_000, False)]
                )

    def reader() -> None:
        known: set[int] = set()
        high = 0
        with open_source(uri) as db:
            while not stop.is_set():
                ids = [int(r[0]) for r in db.execute("SELECT event_id FROM outbox")]
                # An id not seen before, below the highest one an earlier look saw: it was
                # handed out before that one and committed after it.
                out_of_order.extend((i, high) for i in ids if i < high and i not in known)
                known.update(ids)
                high = max(ids, default=high)
                seen[0] = len(known)

    chunks = chunks_of(list(range(1, 20_001)), 500)
    lock = threading.Lock()

    def worker() -> None:
        with open_source(uri) as db:
            while True:
                with lock:
                    if not chunks:
                        return
                    chunk = chunks.pop()
                write_chunk(db, chunk)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    workers = [threading.Thread(target=worker) for _ in range(4)]
    try:
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert out_of_order == []
    with contextlib.closing(open_source(uri)) as db:
        resnapshotted = db.execute("SELECT count(*) FROM outbox WHERE order_id <= 20000").fetchone()[0]
        written = db.execute("SELECT count(*) FROM outbox WHERE order_id > 100000").fetchone()[0]
    # The reader watched while the chunks were written, and the writer wrote between them.
    assert resnapshotted == 20_000 and seen[0] > 1_000 and written > 0


@pytest.mark.postgres
def test_reemitted_dead_letters_wait_for_the_insert_in_flight_on_postgresql(postgres_dsn: str) -> None:
    """The workload's insert holds event ids it has not committed yet. Re-emitting dead
    letters meanwhile must wait for it: ids handed out after that insert's but committed
    before them would let the relay publish past the insert's events (and delete them by
    id) and the sink drop them as below its high-water id."""
    uri = new_database(postgres_dsn, "reemit_order")
    with source_db.connect(uri) as db:
        rows = [
            source_db.OrderRow(i, 1, i, "EUR", "created", 1_700_000_000_000_000 + i, False)
            for i in range(1, 11)
        ]
        source_db.insert_orders(db, rows)
        db.execute("DELETE FROM outbox")
    in_flight = open_source(uri)
    reemitted: list[BaseException | None] = []

    def reemit_all() -> None:
        try:
            with contextlib.closing(open_source(uri)) as db:
                reemit(db, list(range(1, 11)))
            reemitted.append(None)
        except BaseException as exc:  # handed to the test's thread
            reemitted.append(exc)

    with contextlib.closing(in_flight), contextlib.closing(open_source(uri)) as watcher:
        in_flight.execute("BEGIN")
        in_flight.execute(
            "INSERT INTO outbox (order_id, customer_id, amount_cents, currency, status, created_at_us,"
            " is_canary) VALUES (11, 1, 11, 'EUR', 'created', 1, 0)"
        )
        thread = threading.Thread(target=reemit_all)
        thread.start()
        try:

            def waiting_on_the_outbox() -> bool:
                waits = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'LOCK TABLE outbox%'"
                ).fetchone()[0]
                return bool(waits) or not thread.is_alive()

            wait_until(waiting_on_the_outbox, timeout=30, what="the re-emission to reach the outbox")
            assert thread.is_alive() and not reemitted, (
                f"re-emitted beside an uncommitted insert: {reemitted}"
            )
        finally:
            in_flight.execute("COMMIT")
            thread.join(timeout=60)
        assert reemitted == [None]
        ids = watcher.execute("SELECT order_id, event_id FROM outbox ORDER BY event_id").fetchall()
    assert [order for order, _ in ids] == [11, *range(1, 11)]


def test_a_repair_waits_for_reemitted_orders_in_flight(stack: StackClient, tmp_path: Path) -> None:
    """Orders re-emitted through the outbox keep their old keys (reprocessed dead letters
    do this): the table's newest key says nothing about them. Here they are missing from the
    table and on their way behind a paused sink. The reconciliation must wait for them, not
    repair them: a repair would insert them and the sink would then write them again."""
    drained = drain(stack)
    assert drained.exact, drained.describe()
    before = stack.workload.get()
    # No canaries either: the source's newest key stays one the table holds.
    stack.workload.set(rate=0, canary_interval_s=3600)

    def newest_landed() -> bool:
        with stack.source() as db:
            newest = db.execute("SELECT max(order_id) FROM orders").fetchone()[0]
        engine = stack.query_engine()
        try:
            return bool(engine.rows(f"SELECT max(order_id) FROM {stack.table}")[0][0] == newest)
        finally:
            engine.close()

    wait_until(newest_landed, timeout=60, interval=0.2, what="the table to hold the newest order")
    stack.components.pause("sink")
    resumer = threading.Timer(8.0, stack.components.resume, args=("sink",))
    try:
        with stack.source() as db:
            keys = [int(r[0]) for r in db.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT 50")]
        stack.catalog().load_table(stack.table).delete(In("order_id", keys))
        with stack.source() as db:
            write_chunk(db, keys)  # re-emitted through the outbox, as a reprocess does

        def published() -> bool:
            with stack.source() as db:
                return source_db.outbox_depth(db) == 0

        wait_until(published, timeout=60, interval=0.1, what="the relay to publish the re-emitted orders")
        # Resumed well after a reconciliation and its re-checks would have ended without
        # waiting (~5 s here), well before the step stops waiting (CATCH_UP_S).
        resumer.start()
        result = run_step(Reconcile(repair=True), _context(stack, tmp_path))
    finally:
        resumer.cancel()
        if resumer.is_alive():
            resumer.join()
        if stack.components.get("sink").paused:
            stack.components.resume("sink")
        stack.workload.set(rate=before.rate, canary_interval_s=before.canary_interval_s)
    assert result.ok, result.detail
    extra = result.extra or {}
    assert extra["omissions"] == 0 and extra["repaired_rows"] == 0, result.detail
    drained = drain(stack)
    assert drained.exact, drained.describe()


def test_a_dead_lettered_order_that_reached_the_table_is_not_reemitted(
    stack: StackClient, tmp_path: Path
) -> None:
    """A relay that dead-lettered a batch and crashed before marking it publishes the batch
    again; once the drifted writer is rolled back, those orders reach the table. Their dead
    letters must not bring them a second time."""
    from confluent_kafka import Producer

    from datadrill.platform.relay import dead_letter_topic
    from datadrill.recovery.dead_letters import reprocess_dead_letters

    drained = drain(stack)
    assert drained.exact, drained.describe()
    with stack.source() as db:
        held, lost = (int(r[0]) for r in db.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT 2"))
    # `lost` never reached the table (the drifted batch's order); `held` did, republished.
    stack.components.pause("sink")  # its appends, several a second, would race the delete
    try:
        stack.catalog().load_table(stack.table).delete(In("order_id", [lost]))
    finally:
        stack.components.resume("sink")
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
    for order_id in (held, lost):
        letter = {"order_id": order_id, "event_id": 0, "writer": "rename", "error": "drifted", "record": {}}
        producer.produce(dead_letter_topic(stack.topic), json.dumps(letter).encode(), partition=0)
    assert producer.flush(30) == 0
    count, _ = reprocess_dead_letters(_context(stack, tmp_path))
    assert count == 1
    drained = drain(stack)
    assert drained.exact, drained.describe()
