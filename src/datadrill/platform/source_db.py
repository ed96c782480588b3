"""The OLTP source database: ``orders`` and its transactional ``outbox``.

The workload writes an order and its outbox event in one transaction; the relay
publishes outbox events and then deletes them ("marks" them). ``AUTOINCREMENT`` keeps
event ids strictly increasing even after deletes, which the sink relies on to drop the
duplicates a crashed relay republishes.

Example::

    with connect(paths.source_db) as db:
        insert_orders(db, [OrderRow(1, 7, 1250, "EUR", "created", 1_700_000_000_000_000, False)])
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

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


def connect(path: Path) -> sqlite3.Connection:
    """Open the source db (creating the schema), tuned for one writer and one relay."""
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    db.executescript(SCHEMA)
    return db


def next_order_id(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT COALESCE(MAX(order_id), 0) + 1 FROM orders").fetchone()
    return int(row[0])


def insert_orders(
    db: sqlite3.Connection,
    rows: Sequence[OrderRow],
    canaries: Sequence[tuple[int, int, int]] = (),
) -> None:
    """Insert orders and their outbox events (and canary stamps) in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        db.executemany(
            "INSERT INTO outbox (order_id, customer_id, amount_cents, currency, status,"
            " created_at_us, is_canary) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if canaries:
            db.executemany("INSERT INTO canaries VALUES (?, ?, ?)", canaries)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def pending_events(db: sqlite3.Connection, *, limit: int) -> list[OutboxEvent]:
    """The oldest unpublished outbox events, in event-id order."""
    cursor = db.execute(
        "SELECT event_id, order_id, customer_id, amount_cents, currency, status,"
        " created_at_us, is_canary FROM outbox ORDER BY event_id LIMIT ?",
        (limit,),
    )
    return [OutboxEvent(*row) for row in cursor]


def mark_published(db: sqlite3.Connection, *, up_to_event_id: int) -> None:
    db.execute("DELETE FROM outbox WHERE event_id <= ?", (up_to_event_id,))


def count_orders(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM orders").fetchone()[0])


def last_event_id(db: sqlite3.Connection) -> int:
    """The highest event id ever handed out (0 for a new source)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(row[0]) if row else 0


def outbox_depth(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
