"""The sides of a :class:`~datadrill.model.slo.Target`'s reconciliation on a stack, and which
engine does the work.

The source side is the target's ``source_query`` on the stack's source database (SQLite or
PostgreSQL; a PostgreSQL boolean column is hashed as the integer 0 or 1).
The sink side is the target's table where the stack keeps it:

- on a stack whose queries go to Trino (compose, external with ``trino_url``), a
  :class:`~datadrill.integrity.sides.TrinoSide`: the per-range counts and hashes run in
  Trino through its client protocol, and only the rows of ranges that differ come back;
- on the embedded stack, an :class:`~datadrill.integrity.sides.EngineSide`: DuckDB in the
  harness's process over the table's files, as before.

Both compute the same row hash (see :mod:`datadrill.integrity.dialects`), so a
reconciliation finds the same keys either way. The compared columns are the key and
``target.columns``, typed from the table: integers and booleans as integers, strings as
strings, dates as days and timestamps with a time zone as microseconds since the epoch.
The source query must return columns of the same names (alias them in the query) holding
the same values: integers for dates and timestamps, in those units. An empty
``target.columns`` compares the reference table's columns, whose source has
``created_at_us`` for the table's ``created_at``.

Example::

    with open_sink(stack) as sink, contextlib.closing(stack.source()) as db:
        source, table = target_sides(Target(table="team.enriched", key_column="id",
                                            columns=("amount", "country"),
                                            source_query="SELECT id, amount, country FROM orders"),
                                     db, sink)
        result = reconcile(source, table, key_range=(0, cutoff))
    sink.where   # "counts and hashes: Trino at http://127.0.0.1:18080"
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from datadrill.errors import ConfigError, QueryFailed
from datadrill.integrity.dialects import (
    DUCKDB,
    TRINO,
    Column,
    Dialect,
    quote_identifier,
    quote_table,
    subquery,
)
from datadrill.integrity.hashing import ColumnKind
from datadrill.integrity.sides import SINK_ORDER_COLUMNS, EngineSide, RowQueries, Side, SourceSide, TrinoSide
from datadrill.model.slo import DEFAULT_SOURCE_QUERY, Target
from datadrill.platform.source_conn import SOURCE_ERRORS, SourceConnection, as_source

if TYPE_CHECKING:
    from datadrill.platform.query import QueryEngine

REFERENCE_TABLE = "dwh.orders"
REFERENCE_COLUMNS = ("customer_id", "amount_cents", "currency", "status", "created_at")
"""What an empty ``Target.columns`` compares: the reference table's business columns."""
REFERENCE_SOURCE_COLUMNS = ("customer_id", "amount_cents", "currency", "status", "created_at_us")
"""The same columns in :data:`~datadrill.model.slo.DEFAULT_SOURCE_QUERY`."""
RECONCILE_QUERY_TIMEOUT_S = 600.0
"""One Trino query of a reconciliation (a full-range summary scans the table) may take this long."""

SUPPORTED_TYPES = "integer (tinyint to bigint), boolean, varchar, date or timestamp with time zone"
_INTEGER_TYPES = frozenset(
    {"tinyint", "smallint", "integer", "int", "bigint", "utinyint", "usmallint", "uinteger"}
)
_TIMESTAMP_TZ = re.compile(r"^timestamp(\(\d+\))? with time zone$")
_VARCHAR = re.compile(r"^varchar(\(\d+\))?$")


def is_reference(target: Target) -> bool:
    """Does ``target`` compare the reference platform's table the way it always has (its
    table, key, columns and source query left at their defaults)?"""
    return (
        target.table == REFERENCE_TABLE
        and target.key_column == "order_id"
        and not target.columns
        and target.source_query == DEFAULT_SOURCE_QUERY
    )


def column_for(name: str, type_name: str, dialect: Dialect, *, table: str) -> Column:
    """The compared :class:`Column` of a table column of Trino or DuckDB type ``type_name``
    (``bigint``, ``VARCHAR``, ``timestamp(6) with time zone``, ...) in ``dialect``.

    Example::

        column_for("created_at", "timestamp(6) with time zone", TRINO, table="dwh.orders")
        # Column("created_at", ColumnKind.INTEGER, "(date_diff('millisecond', ...")
    """
    kind = type_name.strip().lower()
    quoted = quote_identifier(name)
    if kind in _INTEGER_TYPES or kind == "boolean":
        return Column(name, ColumnKind.INTEGER)
    if _VARCHAR.match(kind):
        return Column(name, ColumnKind.TEXT)
    if kind == "date":
        return Column(name, ColumnKind.INTEGER, dialect.date_days(quoted))
    if _TIMESTAMP_TZ.match(kind):
        return Column(name, ColumnKind.INTEGER, dialect.timestamp_us(quoted))
    raise ConfigError(
        "Target",
        f"columns ({name})",
        f"{table}.{name} of type {type_name}",
        f"a column of {SUPPORTED_TYPES} type (the row hash is the same in every engine only for these)",
    )


