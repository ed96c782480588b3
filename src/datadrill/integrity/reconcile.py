"""Reconcile a source against a sink by key ranges and hash bisection, in the engines.

Neither table is pulled into Python. Each side summarises key ranges in its own engine
(SQLite for the source, DuckDB for the sink), one GROUP BY query per range: per
equal-width sub-range ``(key - lo) // width``, ``count(*)`` and a checksum, the sum of a
per-row hash that both engines compute identically (``count(DISTINCT key)`` on request).
Sub-ranges whose summaries agree are done. One that differs is split again, until it
holds at most ``leaf_rows`` rows on either side; only then are the ``(key, row hash)``
pairs of that range fetched from both sides and diffed in Python. The fan-out is at least
``buckets`` and grows with the rows in the range (up to 65,536), so that a damaged
sub-range is usually small enough to fetch at the next step: a handful of damaged keys in
ten million rows costs one full scan per side plus one narrow query per damaged key.

Each key ends up in exactly one finding:

- **duplicate**: in the source, and the sink holds it more often than the source;
- **omission**: in the source, not in the sink;
- **discrepancy**: in both, once each, with different values;
- **unexpected**: in the sink, not in the source.

The row hash
------------
The hash uses only 64-bit integer operations that SQLite and DuckDB evaluate identically
(``&``, ``>>``, ``*``, ``+``, truncating ``%``, ``length``, ``unicode``, ``substr``), and
no intermediate value can overflow: SQLite would silently turn an overflowing integer
into a REAL and DuckDB would raise. With ``P = 3037000493``, the largest prime whose
square fits in a signed 64-bit integer:

- an integer ``x`` contributes ``(x & 0x7FFFFFFF)·a + (x >> 31)·b``, its low and high
  digits in base 2^31 (``NULL`` contributes the out-of-range digits ``2^31, 0``). Low
  digits stay below ``P``, so values that differ by a multiple of ``P`` still hash apart
  (``x mod P`` would not); only values at least ``P·2^31 ≈ 6.5·10^18`` apart can collide
  by construction;
- a string ``s`` contributes ``t(s) = (Σ (cp(s, i) + 2)·cᵢ + (len(s) + 2)·d) mod P`` over
  the first 16 and the last 8 code points, where ``cp`` is the code point or -1 past the
  end, and ``len(NULL) = -1``;
- ``L = (Σ contributions) mod P`` (truncated, as both engines compute ``%``) and the row
  hash is ``(L·L mod P) + L``: squaring keeps sums over rows from cancelling when values
  move between rows, as they would for a hash linear in the values.

Coefficients are fixed (a splitmix64 stream), distinct per column and position. A sum of
row hashes stays below ``2·P`` per row, so int64 holds it for 1.5 billion rows. Two
different rows collide with probability about ``2/P``; strings that differ only past
their first 16 and last 8 characters, at the same length, are not told apart; SQLite's
``length()`` stops at a NUL character.

In wide ranges strings are hashed once per distinct value (a ``SELECT DISTINCT`` joined
back), not once per row: dimension-like columns (currency, status) have few values, and
per-row ``unicode(substr(...))`` calls would dominate the scan. Narrow ranges hash them per
row, which plans faster; both give the same numbers.

Example::

    with sqlite3.connect("source.db") as db:
        result = reconcile(SqliteSide(db), EngineSide(QueryEngine(catalog)), key_range=(0, cutoff))
    print(result.describe())
    # source 1,000 rows, sink 1,001 rows, keys 1..1000: 1 duplicated, 0 missing, 0 differing, ...
"""

from __future__ import annotations

import enum
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from datadrill.engine.clock import Clock, MonotonicClock
from datadrill.errors import ConfigError, QueryFailed
from datadrill.model.slo import DEFAULT_SOURCE_QUERY
from datadrill.platform.query import QueryEngine

MODULUS = 3037000493
"""The largest prime ``P`` with ``P * P < 2**63``: ``L * L`` never overflows for ``|L| < P``."""

