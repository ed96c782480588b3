"""SourceConnection and source_db on SQLite (a file in tmp_path); the same calls on
PostgreSQL are in tests/integration/test_pg_integrity.py (they need a server)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from datadrill.platform import source_db
from datadrill.platform.source_conn import (
    SOURCE_ERRORS,
    SourceConnection,
    _split_row_tuple,
    _to_pyformat,
    as_source,
    describe_source,
    is_postgres,
    open_source,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SourceConnection]:
    with open_source(tmp_path / "source.db") as db:
        db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b INTEGER, c TEXT)")
        yield db


def test_placeholders_and_percent_signs(db: SourceConnection) -> None:
    assert db.dialect == "sqlite" and not db.is_postgres
    assert db.execute("SELECT ? + ?, ?", (1, 2, "x?")).fetchone() == (3, "x?")
    assert db.execute("SELECT 17 % 5").fetchone() == (2,)
    assert db.execute("SELECT ? % 5, '100%'", (17,)).fetchone() == (2, "100%")


def test_pyformat_translation_for_psycopg2() -> None:
    # Every ? becomes %s, every literal % doubles (psycopg2 formats with % when given params).
    assert _to_pyformat("SELECT ? % 5, '100%' WHERE a = ?") == "SELECT %s %% 5, '100%%' WHERE a = %s"
    assert _to_pyformat("SELECT 1") == "SELECT 1"


def test_the_row_tuple_of_an_insert() -> None:
    assert _split_row_tuple("(?, ?, 0)") == ("(?, ?, 0)", "")
    assert _split_row_tuple(" (?, length('a)b'), ?) ON CONFLICT (a) DO NOTHING") == (
        "(?, length('a)b'), ?)",
        " ON CONFLICT (a) DO NOTHING",
    )
    assert _split_row_tuple("(?, 'it''s (')") == ("(?, 'it''s (')", "")
    assert _split_row_tuple("(?, ?), (?, ?)") is None  # several rows: not one template
    assert _split_row_tuple("") is None
    assert _split_row_tuple("(?, ?") is None


def test_executemany(db: SourceConnection) -> None:
    db.executemany("INSERT INTO t VALUES (?, 7, ?)", [(i, f"{i}%") for i in range(1_500)])
    db.executemany("INSERT INTO t VALUES (?, ?, ?)", [])
    assert db.execute("SELECT count(*), min(b), max(b), max(c) FROM t").fetchone() == (1_500, 7, 7, "999%")


def test_a_failed_transaction_leaves_nothing(db: SourceConnection) -> None:
    with pytest.raises(SOURCE_ERRORS), db.transaction():
        db.execute("INSERT INTO t VALUES (1, 1, 'a')")
        db.execute("INSERT INTO t VALUES (1, 1, 'again')")
    with pytest.raises(KeyboardInterrupt), db.transaction():
        db.execute("INSERT INTO t VALUES (2, 2, 'b')")
        raise KeyboardInterrupt
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
    with db.transaction():
        db.execute("INSERT INTO t VALUES (3, 3, 'c')")
    assert db.execute("SELECT a FROM t").fetchall() == [(3,)]


def test_a_transaction_holds_the_write_lock_from_its_start(tmp_path: Path, db: SourceConnection) -> None:
    """BEGIN IMMEDIATE: a second writer waits for the first instead of deadlocking."""
    other = open_source(tmp_path / "source.db", timeout_s=0.05)
    with db.transaction():
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("INSERT INTO t VALUES (9, 9, 'x')")
        db.execute("INSERT INTO t VALUES (1, 1, 'a')")
    other.execute("INSERT INTO t VALUES (9, 9, 'x')")
    assert db.execute("SELECT count(*) FROM t").fetchone() == (2,)
    other.close()


def test_with_closes_and_a_bad_query_is_a_source_error(tmp_path: Path) -> None:
    with open_source(tmp_path / "s.db") as db:
        with pytest.raises(SOURCE_ERRORS):
            db.execute("SELECT no_such_column FROM sqlite_master")
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with pytest.raises(SOURCE_ERRORS):
        db.execute("SELECT 1")
    assert "sqlite" in repr(db)


def test_as_source_wraps_a_bare_sqlite_connection() -> None:
    raw = sqlite3.connect(":memory:")
    wrapped = as_source(raw)
    assert wrapped.raw is raw and wrapped.dialect == "sqlite"
    assert as_source(wrapped) is wrapped


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("postgresql://drill:s3cret@127.0.0.1:5433/source", "postgresql://drill:***@127.0.0.1:5433/source"),
        (
            "postgres://drill:s3cret@db/source?sslmode=require",
            "postgres://drill:***@db/source?sslmode=require",
        ),
        ("postgresql://:s3cret@127.0.0.1/source", "postgresql://:***@127.0.0.1/source"),
        ("postgresql://drill:s3cret@[::1]:5432/source", "postgresql://drill:***@[::1]:5432/source"),
        ("postgresql://drill@127.0.0.1:5433/source", "postgresql://drill@127.0.0.1:5433/source"),
        ("state/source.db", "state/source.db"),
    ],
)
def test_describe_source_hides_passwords(target: str, expected: str) -> None:
    assert describe_source(target) == expected
    assert "s3cret" not in describe_source(target)


def test_is_postgres() -> None:
    assert is_postgres("postgresql://h/db") and is_postgres("postgres://h/db")
    assert not is_postgres("source.db") and not is_postgres(Path("postgresql://h/db"))
    assert not is_postgres("sqlite:///source.db")


def test_connect_twice_at_once_and_last_event_id(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    barrier, errors = threading.Barrier(3), []

    def start() -> None:
        barrier.wait()
        try:
            source_db.connect(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with source_db.connect(path) as db:
        assert source_db.last_event_id(db) == 0
        rows = [source_db.OrderRow(k, 1, 100, "EUR", "created", 1, k == 2) for k in (1, 2, 3)]
        source_db.insert_orders(db, rows, canaries=[(2, 1, 5)])
        assert source_db.last_event_id(db) == 3
        source_db.mark_published(db, up_to_event_id=3)
        # Deleting the published events keeps the sequence: ids never repeat.
        assert source_db.outbox_depth(db) == 0 and source_db.last_event_id(db) == 3
        source_db.insert_orders(db, [source_db.OrderRow(4, 1, 100, "EUR", "created", 1, False)])
        assert [e.event_id for e in source_db.pending_events(db, limit=10)] == [4]
        assert source_db.next_order_id(db) == 5 and source_db.count_orders(db) == 4