def compared_names(target: Target) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The compared columns besides the key: (in the table, in the source query)."""
    if not target.columns:
        return REFERENCE_COLUMNS, REFERENCE_SOURCE_COLUMNS
    names = tuple(target.columns)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated or target.key_column in names:
        raise ConfigError(
            "Target",
            "columns",
            list(names),
            f"distinct columns besides the key {target.key_column!r}"
            + (f" (named twice: {', '.join(duplicated)})" if duplicated else ""),
        )
    return names, names


def typed_columns(
    described: Sequence[tuple[str, str]], target: Target, dialect: Dialect, *, table: str
) -> tuple[Column, ...]:
    """The sink's compared columns from the table's ``(column, type)`` list; checks the key."""
    types = {name.lower(): type_name for name, type_name in described}
    wanted, _ = compared_names(target)
    missing = [n for n in (target.key_column, *wanted) if n.lower() not in types]
    if missing:
        raise ConfigError(
            "Target",
            "columns",
            missing,
            f"columns of {table}, which has {', '.join(name for name, _ in described) or 'no columns'}",
        )
    key_type = types[target.key_column.lower()].strip().lower()
    if key_type not in _INTEGER_TYPES:
        raise ConfigError(
            "Target",
            "key_column",
            f"{table}.{target.key_column} of type {types[target.key_column.lower()]}",
            "an integer column (reconciliation bisects key ranges)",
        )
    return tuple(column_for(name, types[name.lower()], dialect, table=table) for name in wanted)


POSTGRES_BOOLEAN_OID = 16
"""``pg_type.oid`` of ``boolean``: a column psycopg2 describes with this type code is one."""


def _check_source(db: SourceConnection, target: Target, names: Sequence[str]) -> frozenset[str]:
    """Checks that the source query returns the key and ``names``; returns the (lower-case)
    names of its boolean columns, which PostgreSQL cannot cast to BIGINT as it hashes."""
    db = as_source(db)
    try:
        cursor = db.execute(f"SELECT * FROM {subquery(target.source_query)} LIMIT 0")
    except SOURCE_ERRORS as exc:
        which = "PostgreSQL" if db.is_postgres else "SQLite"
        raise ConfigError("Target", "source_query", target.source_query, f"a {which} query ({exc})") from None
    found = {d[0].lower() for d in cursor.description or ()}
    missing = [n for n in (target.key_column, *names) if n.lower() not in found]
    if missing:
        raise ConfigError(
            "Target",
            "source_query",
            target.source_query,
            f"a query returning the key and the compared columns by name (missing: {', '.join(missing)}; "
            "alias them in the query)",
        )
    if not db.is_postgres:
        return frozenset()  # SQLite's booleans are integers already
    return frozenset(d[0].lower() for d in cursor.description or () if d[1] == POSTGRES_BOOLEAN_OID)


class SinkEngine:
    """Where the sink table's counts and hashes run: Trino (``trino``, at ``url``) or the
    harness's in-process DuckDB (``local``). Exactly one is set."""

    def __init__(
        self, *, trino: RowQueries | None = None, url: str = "", local: QueryEngine | None = None
    ) -> None:
        if (trino is None) == (local is None):
            raise ValueError("a SinkEngine is Trino or in-process DuckDB, exactly one")
        self.trino = trino
        self.url = url
        self.local = local

    @property
    def engine(self) -> str:
        return "trino" if self.trino is not None else "duckdb"

    @property
    def where(self) -> str:
        """What the report says: which engine did the work."""
        if self.trino is not None:
            return f"counts and hashes: Trino at {self.url}"
        return "counts and hashes: DuckDB in process"

    def rows(self, sql: str, *, table: str) -> list[tuple[Any, ...]]:
        if self.trino is not None:
            return self.trino.rows(sql, tables=())
        assert self.local is not None
        return self.local.rows(sql, tables=(table,))

    def max_key(self, table: str, key: str) -> int:
        (newest,) = self.rows(
            f"SELECT COALESCE(max({quote_identifier(key)}), 0) FROM {quote_table(table)}", table=table
        )[0]
        return int(newest)

    def describe(self, table: str) -> list[tuple[str, str]]:
        """``(column, type name)`` of ``table``, as this engine types it."""
        if self.trino is not None:
            # DESCRIBE: Trino's, and the embedded endpoint's (platform.trino_statements).
            return [
                (str(row[0]), str(row[1]))
                for row in self.trino.rows(f"DESCRIBE {quote_table(table)}", tables=())
            ]
        assert self.local is not None
        columns, _ = self.local.described(f"SELECT * FROM {quote_table(table)} LIMIT 0", tables=(table,))
        return [(name, str(kind)) for name, kind in columns]

    def side(self, target: Target, *, table: str) -> Side:
        """The sink side of ``target`` (its table read as ``table``)."""
        if self.local is not None and not target.columns and target.key_column == "order_id":
            # The reference table, read in process exactly as it always was.
            return EngineSide(self.local, table=table, key=target.key_column, columns=SINK_ORDER_COLUMNS)
        dialect = TRINO if self.trino is not None else DUCKDB
        columns = typed_columns(self.describe(table), target, dialect, table=table)
        if self.trino is not None:
            return TrinoSide(self.trino, table=table, key=target.key_column, columns=columns)
        assert self.local is not None
        return EngineSide(self.local, table=table, key=target.key_column, columns=columns)