PREFIX_CHARS = 16
SUFFIX_CHARS = 8
MAX_FANOUT = 65_536
"""The most sub-ranges one summary query returns."""
MAX_RANGES_PER_FETCH = 64
"""The most leaf ranges one ``row_hashes_in`` query covers (an OR of that many ranges)."""
MAX_INTEGER_COLUMNS = 20
"""Each integer column adds at most ``1.5 * 2**58`` to the row sum; 20 of them (key included)
plus the string terms stay below ``2**63``."""

_DIGIT_BITS = 31  # 2^31 < P: a low digit is never reduced away by the final mod P
_LOW_MASK = (1 << _DIGIT_BITS) - 1
_NULL_LOW_DIGIT = 1 << _DIGIT_BITS  # outside [0, 2^31): a NULL integer differs from every value
_COEFFICIENT_SEED = 0x6461746164726C6C  # "datadrll"


class ColumnKind(enum.Enum):
    """How a compared column is hashed."""

    INTEGER = "integer"
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    """A compared column: its name in messages, its kind, and the SQL expression that yields
    it on one side (default: the quoted name).

    Example::

        Column("created_at_us", ColumnKind.INTEGER, "epoch_us(created_at)")   # a DuckDB sink
    """

    name: str
    kind: ColumnKind
    expr: str | None = None

    @property
    def sql(self) -> str:
        return self.expr if self.expr is not None else _quote_identifier(self.name)


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


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_table(identifier: str) -> str:
    return ".".join(_quote_identifier(part) for part in identifier.split("."))


def _coefficients(count: int) -> list[int]:
    """``count`` fixed pseudo-random coefficients in ``[2^25, 2^26)`` (splitmix64)."""
    out = []
    state = _COEFFICIENT_SEED
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        out.append((1 << 25) + (z & ((1 << 25) - 1)))
    return out


def _tmod(value: int, modulus: int) -> int:
    """``value % modulus`` as SQL engines compute it: truncated, with the dividend's sign."""
    remainder = abs(value) % modulus
    return remainder if value >= 0 else -remainder


# --------------------------------------------------------------------------------------
# The row hash: one plan, rendered as SQL for each engine and mirrored in Python


@dataclass(frozen=True)
class _Dialect:
    name: str
    intdiv: str

    def integer(self, expr: str) -> str:
        # DuckDB literals and unicode() are INT32 and overflow checks are per type: widen
        # first. SQLite integers are always 64-bit and its bit operators coerce.
        return f"CAST({expr} AS BIGINT)" if self.name == "duckdb" else f"({expr})"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)" if self.name == "duckdb" else f"({expr})"


SQLITE = _Dialect("sqlite", "/")
DUCKDB = _Dialect("duckdb", "//")


