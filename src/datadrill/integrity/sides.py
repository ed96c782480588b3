"""The two sides of a reconciliation and what they report: key bounds, range summaries, row hashes.

A :class:`Side` answers each question with one query in its own engine, so neither table is
pulled into Python: :class:`SqliteSide` (the source query on a SQLite connection),
:class:`EngineSide` (the sink table through the in-process :class:`QueryEngine`),
:class:`TrinoSide` (the sink table in Trino, where it lives), and
:class:`DuckDBSide` with :class:`ParquetSide` and :class:`ArrowSide` (files or an Arrow
table in a DuckDB connection of their own). A summary covers the equal-width sub-ranges of
:func:`split_range`, so that both sides' :class:`RangeSummary` lists line up.

Example::

    side = SqliteSide(db)                      # orders, DEFAULT_SOURCE_QUERY
    side.key_bounds()                          # (1, 1000)
    side.summarize(1, 1000, 4)[0].rows         # rows with order_id in [1, 250]
    side.row_hashes(1, 3)                      # [(key, row hash), ...] of keys 1 to 3
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from datadrill.errors import ConfigError, QueryFailed
from datadrill.integrity.dialects import (
    DUCKDB,
    POSTGRESQL,
    SQLITE,
    TRINO,
    Column,
    Dialect,
    quote_identifier,
    quote_table,
    row_hashes_sql,
    subquery,
    summary_sql,
)
from datadrill.integrity.hashing import MAX_INTEGER_COLUMNS, ColumnKind
from datadrill.model.slo import DEFAULT_SOURCE_QUERY
from datadrill.platform.query import QueryEngine
from datadrill.platform.source_conn import SOURCE_ERRORS, SourceConnection, as_source, describe_source

SOURCE_ORDER_COLUMNS: tuple[Column, ...] = (
    Column("customer_id", ColumnKind.INTEGER),
    Column("amount_cents", ColumnKind.INTEGER),
    Column("currency", ColumnKind.TEXT),
    Column("status", ColumnKind.TEXT),
    Column("created_at_us", ColumnKind.INTEGER),
)
"""The business columns of ``orders`` in the source query (:data:`DEFAULT_SOURCE_QUERY`)."""

SINK_ORDER_COLUMNS: tuple[Column, ...] = (
    Column("customer_id", ColumnKind.INTEGER),
    Column("amount_cents", ColumnKind.INTEGER),
    Column("currency", ColumnKind.TEXT),
    Column("status", ColumnKind.TEXT),
    Column("created_at_us", ColumnKind.INTEGER, "epoch_us(created_at)"),
)
"""The same columns in ``dwh.orders`` (``created_at`` is a TIMESTAMPTZ there)."""

POSTGRES_HASHABLE_ENCODINGS = ("UTF8", "LATIN1")
"""Database encodings in which PostgreSQL computes the row hash as the other engines do."""


@dataclass(frozen=True)
class RangeSummary:
    """What one side holds for keys in ``[lo, hi]``: rows, distinct keys, checksum.

    ``keys`` is None unless asked for (``summarize(..., count_keys=True)``): a
    ``count(DISTINCT key)`` costs DuckDB as much as the rest of the scan, and ``rows`` with
    ``checksum`` already reveal every difference (a duplicate adds a row, a swapped key
    changes the checksum).
    """

    lo: int
    hi: int
    rows: int
    keys: int | None
    checksum: int

    def agrees_with(self, other: RangeSummary) -> bool:
        keys_agree = self.keys is None or other.keys is None or self.keys == other.keys
        return keys_agree and (self.rows, self.checksum) == (other.rows, other.checksum)


def split_range(lo: int, hi: int, buckets: int) -> tuple[int, list[tuple[int, int]]]:
    """The bucket width and the equal-width sub-ranges of ``[lo, hi]`` (at most ``buckets``).

    Every :class:`Side` splits with this function so that both sides' buckets line up.

    Example::

        split_range(1, 10, 4)   # (3, [(1, 3), (4, 6), (7, 9), (10, 10)])
    """
    if hi < lo:
        raise ValueError(f"empty range [{lo}, {hi}]")
    span = hi - lo + 1
    width = -(-span // buckets)
    count = -(-span // width)
    return width, [(lo + i * width, min(hi, lo + (i + 1) * width - 1)) for i in range(count)]


def _summaries(
    lo: int, hi: int, buckets: int, rows: Iterable[Sequence[Any]], *, count_keys: bool
) -> list[RangeSummary]:
    _, ranges = split_range(lo, hi, buckets)
    found = {int(b): (int(n), None if k is None else int(k), int(s or 0)) for b, n, k, s in rows}
    out = []
    for index, (sub_lo, sub_hi) in enumerate(ranges):
        n, k, s = found.pop(index, (0, None if not count_keys else 0, 0))
        out.append(RangeSummary(sub_lo, sub_hi, n, k, s))
    if found:
        raise QueryFailed(f"summary of [{lo}, {hi}] returned buckets outside it: {sorted(found)}")
    return out


class Side(Protocol):
    """One side of a reconciliation. Each method is one query in the side's own engine.

    A third-party side must split ranges with :func:`split_range` and hash rows as
    :func:`~datadrill.integrity.hashing.row_hash` does for its ``columns``' kinds.
    """

    name: str
    columns: tuple[Column, ...]

    def key_bounds(self) -> tuple[int, int] | None:
        """Smallest and largest key, or None when the side is empty."""
        ...

    def summarize(self, lo: int, hi: int, buckets: int, *, count_keys: bool = False) -> list[RangeSummary]:
        """Summaries of ``split_range(lo, hi, buckets)``, one per sub-range, empty ones
        included; ``keys`` only with ``count_keys``."""
        ...

    def row_hashes(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """``(key, row hash)`` of every row with a key in ``[lo, hi]`` (duplicates repeat)."""
        ...

    def row_hashes_in(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """The same for several disjoint ranges, in one query (one round trip per side for
        all the damaged ranges of a level)."""
        ...


class _SqlSide:
    """A side that runs the generated SQL over ``relation`` in one engine (see ``_run``)."""

    def __init__(
        self,
        name: str,
        dialect: Dialect,
        relation: str,
        *,
        key: str,
        columns: Sequence[Column],
    ) -> None:
        self.name = name
        self.columns = tuple(columns)
        self._dialect = dialect
        self._relation = relation
        self._key = quote_identifier(key)
        _check_columns(name, self.columns)

    def _run(self, sql: str, *, fresh: bool = False) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def key_bounds(self) -> tuple[int, int] | None:
        rows = self._run(f"SELECT min({self._key}), max({self._key}) FROM {self._relation}", fresh=True)
        lo, hi = rows[0]
        return None if lo is None else (int(lo), int(hi))

    def summarize(self, lo: int, hi: int, buckets: int, *, count_keys: bool = False) -> list[RangeSummary]:
        width, _ = split_range(lo, hi, buckets)
        sql = summary_sql(
            self._dialect, self._relation, self._key, self.columns, lo, hi, width, count_keys=count_keys
        )
        return _summaries(lo, hi, buckets, self._run(sql), count_keys=count_keys)

    def row_hashes(self, lo: int, hi: int) -> list[tuple[int, int]]:
        return self.row_hashes_in([(lo, hi)])

    def row_hashes_in(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        if not ranges:
            return []
        sql = row_hashes_sql(self._dialect, self._relation, self._key, self.columns, ranges)
        return [(int(k), int(h)) for k, h in self._run(sql)]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _check_columns(name: str, columns: tuple[Column, ...]) -> None:
    integers = 1 + sum(c.kind is ColumnKind.INTEGER for c in columns)
    if integers > MAX_INTEGER_COLUMNS:
        raise ConfigError(
            f"reconcile side {name}",
            "columns",
            [c.name for c in columns],
            f"at most {MAX_INTEGER_COLUMNS - 1} integer columns besides the key (the row sum "
            "must fit in 64 bits)",
        )


class SourceSide(_SqlSide):
    """The source: ``query`` on the source database, wrapped as a subquery; the counts and
    hashes run in that database (SQLite or PostgreSQL, by the connection's dialect).

    Every query is one statement, so it reads one consistent snapshot; consecutive queries
    may see newer rows (pass ``key_range`` to ``reconcile()`` on a live source).

    Example::

        side = SourceSide(db)                      # orders, DEFAULT_SOURCE_QUERY
        side.summarize(1, 1000, 4)[0].rows         # rows with order_id in [1, 250]
    """

    def __init__(
        self,
        db: SourceConnection | sqlite3.Connection,
        *,
        query: str = DEFAULT_SOURCE_QUERY,
        key: str = "order_id",
        columns: Sequence[Column] = SOURCE_ORDER_COLUMNS,
        name: str = "source",
    ) -> None:
        db = as_source(db)
        dialect = POSTGRESQL if db.is_postgres else SQLITE
        super().__init__(name, dialect, subquery(query), key=key, columns=columns)
        self._db = db
        self._encoding_checked = not db.is_postgres

    def _run(self, sql: str, *, fresh: bool = False) -> list[tuple[Any, ...]]:
        try:
            if not self._encoding_checked:
                self._check_encoding()
            return self._db.execute(sql).fetchall()
        except SOURCE_ERRORS as exc:
            which = "PostgreSQL" if self._db.is_postgres else "SQLite"
            raise QueryFailed(f"{self.name}: {which} query failed: {exc}") from exc

    def _check_encoding(self) -> None:
        # PostgreSQL's length() and ascii() count characters and give code points only in a
        # UTF8 database, and in LATIN1, whose bytes are the first 256 code points; in any
        # other the hashes of non-ASCII strings would differ from the sink's, every such
        # row a false discrepancy.
        (encoding,) = self._db.execute("SHOW server_encoding").fetchone()
        if str(encoding).upper() not in POSTGRES_HASHABLE_ENCODINGS:
            raise ConfigError(
                f"reconcile side {self.name} ({describe_source(self._db.target)})",
                "server_encoding",
                str(encoding),
                " or ".join(POSTGRES_HASHABLE_ENCODINGS) + ": the row hash needs characters and code points "
                "(make the database with ENCODING 'UTF8' TEMPLATE template0, or initdb -E UTF8)",
            )
        self._encoding_checked = True


SqliteSide = SourceSide
"""The name of :class:`SourceSide` when the source could only be SQLite."""


class EngineSide(_SqlSide):
    """The sink: ``table`` through a :class:`QueryEngine` (DuckDB over Iceberg files).

    The table is resolved through the catalog by :meth:`key_bounds`, which starts every
    reconciliation; later queries reuse that resolution, so one reconciliation reads one
    snapshot even while a sink keeps committing.

    Example::

        side = EngineSide(QueryEngine(catalog), table="dwh.orders")
    """

    def __init__(
        self,
        engine: QueryEngine,
        *,
        table: str = "dwh.orders",
        key: str = "order_id",
        columns: Sequence[Column] = SINK_ORDER_COLUMNS,
        name: str | None = None,
    ) -> None:
        super().__init__(name or table, DUCKDB, quote_table(table), key=key, columns=columns)
        self._engine = engine
        self._table = table
        self._resolved = False

    def _run(self, sql: str, *, fresh: bool = False) -> list[tuple[Any, ...]]:
        # tables=() skips re-resolving: the view made by the last resolution stays.
        tables = (self._table,) if fresh or not self._resolved else ()
        rows = self._engine.rows(sql, tables=tables)
        self._resolved = True
        return rows


class RowQueries(Protocol):
    """A query client with the engines' ``rows`` call: a
    :class:`~datadrill.interfaces.trino_client.TrinoQueryEngine` is one."""

    def rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]: ...


class TrinoSide(_SqlSide):
    """The sink table where it lives: every count and hash runs in Trino, through its client
    protocol (:class:`~datadrill.interfaces.trino_client.TrinoQueryEngine`), and only the
    ``(key, row hash)`` pairs of damaged ranges come back. For a table too big for the
    harness's process (the compose and external stacks).

    Trino reads the table's newest snapshot at each query: pass ``key_range`` to
    ``reconcile()`` on a live table, as for the source.

    Example::

        side = TrinoSide(TrinoQueryEngine.from_url("http://127.0.0.1:8080", timeout_s=300),
                         table="dwh.orders", columns=trino_sink_columns)
    """

    def __init__(
        self,
        queries: RowQueries,
        *,
        table: str = "dwh.orders",
        key: str = "order_id",
        columns: Sequence[Column],
        name: str | None = None,
    ) -> None:
        # ``"dwh"."orders"``: the client's session catalog (iceberg) completes the name.
        super().__init__(name or table, TRINO, quote_table(table), key=key, columns=columns)
        self._queries = queries

    def _run(self, sql: str, *, fresh: bool = False) -> list[tuple[Any, ...]]:
        # tables=(): the statement names the table itself; nothing to qualify.
        return self._queries.rows(sql, tables=())


class DuckDBSide(_SqlSide):
    """A side over any relation in a DuckDB connection this side owns; see
    :class:`ParquetSide` and :class:`ArrowSide`. Close it (or use ``with``) when done."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        relation: str,
        *,
        name: str,
        key: str = "order_id",
        columns: Sequence[Column] = SINK_ORDER_COLUMNS,
    ) -> None:
        super().__init__(name, DUCKDB, relation, key=key, columns=columns)
        self._con = con

    def _run(self, sql: str, *, fresh: bool = False) -> list[tuple[Any, ...]]:
        try:
            rows: list[tuple[Any, ...]] = self._con.execute(sql).fetchall()
        except duckdb.Error as exc:
            raise QueryFailed(f"{self.name}: DuckDB query failed: {exc}") from exc
        return rows

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> DuckDBSide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duckdb_connection(threads: int | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    # Like the QueryEngine: no extension downloads from inside a drill.
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET autoload_known_extensions=false")
    if threads is not None:
        con.execute(f"SET threads={int(threads)}")
    return con


class ParquetSide(DuckDBSide):
    """Parquet files read by DuckDB, e.g. a reserve copy of the sink table.

    Example::

        with ParquetSide(["backup/orders.parquet"]) as reserve:
            reconcile(SqliteSide(db), reserve)
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        name: str = "parquet",
        key: str = "order_id",
        columns: Sequence[Column] = SINK_ORDER_COLUMNS,
        threads: int | None = None,
    ) -> None:
        if not paths:
            raise ConfigError(f"reconcile side {name}", "paths", [], "at least one Parquet file")
        files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
        super().__init__(
            _duckdb_connection(threads), f"read_parquet([{files}])", name=name, key=key, columns=columns
        )


class ArrowSide(DuckDBSide):
    """An in-memory Arrow table read by DuckDB (zero copy).

    Example::

        ArrowSide(pa.Table.from_pylist(rows, schema=ORDERS_ARROW_SCHEMA))
    """

    def __init__(
        self,
        table: pa.Table,
        *,
        name: str = "arrow",
        key: str = "order_id",
        columns: Sequence[Column] = SINK_ORDER_COLUMNS,
        threads: int | None = None,
    ) -> None:
        con = _duckdb_connection(threads)
        con.register("side_rows", table)
        super().__init__(con, "side_rows", name=name, key=key, columns=columns)


__all__ = [
    "POSTGRES_HASHABLE_ENCODINGS",
    "SINK_ORDER_COLUMNS",
    "SOURCE_ORDER_COLUMNS",
    "ArrowSide",
    "DuckDBSide",
    "EngineSide",
    "ParquetSide",
    "RangeSummary",
    "RowQueries",
    "Side",
    "SqliteSide",
    "TrinoSide",
    "split_range",
]
