"""A connection to the source database, SQLite or PostgreSQL, behind one small interface.

The source is a SQLite file in the state directory unless the stack was given a
PostgreSQL URI (``[source] uri``, or the embedded stack's throwaway server). Every caller
writes ``?`` placeholders, as for SQLite; :class:`SourceConnection` turns them into
psycopg2's ``%s`` for PostgreSQL. Both connections run in autocommit: a statement sees the
newest committed rows, and :meth:`SourceConnection.transaction` groups writes.

Example::

    with open_source("postgresql://drill@127.0.0.1:5433/source") as db:
        db.execute("SELECT count(*) FROM orders WHERE order_id > ?", (10,)).fetchone()
    with open_source(paths.source_db) as db:          # the SQLite file
        with db.transaction():
            db.executemany("INSERT INTO canaries VALUES (?, ?, ?)", rows)
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions
import psycopg2.extras

SourceDialect = Literal["sqlite", "postgresql"]
POSTGRES_SCHEMES = ("postgresql", "postgres")

SOURCE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg2.Error)
"""What a failed source statement raises, whichever the database."""


class Cursor(Protocol):
    """What callers use of a DB-API cursor (sqlite3's and psycopg2's both have it)."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


def is_postgres(target: str | Path) -> bool:
    """Whether ``target`` is a PostgreSQL URI (else it is a SQLite file's path)."""
    return isinstance(target, str) and urlsplit(target).scheme in POSTGRES_SCHEMES


def describe_source(target: str | Path) -> str:
    """``target`` for people and logs: a URI without its password, or the file's path."""
    if not is_postgres(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _to_pyformat(sql: str) -> str:
    # psycopg2 formats with %: a literal % (the hash's modulo) doubles when parameters are
    # passed, and every ? becomes %s (our statements never hold ? in a string literal).
    return sql.replace("%", "%%").replace("?", "%s")


def _split_row_tuple(values: str) -> tuple[str, str] | None:
    """``"(?, ?, 0) ON CONFLICT DO NOTHING"`` → ``("(?, ?, 0)", " ON CONFLICT DO NOTHING")``:
    the one parenthesized row after VALUES and what follows it; None when ``values`` is not
    one such row (several rows, or no VALUES at all)."""
    text = values.lstrip()
    if not text.startswith("("):
        return None
    depth, quoted = 0, False
    for index, char in enumerate(text):
        if char == "'":
            quoted = not quoted  # '' inside a literal toggles twice
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                tail = text[index + 1 :]
                return None if tail.lstrip().startswith(",") else (text[: index + 1], tail)
    return None


class SourceConnection:
    """One connection to the source database; ``dialect`` says which it is.

    Closes when its ``with`` block ends (unlike a bare sqlite3 connection, whose ``with``
    only commits)."""

    def __init__(self, raw: Any, dialect: SourceDialect, target: str) -> None:
        self.raw = raw
        self.dialect: SourceDialect = dialect
        self.target = target

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self.dialect == "sqlite":
            cursor: Cursor = self.raw.execute(sql, tuple(params))
            return cursor
        pg_cursor = self.raw.cursor()
        if params:
            pg_cursor.execute(_to_pyformat(sql), tuple(params))
        else:
            pg_cursor.execute(sql)
        return pg_cursor  # type: ignore[no-any-return]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.dialect == "sqlite":
            self.raw.executemany(sql, rows)
            return
        # One statement for the whole batch: psycopg2's executemany is a round trip per row.
        # The row's tuple is the template, literals included (VALUES (?, ?, 0)), and what
        # follows it (ON CONFLICT ...) stays after the rows.
        head, _, values = sql.partition(" VALUES ")
        split = _split_row_tuple(values)
        with self.raw.cursor() as cursor:
            if split is not None:
                template, tail = split
                psycopg2.extras.execute_values(
                    cursor,
                    _to_pyformat(head) + " VALUES %s" + _to_pyformat(tail),
                    rows,
                    template=_to_pyformat(template),
                    page_size=1000,
                )
            else:
                cursor.executemany(_to_pyformat(sql), rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SourceConnection]:
        """Statements inside commit together or not at all. On SQLite the write lock is
        taken at the start (``BEGIN IMMEDIATE``), so two writers never deadlock."""
        self.raw.execute("BEGIN IMMEDIATE") if self.dialect == "sqlite" else self.execute("BEGIN")
        try:
            yield self
        except BaseException:
            # A lost connection fails the ROLLBACK too (and rolls back by itself): the
            # error that broke the transaction is the one to raise.
            with contextlib.suppress(*SOURCE_ERRORS):
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> SourceConnection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SourceConnection {self.dialect} {describe_source(self.target)}>"


def as_source(db: SourceConnection | sqlite3.Connection) -> SourceConnection:
    """``db`` as a :class:`SourceConnection` (a bare sqlite3 connection is wrapped: the
    library's functions took those before sources could be PostgreSQL)."""
    return db if isinstance(db, SourceConnection) else SourceConnection(db, "sqlite", "")


def open_source(target: str | Path, *, timeout_s: float = 30.0) -> SourceConnection:
    """Connect to the source at ``target``: a ``postgresql://`` URI or a SQLite file's path.

    Raises ``sqlite3.Error`` or ``psycopg2.Error`` (see :data:`SOURCE_ERRORS`) when the
    database cannot be reached."""
    if is_postgres(target):
        raw = psycopg2.connect(str(target), connect_timeout=max(1, int(timeout_s)))
        raw.set_session(autocommit=True)
        # psycopg2 takes the database's encoding by default, where a character the database
        # cannot hold fails in Python (UnicodeEncodeError, outside SOURCE_ERRORS); from UTF8
        # the server converts, and refuses such a character with its own error.
        raw.set_client_encoding("UTF8")
        return SourceConnection(raw, "postgresql", str(target))
    db = sqlite3.connect(target, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        with sqlite_setup_lock(target):
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    except BaseException:
        db.close()
        raise
    return SourceConnection(db, "sqlite", str(target))


@contextlib.contextmanager
def sqlite_setup_lock(target: str | Path) -> Iterator[None]:
    """Hold an exclusive lock beside the SQLite file at ``target`` (``<file>.setup-lock``).

    Switching a new file to WAL and creating its tables take SQLite's exclusive lock, and
    SQLite answers "database is locked" at once, without its busy timeout, when two
    connections that both read the file race to upgrade (it refuses to wait into a
    deadlock). The relay, the sink and the workload open the source together at start-up;
    this lock makes those first statements take turns, across threads and processes."""
    if str(target) in ("", ":memory:"):  # a wrapped bare connection, or no file at all
        yield
        return
    with open(f"{target}.setup-lock", "a") as handle:  # noqa: PTH123 - a lock file, no data
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


__all__ = [
    "POSTGRES_SCHEMES",
    "SOURCE_ERRORS",
    "Cursor",
    "SourceConnection",
    "SourceDialect",
    "as_source",
    "describe_source",
    "is_postgres",
    "open_source",
    "sqlite_setup_lock",
]