@dataclass(frozen=True)
class _HashPlan:
    """Which coefficient multiplies which term, fixed by the column kinds alone, so that
    two sides with the same kinds hash alike whatever their expressions."""

    kinds: tuple[ColumnKind, ...]
    integer_coefficients: tuple[tuple[int, int], ...] = field(init=False)
    text_coefficients: tuple[tuple[int, ...], ...] = field(init=False)

    def __post_init__(self) -> None:
        per_text = 1 + PREFIX_CHARS + SUFFIX_CHARS
        ints = 1 + sum(kind is ColumnKind.INTEGER for kind in self.kinds)
        texts = sum(kind is ColumnKind.TEXT for kind in self.kinds)
        stream = iter(_coefficients(2 * ints + per_text * texts))
        integer = [(next(stream), next(stream)) for _ in range(ints)]
        text = [tuple(next(stream) for _ in range(per_text)) for _ in range(texts)]
        object.__setattr__(self, "integer_coefficients", tuple(integer))
        object.__setattr__(self, "text_coefficients", tuple(text))

    # -- SQL ---------------------------------------------------------------------------

    def integer_terms(self, exprs: Sequence[str]) -> str:
        """The summed contributions of the key and the integer columns (already BIGINT)."""
        terms = []
        for expr, (a, b) in zip(exprs, self.integer_coefficients, strict=True):
            terms.append(f"coalesce({expr} & {_LOW_MASK}, {_NULL_LOW_DIGIT}) * {a}")
            terms.append(f"coalesce({expr} >> {_DIGIT_BITS}, 0) * {b}")
        return " + ".join(terms)

    def text_value(self, dialect: _Dialect, index: int, expr: str) -> str:
        """``t(s)`` of the ``index``-th string column, as SQL over ``expr``."""
        length_coefficient, *chars = self.text_coefficients[index]
        length = f"(coalesce(length({expr}), -1) + 2) * {length_coefficient}"
        prefix, suffix = chars[:PREFIX_CHARS], chars[PREFIX_CHARS:]
        if dialect is DUCKDB:
            # The same sum as a lambda over the coefficients: DuckDB's planner spends
            # ~15 ms per query on the 24 unrolled terms, more than a narrow range scan.
            def chars_sum(coefficients: list[int], sign: str) -> str:
                return (
                    f"list_sum(list_transform({coefficients}::BIGINT[], lambda c, i: "
                    f"(coalesce(CAST(unicode(substr({expr}, {sign}i, 1)) AS BIGINT), -1) + 2) * c))"
                )

            total = f"{length} + {chars_sum(prefix, '')} + {chars_sum(suffix, '-')}"
            return f"CAST(({total}) % {MODULUS} AS BIGINT)"
        positions = [*range(1, PREFIX_CHARS + 1), *range(-1, -SUFFIX_CHARS - 1, -1)]
        terms = [length]
        for position, coefficient in zip(positions, chars, strict=True):
            # SQLite's unicode('') is NULL where DuckDB's is -1: coalesce both to -1.
            terms.append(f"(coalesce(unicode(substr({expr}, {position}, 1)), -1) + 2) * {coefficient}")
        return "(" + " + ".join(terms) + f") % {MODULUS}"

    # -- Python mirror (for tests and documentation) -------------------------------------

    def text_value_py(self, index: int, value: str | None) -> int:
        length_coefficient, *chars = self.text_coefficients[index]
        positions = [*range(1, PREFIX_CHARS + 1), *range(-1, -SUFFIX_CHARS - 1, -1)]
        total = ((len(value) if value is not None else -1) + 2) * length_coefficient
        for position, coefficient in zip(positions, chars, strict=True):
            codepoint = -1
            if value is not None and position <= len(value) and -position <= len(value):
                codepoint = ord(value[position - 1 if position > 0 else position])
            total += (codepoint + 2) * coefficient
        return total % MODULUS

    def row_hash_py(self, key: int | None, values: Sequence[int | str | None]) -> int:
        if len(values) != len(self.kinds):
            raise ValueError(f"expected {len(self.kinds)} values, got {len(values)}: {values!r}")
        integers: list[int | None] = [key]
        total = 0
        text_index = 0
        for kind, value in zip(self.kinds, values, strict=True):
            if kind is ColumnKind.INTEGER:
                if value is not None and not isinstance(value, int):
                    raise TypeError(f"expected an int or None but got {value!r}")
                integers.append(value)
            elif kind is ColumnKind.TEXT:
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"expected a str or None but got {value!r}")
                total += self.text_value_py(text_index, value)
                text_index += 1
            else:
                raise AssertionError(f"unhandled column kind {kind!r}")
        for value, (a, b) in zip(integers, self.integer_coefficients, strict=True):
            low, high = (_NULL_LOW_DIGIT, 0) if value is None else (value & _LOW_MASK, value >> _DIGIT_BITS)
            total += low * a + high * b
        reduced = _tmod(total, MODULUS)
        return _tmod(reduced * reduced, MODULUS) + reduced


def row_hash(kinds: Sequence[ColumnKind], key: int | None, values: Sequence[int | str | None]) -> int:
    """The row hash in Python, exactly as both engines compute it (for tests and debugging).

    Example::

        row_hash([c.kind for c in SOURCE_ORDER_COLUMNS], 1, [7, 1250, "EUR", "paid", 1_700_000_000_000_000])
    """
    return _plan(tuple(kinds)).row_hash_py(key, values)


