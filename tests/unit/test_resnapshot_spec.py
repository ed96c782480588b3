"""ResnapshotFromSource: the spec, its place in a runbook, and the pieces of the step that
need no stack (key ranges, SQL predicates, one chunk's transaction on a SQLite source)."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from datadrill.model import Reconcile, ResnapshotFromSource, Runbook
from datadrill.platform import source_db
from datadrill.platform.source_conn import open_source
from datadrill.recovery import registry
from datadrill.recovery.resnapshot import (
    MAX_RANGES_PER_PREDICATE,
    chunks_of,
    describe_ranges,
    key_predicates,
    key_runs,
    write_chunk,
)


def test_defaults_and_description() -> None:
    step = ResnapshotFromSource()
    assert (step.workers, step.chunk_rows, step.timeout_s, step.kind) == (
        4,
        5000,
        600.0,
        "resnapshot_from_source",
    )
    assert (
        step.describe()
        == "re-snapshot the missing rows from the source in chunks of 5,000 rows with 4 workers"
    )


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("workers", 0, "greater than or equal to 1"),
        ("workers", 65, "less than or equal to 64"),
        ("workers", "4", "valid integer"),
        ("chunk_rows", 0, "greater than or equal to 1"),
        ("timeout_s", 0.0, "greater than 0"),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value: object, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ResnapshotFromSource(**{field: value})  # type: ignore[arg-type]
    assert field in str(caught.value) and says in str(caught.value)


def test_a_runbook_holds_it_and_the_registry_runs_it() -> None:
    runbook = Runbook(steps=(ResnapshotFromSource(workers=2), Reconcile()))
    assert [s.kind for s in runbook.steps] == ["resnapshot_from_source", "reconcile"]
    run = registry.implementation_for("resnapshot_from_source")
    assert run.__module__ == "datadrill.recovery.resnapshot"


def test_key_runs() -> None:
    assert key_runs([]) == []
    assert key_runs([5, 1, 2, 3, 9, 10, 3]) == [(1, 3), (5, 5), (9, 10)]
    assert describe_ranges(key_runs([1, 2, 3, 7])) == "keys 1..3, 7"
    assert describe_ranges([(1, 1), (3, 3), (5, 5), (7, 8)]) == "keys 1, 3, 5 and 1 more ranges"


def test_chunks_are_key_ranges_of_at_most_chunk_rows() -> None:
    chunks = chunks_of([9, 1, 5, 3, 7, 2], 4)
    assert chunks == [(1, 2, 3, 5), (7, 9)]


def _selected(db: sqlite3.Connection, predicates: list[str]) -> list[int]:
    found: list[int] = []
    for predicate in predicates:
        found.extend(r[0] for r in db.execute(f"SELECT k FROM t WHERE {predicate}"))
    return sorted(found)


def test_predicates_select_exactly_the_keys_in_sqlite() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    db.executemany("INSERT INTO t VALUES (?)", [(k,) for k in range(1, 20_001)])
    rng = random.Random(13)
    for keys in (
        list(range(100, 5_100)),  # one contiguous gap: one BETWEEN
        rng.sample(range(1, 20_001), 3_000),  # scattered: ranges and IN lists
        [k for k in range(1, 20_001) if k % 3],  # thousands of two-key runs: many OR groups
        [42],
    ):
        predicates = key_predicates("k", keys)
        assert _selected(db, predicates) == sorted(keys)
    assert key_predicates("k", range(100, 5_100)) == ["(k BETWEEN 100 AND 5099)"]


def test_an_or_chain_stays_short() -> None:
    pairs = [k for k in range(0, 3_000) if k % 3 != 2]  # runs of two
    predicates = key_predicates("k", pairs)
    assert all(p.count(" OR ") < MAX_RANGES_PER_PREDICATE for p in predicates)


def _source(path: Path, orders: int) -> None:
    with source_db.connect(path) as db:
        rows = [
            source_db.OrderRow(i, i % 7, 100 * i, "EUR", "created", 1_700_000_000_000_000 + i, False)
            for i in range(1, orders + 1)
        ]
        source_db.insert_orders(db, rows)
        db.execute("DELETE FROM outbox")  # published


def test_a_chunk_is_written_into_the_outbox_from_the_orders(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    _source(path, 100)
    with open_source(path) as db:
        db.execute("DELETE FROM orders WHERE order_id = 55")  # gone since the gap was found
        found = write_chunk(db, [50, 51, 52, 55, 90])
        rows = db.execute(
            "SELECT event_id, order_id, amount_cents, currency FROM outbox ORDER BY event_id"
        ).fetchall()
    assert found == [50, 51, 52, 90]
    assert [r[1] for r in rows] == [50, 51, 52, 90]
    assert [r[2] for r in rows] == [5000, 5100, 5200, 9000]
    # Fresh event ids, above every id handed out before (the 100 published ones).
    assert [r[0] for r in rows] == [101, 102, 103, 104]


def test_parallel_chunks_each_commit_as_one_run_of_event_ids(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    _source(path, 4_000)
    chunks = chunks_of(list(range(1, 4_001)), 250)
    todo = list(chunks)
    lock = threading.Lock()

    def worker() -> None:
        with open_source(path) as db:
            while True:
                with lock:
                    if not todo:
                        return
                    chunk = todo.pop()
                write_chunk(db, chunk)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open_source(path) as db:
        rows = db.execute("SELECT event_id, order_id FROM outbox ORDER BY event_id").fetchall()
    assert sorted(r[1] for r in rows) == list(range(1, 4_001))  # each order once
    # Each chunk's events got consecutive ids: its transaction wrote alone.
    by_chunk: dict[int, list[int]] = {}
    for event_id, order_id in rows:
        by_chunk.setdefault((order_id - 1) // 250, []).append(event_id)
    for ids in by_chunk.values():
        assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_a_chunk_waits_out_a_busy_source_and_fails_on_anything_else(tmp_path: Path) -> None:
    from datadrill.clock import MonotonicClock
    from datadrill.recovery.resnapshot import _write_retrying

    path = tmp_path / "source.db"
    _source(path, 10)
    holder = open_source(path)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the source's write lock
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    clock = MonotonicClock()
    with open_source(path, timeout_s=0.05) as db:  # its busy timeout runs out at once
        assert _write_retrying(db, [3, 4], clock=clock, deadline=clock.monotonic() + 60) == [3, 4]
        db.execute("DROP TABLE outbox")
        with pytest.raises(sqlite3.OperationalError, match="no such table: outbox"):
            _write_retrying(db, [5], clock=clock, deadline=clock.monotonic() + 60)
    release.join()
    holder.close()