class QueryStack(Protocol):
    """What :func:`open_sink` needs of a stack (any :class:`~datadrill.stack.port.Stack`)."""

    def query_engine(self) -> QueryEngine: ...

    def mart_queries(self, *, timeout_s: float = 2.0) -> Any: ...


@contextlib.contextmanager
def open_sink(stack: QueryStack, *, timeout_s: float = RECONCILE_QUERY_TIMEOUT_S) -> Iterator[SinkEngine]:
    """The stack's :class:`SinkEngine`: its Trino when its queries go to Trino (the stack's
    ``mart_queries().dialect``), else a fresh in-process DuckDB engine. Closed on exit."""
    queries = stack.mart_queries(timeout_s=timeout_s)
    if getattr(queries, "dialect", "duckdb") == "trino":
        try:
            yield SinkEngine(trino=queries, url=str(getattr(queries, "url", "")))
        finally:
            queries.close()
        return
    queries.close()
    engine = stack.query_engine()
    try:
        yield SinkEngine(local=engine)
    finally:
        engine.close()


def target_sides(
    target: Target, db: SourceConnection, sink: SinkEngine, *, table: str | None = None
) -> tuple[Side, Side]:
    """(source side, sink side) of ``target``: its source query on ``db`` and its table
    (``table`` overrides ``target.table``, e.g. the stack's own table for the reference)."""
    name = table or target.table
    sink_side = sink.side(target, table=name)
    _, source_names = compared_names(target)
    booleans = _check_source(db, target, source_names)
    source_columns = tuple(
        # A PostgreSQL boolean hashes as the integer 0 or 1, as the sink's booleans do.
        Column(source_name, column.kind, f"CAST({quote_identifier(source_name)} AS INTEGER)")
        if source_name.lower() in booleans
        else Column(source_name, column.kind)
        for source_name, column in zip(source_names, sink_side.columns, strict=True)
    )
    source = SourceSide(db, query=target.source_query, key=target.key_column, columns=source_columns)
    return source, sink_side


def source_max_key(db: SourceConnection, target: Target) -> int:
    """The source's newest key: what a reconciliation covers once the sink has caught up."""
    sql = (
        f"SELECT COALESCE(MAX({quote_identifier(target.key_column)}), 0) FROM {subquery(target.source_query)}"
    )
    try:
        (newest,) = db.execute(sql).fetchone()
    except SOURCE_ERRORS as exc:
        raise QueryFailed(f"source: query failed: {exc}") from exc
    return int(newest)


def probe_sink(
    mart_queries: Callable[[float], Any],
    query_engine: Callable[[], QueryEngine],
    *,
    timeout_s: float = RECONCILE_QUERY_TIMEOUT_S,
) -> SinkEngine:
    """The :class:`SinkEngine` of a probe (``ProbeEnv.mart_queries`` and ``.query_engine``):
    the stack's Trino, or the runner's shared in-process engine (which the caller owns)."""
    queries = mart_queries(timeout_s)
    if getattr(queries, "dialect", "duckdb") == "trino":
        return SinkEngine(trino=queries, url=str(getattr(queries, "url", "")))
    queries.close()
    return SinkEngine(local=query_engine())


__all__ = [
    "RECONCILE_QUERY_TIMEOUT_S",
    "REFERENCE_COLUMNS",
    "REFERENCE_SOURCE_COLUMNS",
    "SUPPORTED_TYPES",
    "QueryStack",
    "SinkEngine",
    "column_for",
    "compared_names",
    "is_reference",
    "open_sink",
    "probe_sink",
    "source_max_key",
    "target_sides",
    "typed_columns",
]