_PLANS: dict[tuple[ColumnKind, ...], _HashPlan] = {}


def _plan(kinds: tuple[ColumnKind, ...]) -> _HashPlan:
    plan = _PLANS.get(kinds)
    if plan is None:
        plan = _PLANS[kinds] = _HashPlan(kinds)
    return plan


DICTIONARY_MIN_SPAN = 50_000
"""Ranges spanning more keys hash their strings once per distinct value; narrower ones
(sub-ranges, row fetches) hash them per row, which DuckDB plans in a third of the time."""


def _hashed_rows_sql(
    dialect: _Dialect,
    relation: str,
    key: str,
    columns: Sequence[Column],
    ranges: Sequence[tuple[int, int]],
    *,
    dictionary: bool,
) -> str:
    """A SELECT of ``k`` (the key) and ``l`` (the reduced row sum ``L``) for keys in any of
    the inclusive ``ranges`` (both engines push an OR of ranges down to their indexes or
    row-group statistics).

    With ``dictionary``, each string column's ``t(s)`` is computed once per distinct value
    and joined back: ``base`` is then referenced once per string column and once for the
    rows, and NOT MATERIALIZED keeps either engine from copying the range into a temp table.
    """
    plan = _plan(tuple(c.kind for c in columns))
    select = [f"{dialect.integer(key)} AS k"]
    integers, texts = ["base.k"], []
    for index, column in enumerate(columns):
        alias = f"c{index}"
        if column.kind is ColumnKind.INTEGER:
            select.append(f"{dialect.integer(column.sql)} AS {alias}")
            integers.append(f"base.{alias}")
        elif column.kind is ColumnKind.TEXT:
            select.append(f"{dialect.text(column.sql)} AS {alias}")
            texts.append(alias)
        else:
            raise AssertionError(f"unhandled column kind {column.kind!r}")
    where = " OR ".join(f"{key} BETWEEN ({int(lo)}) AND ({int(hi)})" for lo, hi in ranges)
    ctes = [f"base AS NOT MATERIALIZED (SELECT {', '.join(select)} FROM {relation} WHERE {where})"]
    joins, sums = [], [plan.integer_terms(integers)]
    for text_index, alias in enumerate(texts):
        if not dictionary:
            sums.append(plan.text_value(dialect, text_index, f"base.{alias}"))
            continue
        value = plan.text_value(dialect, text_index, "s")
        ctes.append(
            # MATERIALIZED: computed once per distinct value, not inlined into the join.
            f"d{alias} AS MATERIALIZED (SELECT s AS {alias}, {value} AS v "
            f"FROM (SELECT DISTINCT {alias} AS s FROM base WHERE {alias} IS NOT NULL) AS u)"
        )
        joins.append(f"LEFT JOIN d{alias} ON d{alias}.{alias} = base.{alias}")
        # NULL never joins: its value is a constant, computed by the Python mirror.
        sums.append(f"coalesce(d{alias}.v, {plan.text_value_py(text_index, None)})")
    # LIMIT -1 keeps SQLite from flattening this subquery into the aggregate above it,
    # which would evaluate the row expression once per reference to ``l``.
    limit = " LIMIT -1" if dialect is SQLITE else ""
    return (
        f"WITH {', '.join(ctes)} SELECT base.k AS k, ({' + '.join(sums)}) % {MODULUS} AS l "
        f"FROM base {' '.join(joins)}{limit}"
    )


def _row_hash_of(l_expr: str) -> str:
    return f"({l_expr}) * ({l_expr}) % {MODULUS} + ({l_expr})"


def summary_sql(
    dialect: _Dialect,
    relation: str,
    key: str,
    columns: Sequence[Column],
    lo: int,
    hi: int,
    width: int,
    *,
    count_keys: bool = False,
) -> str:
    """One query: per bucket ``(k - lo) // width`` of [lo, hi], rows, distinct keys, checksum."""
    dictionary = hi - lo + 1 > DICTIONARY_MIN_SPAN
    inner = _hashed_rows_sql(dialect, relation, key, columns, [(lo, hi)], dictionary=dictionary)
    keys = "count(DISTINCT k)" if count_keys else "NULL"
    return (
        f"SELECT (k - ({int(lo)})) {dialect.intdiv} {int(width)} AS b, count(*), {keys}, "
        f"sum({_row_hash_of('l')}) FROM ({inner}) AS h GROUP BY b"
    )


