"""The OLTP source database: ``orders`` and its transactional ``outbox``.

The workload writes an order and its outbox event in one transaction; the relay
publishes outbox events and then deletes them ("marks" them). ``AUTOINCREMENT`` (a
sequence on PostgreSQL) keeps event ids strictly increasing even after deletes, which the
sink relies on to drop the duplicates a crashed relay republishes.

The same tables live in a SQLite file or in PostgreSQL (:mod:`.source_conn`); each
function here speaks both.

Example::

    with connect(paths.source_db) as db:     # or a postgresql:// URI
        insert_orders(db, [OrderRow(1, 7, 1250, "EUR", "created", 1_700_000_000_000_000, False)])
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from datadrill.platform.source_conn import (
    SourceConnection,
    as_source,
    open_source,
    sqlite_setup_lock,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id      INTEGER PRIMARY KEY,
    customer_id   INTEGER NOT NULL,
    amount_cents  INTEGER NOT NULL,
    currency      TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    is_canary     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    event_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id      INTEGER NOT NULL,
    customer_id   INTEGER NOT NULL,
    amount_cents  INTEGER NOT NULL,
    currency      TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    is_canary     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS canaries (
    order_id        INTEGER PRIMARY KEY,
    created_at_us   INTEGER NOT NULL,
    emitted_mono_ns INTEGER NOT NULL
);
"""

# The same tables in PostgreSQL. is_canary stays an integer so that queries written for
# one source run on the other; BIGSERIAL's sequence hands out event ids in order.
POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id      BIGINT PRIMARY KEY,
    customer_id   BIGINT  NOT NULL,
    amount_cents  BIGINT  NOT NULL,
    currency      TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    created_at_us BIGINT  NOT NULL,
    is_canary     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    event_id      BIGSERIAL PRIMARY KEY,
    order_id      BIGINT  NOT NULL,
    customer_id   BIGINT  NOT NULL,
    amount_cents  BIGINT  NOT NULL,
    currency      TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    created_at_us BIGINT  NOT NULL,
    is_canary     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS canaries (
    order_id        BIGINT PRIMARY KEY,
    created_at_us   BIGINT NOT NULL,
    emitted_mono_ns BIGINT NOT NULL
);
"""
OUTBOX_SEQUENCE = "outbox_event_id_seq"


class OrderRow(NamedTuple):
    order_id: int
    customer_id: int
    amount_cents: int
    currency: str
    status: str
    created_at_us: int
    is_canary: bool


class OutboxEvent(NamedTuple):
    event_id: int
    order_id: int
    customer_id: int
    amount_cents: int
    currency: str
    status: str
    created_at_us: int
    is_canary: bool


def connect(target: str | Path) -> SourceConnection:
    """Open the source db at ``target`` (a SQLite file's path or a ``postgresql://`` URI),
    creating the schema."""
    db = open_source(target)
    try:
        ensure_schema(db)
    except BaseException:
        db.close()
        raise
    return db


def ensure_schema(db: SourceConnection | sqlite3.Connection) -> None:
    db = as_source(db)
    if db.is_postgres:
        # CREATE TABLE IF NOT EXISTS races with itself across connections on PostgreSQL
        # (a unique violation in pg_type): one advisory lock serializes the first starts.
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(7100)")
            db.execute(POSTGRES_SCHEMA)
        return
    with sqlite_setup_lock(db.target):
        db.raw.executescript(SCHEMA)


def next_order_id(db: SourceConnection | sqlite3.Connection) -> int:
    row = db.execute("SELECT COALESCE(MAX(order_id), 0) + 1 FROM orders").fetchone()
    return int(row[0])


def insert_orders(
    db: SourceConnection,
    rows: Sequence[OrderRow],
    canaries: Sequence[tuple[int, int, int]] = (),
) -> None:
    """Insert orders and their outbox events (and canary stamps) in one transaction."""
    db = as_source(db)
    values = [(*row[:6], int(row[6])) for row in rows]
    with db.transaction():
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", values)
        db.executemany(
            "INSERT INTO outbox (order_id, customer_id, amount_cents, currency, status,"
            " created_at_us, is_canary) VALUES (?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        db.executemany("INSERT INTO canaries VALUES (?, ?, ?)", canaries)


def hold_event_order(db: SourceConnection) -> None:
    """Make the outbox events this transaction inserts follow commit order, beside the
    workload's inserts: the sink drops an event whose id is not above its partition's
    high-water id, and the relay deletes what it published by id, so an id handed out
    before another but committed after it would be lost. On PostgreSQL this takes ``LOCK
    TABLE outbox IN SHARE ROW EXCLUSIVE MODE``, which conflicts with the ROW EXCLUSIVE lock
    every INSERT takes: it waits for the insert in flight to commit and holds the next one
    back until this transaction commits. SQLite's ``BEGIN IMMEDIATE`` already did the same
    (:meth:`SourceConnection.transaction`). Call it inside the transaction, before inserting."""
    if db.is_postgres:
        db.execute("LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE")


def pending_events(db: SourceConnection | sqlite3.Connection, *, limit: int) -> list[OutboxEvent]:
    """The oldest unpublished outbox events, in event-id order."""
    cursor = db.execute(
        "SELECT event_id, order_id, customer_id, amount_cents, currency, status,"
        " created_at_us, is_canary FROM outbox ORDER BY event_id LIMIT ?",
        (limit,),
    )
    # tuple.__new__ takes each row as it comes; OutboxEvent(*row) unpacks it through the
    # named tuple's Python-level __new__, twice the cost at the relay's 60,000 rows/s.
    make = tuple.__new__
    return [make(OutboxEvent, row) for row in cursor]


def mark_published(db: SourceConnection | sqlite3.Connection, *, up_to_event_id: int) -> None:
    db.execute("DELETE FROM outbox WHERE event_id <= ?", (up_to_event_id,))


def count_orders(db: SourceConnection | sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM orders").fetchone()[0])


def last_event_id(db: SourceConnection | sqlite3.Connection) -> int:
    """The highest event id ever handed out (0 for a new source)."""
    db = as_source(db)
    if db.is_postgres:
        value, called = db.execute(f"SELECT last_value, is_called FROM {OUTBOX_SEQUENCE}").fetchone()
        return int(value) if called else 0
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(row[0]) if row else 0


def outbox_depth(db: SourceConnection | sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