def row_hashes_sql(
    dialect: _Dialect, relation: str, key: str, columns: Sequence[Column], ranges: Sequence[tuple[int, int]]
) -> str:
    """One query: ``(key, row hash)`` of every row with a key in one of ``ranges``."""
    inner = _hashed_rows_sql(dialect, relation, key, columns, ranges, dictionary=False)
    return f"SELECT k, {_row_hash_of('l')} FROM ({inner}) AS h"


# --------------------------------------------------------------------------------------
# Range summaries and sides


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
    :func:`row_hash` does for its ``columns``' kinds.
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
        dialect: _Dialect,
        relation: str,
        *,
        key: str,
        columns: Sequence[Column],
    ) -> None:
        self.name = name
        self.columns = tuple(columns)
        self._dialect = dialect
        self._relation = relation
        self._key = _quote_identifier(key)
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


class SqliteSide(_SqlSide):
    """The source: ``query`` on a SQLite connection, wrapped as a subquery.

    Every query is one statement, so it reads one consistent snapshot; consecutive queries
    may see newer rows (pass ``key_range`` to :func:`reconcile` on a live source).

    Example::

        side = SqliteSide(db)                      # orders, DEFAULT_SOURCE_QUERY
        side.summarize(1, 1000, 4)[0].rows         # rows with order_id in [1, 250]
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        query: str = DEFAULT_SOURCE_QUERY,
        key: str = "order_id",
        columns: Sequence[Column] = SOURCE_ORDER_COLUMNS,
        name: str = "source",
    ) -> None:
        # A trailing semicolon is harmless on its own and a syntax error inside a subquery.
        wrapped = f"({query.strip().rstrip(';')}) AS src"
        super().__init__(name, SQLITE, wrapped, key=key, columns=columns)
        self._db = db

    def _run(self, sql: str, *, fresh: bool = False) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise QueryFailed(f"{self.name}: SQLite query failed: {exc}") from exc


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
        super().__init__(name or table, DUCKDB, _quote_table(table), key=key, columns=columns)
        self._engine = engine
        self._table = table
        self._resolved = False

    def _run(self, sql: str, *, fresh: bool = False) -> list[tuple[Any, ...]]:
        # tables=() skips re-resolving: the view made by the last resolution stays.
        tables = (self._table,) if fresh or not self._resolved else ()
        rows = self._engine.rows(sql, tables=tables)
        self._resolved = True
        return rows


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


# --------------------------------------------------------------------------------------
# Reconciliation


@dataclass(frozen=True)
class ReconcileResult:
    """What a reconciliation found. ``compared_rows`` counts the rows covered on both sides
    (source rows + sink rows in the compared key range), each of which was hashed once."""

    compared_rows: int
    source_rows: int
    sink_rows: int
    duplicates: tuple[int, ...]
    omissions: tuple[int, ...]
    discrepancies: tuple[int, ...]
    unexpected: tuple[int, ...]
    elapsed_s: float
    queries: int
    ranges_examined: int
    key_range: tuple[int, int] | None = None
    rows_fetched: int = 0
    """(key, hash) pairs brought into Python, both sides together."""

    @property
    def rows_per_s(self) -> float:
        return self.compared_rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def affected(self) -> int:
        """Keys with any finding (each key is counted in exactly one finding)."""
        return len(self.duplicates) + len(self.omissions) + len(self.discrepancies) + len(self.unexpected)

    @property
    def exact(self) -> bool:
        return self.affected == 0

    def describe(self) -> str:
        keys = f"keys {self.key_range[0]}..{self.key_range[1]}" if self.key_range else "no keys"
        findings = (
            f"{len(self.duplicates):,} duplicated, {len(self.omissions):,} missing, "
            f"{len(self.discrepancies):,} differing, {len(self.unexpected):,} not in source"
        )
        examples = "; ".join(
            f"{label} e.g. {', '.join(map(str, found[:5]))}"
            for label, found in (
                ("duplicated", self.duplicates),
                ("missing", self.omissions),
                ("differing", self.discrepancies),
                ("not in source", self.unexpected),
            )
            if found
        )
        return (
            f"source {self.source_rows:,} rows, sink {self.sink_rows:,} rows, {keys}: {findings}"
            + (f" ({examples})" if examples else "")
            + f"; {self.compared_rows:,} rows compared in {self.elapsed_s:.2f} s "
            f"({self.rows_per_s:,.0f} rows/s), {self.queries} queries, {self.ranges_examined} ranges"
        )


@dataclass
class _Findings:
    duplicates: set[int] = field(default_factory=set)
    omissions: set[int] = field(default_factory=set)
    discrepancies: set[int] = field(default_factory=set)
    unexpected: set[int] = field(default_factory=set)

    def diff(self, source: Sequence[tuple[int, int]], sink: Sequence[tuple[int, int]]) -> None:
        source_hashes: defaultdict[int, Counter[int]] = defaultdict(Counter)
        sink_hashes: defaultdict[int, Counter[int]] = defaultdict(Counter)
        for key, h in source:
            source_hashes[key][h] += 1
        for key, h in sink:
            sink_hashes[key][h] += 1
        for key, hashes in source_hashes.items():
            found = sink_hashes.get(key)
            if found is None:
                self.omissions.add(key)
            elif found.total() > hashes.total():
                self.duplicates.add(key)
            elif found != hashes:
                self.discrepancies.add(key)
        self.unexpected.update(key for key in sink_hashes if key not in source_hashes)


def _compared_range(
    source: tuple[int, int] | None, sink: tuple[int, int] | None, key_range: tuple[int, int] | None
) -> tuple[int, int] | None:
    bounds = [b for b in (source, sink) if b is not None]
    if not bounds:
        return None
    lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
    if key_range is not None:
        lo, hi = max(lo, key_range[0]), min(hi, key_range[1])
    return (lo, hi) if lo <= hi else None


def reconcile(
    source: Side,
    sink: Side,
    *,
    key_range: tuple[int, int] | None = None,
    buckets: int = 64,
    leaf_rows: int = 2000,
    clock: Clock | None = None,
) -> ReconcileResult:
    """Compare ``source`` and ``sink`` by key; see the module docstring for how.

    ``key_range`` (inclusive) restricts the comparison, e.g. to keys at or below a cutoff
    while newer rows are still in flight. A range is fetched row by row once it holds at
    most ``leaf_rows`` rows on each side, or nothing on one side (then every key in it is a
    finding and must be listed anyway), or a single key.

    Example::

        result = reconcile(SqliteSide(db), EngineSide(engine), key_range=(0, cutoff))
        assert result.exact, result.describe()
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 2:
        raise ConfigError("reconcile", "buckets", buckets, "an integer ≥ 2")
    if isinstance(leaf_rows, bool) or not isinstance(leaf_rows, int) or leaf_rows < 1:
        raise ConfigError("reconcile", "leaf_rows", leaf_rows, "an integer ≥ 1")
    if key_range is not None and (len(key_range) != 2 or key_range[0] > key_range[1]):
        raise ConfigError("reconcile", "key_range", key_range, "(lo, hi) with lo ≤ hi, both inclusive")
    source_kinds = [c.kind for c in source.columns]
    sink_kinds = [c.kind for c in sink.columns]
    if source_kinds != sink_kinds:
        raise ConfigError(
            "reconcile",
            "columns",
            {source.name: [c.name for c in source.columns], sink.name: [c.name for c in sink.columns]},
            "the same number of columns with the same kinds, in the same order, on both sides "
            f"({source.name}: {[k.value for k in source_kinds]}, {sink.name}: {[k.value for k in sink_kinds]})",
        )
    clock = clock or MonotonicClock()
    started = clock.monotonic()
    queries = 2
    compared = _compared_range(source.key_bounds(), sink.key_bounds(), key_range)
    if compared is None:
        return ReconcileResult(0, 0, 0, (), (), (), (), clock.monotonic() - started, queries, 0, None)
    lo, hi = compared
    if hi - lo >= 2**62:
        # (key - lo) must not overflow in either engine.
        raise ConfigError("reconcile", "key_range", (lo, hi), "a span of keys below 2**62; pass key_range")

    findings = _Findings()
    ranges_examined = rows_fetched = 0

    def summarize(range_lo: int, range_hi: int, rows: int) -> list[tuple[RangeSummary, RangeSummary]]:
        nonlocal queries
        # Enough sub-ranges that a damaged one is small enough to fetch at the next level:
        # one more narrow query per damaged key beats another level of bisection.
        fanout = max(buckets, min(MAX_FANOUT, -(-2 * rows // leaf_rows)))
        pair = source.summarize(range_lo, range_hi, fanout), sink.summarize(range_lo, range_hi, fanout)
        queries += 2
        ours, theirs = pair
        if [(s.lo, s.hi) for s in ours] != [(s.lo, s.hi) for s in theirs]:
            raise QueryFailed(
                f"{source.name} and {sink.name} split [{range_lo}, {range_hi}] differently; "
                "a Side must split with split_range()"
            )
        return list(zip(ours, theirs, strict=True))

    def fetch(side: Side, leaves: Sequence[RangeSummary]) -> list[tuple[int, int]]:
        nonlocal queries, rows_fetched
        ranges = [(leaf.lo, leaf.hi) for leaf in leaves if leaf.rows]
        rows: list[tuple[int, int]] = []
        for start in range(0, len(ranges), MAX_RANGES_PER_FETCH):
            queries += 1
            rows.extend(side.row_hashes_in(ranges[start : start + MAX_RANGES_PER_FETCH]))
        rows_fetched += len(rows)
        return rows

    top = summarize(lo, hi, hi - lo + 1)  # the key span bounds the rows of a keyed table
    source_rows = sum(s.rows for s, _ in top)
    sink_rows = sum(t.rows for _, t in top)
    level = top
    while level:
        deeper: list[tuple[RangeSummary, RangeSummary]] = []
        leaves: list[tuple[RangeSummary, RangeSummary]] = []
        for ours, theirs in level:
            ranges_examined += 1
            if ours.agrees_with(theirs):
                continue
            small = max(ours.rows, theirs.rows) <= leaf_rows
            if small or ours.rows == 0 or theirs.rows == 0 or ours.lo == ours.hi:
                leaves.append((ours, theirs))
            else:
                deeper.extend(summarize(ours.lo, ours.hi, max(ours.rows, theirs.rows)))
        if leaves:
            # Leaf ranges are disjoint, so one diff over all of them finds the same keys.
            findings.diff(fetch(source, [o for o, _ in leaves]), fetch(sink, [t for _, t in leaves]))
        level = deeper
    return ReconcileResult(
        compared_rows=source_rows + sink_rows,
        source_rows=source_rows,
        sink_rows=sink_rows,
        duplicates=tuple(sorted(findings.duplicates)),
        omissions=tuple(sorted(findings.omissions)),
        discrepancies=tuple(sorted(findings.discrepancies)),
        unexpected=tuple(sorted(findings.unexpected)),
        elapsed_s=clock.monotonic() - started,
        queries=queries,
        ranges_examined=ranges_examined,
        key_range=(lo, hi),
        rows_fetched=rows_fetched,
    )


__all__ = [
    "DUCKDB",
    "MODULUS",
    "SINK_ORDER_COLUMNS",
    "SOURCE_ORDER_COLUMNS",
    "SQLITE",
    "ArrowSide",
    "Column",
    "ColumnKind",
    "DuckDBSide",
    "EngineSide",
    "ParquetSide",
    "RangeSummary",
    "ReconcileResult",
    "Side",
    "SqliteSide",
    "reconcile",
    "row_hash",
    "split_range",
]
