"""The SQL of a reconciliation, per engine: SQLite (the source), DuckDB (the sink in the
harness's process) and Trino (the sink where it lives, on the compose and external stacks).

A :class:`Dialect` spells the row hash of :mod:`datadrill.integrity.hashing` in its
engine's SQL; :func:`summary_sql` and :func:`row_hashes_sql` build the only two queries a
side runs over its relation besides ``min``/``max`` of the key. :class:`Column` names a
compared column and the SQL expression that yields it on one side.

In wide ranges strings are hashed once per distinct value (a ``SELECT DISTINCT`` joined
back), not once per row: dimension-like columns (currency, status) have few values, and
per-row ``unicode(substr(...))`` calls would dominate the scan. Narrow ranges hash them per
row, which plans faster; both give the same numbers.

Example::

    columns = [Column("amount_cents", ColumnKind.INTEGER), Column("status", ColumnKind.TEXT)]
    summary_sql(SQLITE, "orders", '"order_id"', columns, 1, 1000, 250)
    # SELECT (k - (1)) / 250 AS b, count(*), NULL, sum(...) FROM (WITH base AS ...) AS h GROUP BY b
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from datadrill.integrity.hashing import (
    CHAR_POSITIONS,
    DIGIT_BITS,
    LOW_MASK,
    MODULUS,
    NULL_LOW_DIGIT,
    PREFIX_CHARS,
    ColumnKind,
    HashPlan,
    hash_plan,
)

DICTIONARY_MIN_SPAN = 50_000
"""In DuckDB, summaries of ranges spanning more keys hash their strings once per distinct
value; narrower ones hash them per row, which DuckDB plans in a third of the time. SQLite
and PostgreSQL hash strings once per distinct value in every summary (``Dialect.
dictionary_min_span``): per row, SQLite took 683 ms for 42,000 rows, once per value 50 ms."""


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_table(identifier: str) -> str:
    """``dwh.orders`` → ``"dwh"."orders"``."""
    return ".".join(quote_identifier(part) for part in identifier.split("."))


def subquery(query: str, alias: str = "src") -> str:
    """``query`` as a relation to select from, e.g. the source query of a SQLite side."""
    # A trailing semicolon is harmless on its own and a syntax error inside a subquery.
    return f"({query.strip().rstrip(';')}) AS {alias}"


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
        return self.expr if self.expr is not None else quote_identifier(self.name)


class Dialect:
    """How one engine spells the row hash; :data:`SQLITE` and :data:`DUCKDB` are the two."""

    name: str
    intdiv: str
    """The integer division operator."""
    no_flatten: str = ""
    """Appended to the hashed-rows subquery to keep the engine from inlining it."""
    materialize_hints: bool = True
    """Whether the engine reads ``WITH x AS [NOT] MATERIALIZED`` (Trino does not: its
    hashed rows are a plain subquery, and strings are hashed per row)."""
    group_by_bucket: str = "b"
    """How ``GROUP BY`` names the bucket column (Trino cannot group by an output alias)."""
    dictionary_min_span: int = 0
    """Summaries of ranges spanning more keys hash strings once per distinct value (with
    ``materialize_hints``); see :data:`DICTIONARY_MIN_SPAN`."""

    def bucket(self, offset: str, width: int) -> str:
        """The bucket index ``offset // width`` of a non-negative BIGINT ``offset``."""
        return f"{offset} {self.intdiv} {int(width)}"

    def low_digit(self, expr: str) -> str:
        """``expr & (2^31 - 1)``: the low base-2^31 digit of a BIGINT."""
        return f"{expr} & {LOW_MASK}"

    def high_digit(self, expr: str) -> str:
        """``expr >> 31`` (arithmetic): the high base-2^31 digit of a BIGINT."""
        return f"{expr} >> {DIGIT_BITS}"

    def timestamp_us(self, expr: str) -> str:
        """Microseconds since the epoch of a ``timestamp with time zone``."""
        return f"epoch_us({expr})"

    def date_days(self, expr: str) -> str:
        """Days since 1970-01-01 of a ``date`` (the same text in DuckDB and Trino)."""
        return f"date_diff('day', DATE '1970-01-01', {expr})"

    def integer(self, expr: str) -> str:
        """``expr`` as a 64-bit integer."""
        raise NotImplementedError

    def text(self, expr: str) -> str:
        """``expr`` as a string."""
        raise NotImplementedError

    def text_value(self, plan: HashPlan, index: int, expr: str) -> str:
        """``t(s)`` of the ``index``-th string column, as SQL over ``expr``."""
        raise NotImplementedError

    @staticmethod
    def _length_term(expr: str, coefficient: int) -> str:
        return f"(coalesce(length({expr}), -1) + 2) * {coefficient}"

    def __repr__(self) -> str:
        return f"<Dialect {self.name}>"


class SqliteDialect(Dialect):
    name = "sqlite"
    intdiv = "/"
    # LIMIT -1 keeps SQLite from flattening this subquery into the aggregate above it,
    # which would evaluate the row expression once per reference to ``l``.
    no_flatten = " LIMIT -1"

    def integer(self, expr: str) -> str:
        # SQLite integers are always 64-bit and its bit operators coerce.
        return f"({expr})"

    def text(self, expr: str) -> str:
        return f"({expr})"

    def text_value(self, plan: HashPlan, index: int, expr: str) -> str:
        length_coefficient, *chars = plan.text_coefficients[index]

        def value(codepoint: str) -> str:
            terms = [self._length_term(expr, length_coefficient)]
            for position, coefficient in zip(CHAR_POSITIONS, chars, strict=True):
                char = f"substr({expr}, {position}, 1)"
                terms.append(f"({codepoint.format(char=char)} + 2) * {coefficient}")
            return "(" + " + ".join(terms) + f") % {MODULUS}"

        # SQLite's unicode('') is NULL where DuckDB's is -1: coalesce both to -1.
        plain = "coalesce(unicode({char}), -1)"
        # SQLite's UTF-8 decoder reads the noncharacters U+FFFE and U+FFFF as U+FFFD
        # (sqlite3Utf8Read): a string holding one (found by its UTF-8 bytes) takes each
        # character's bytes to tell them apart; every other string the plain way.
        exact = "CASE hex({char}) WHEN 'EFBFBE' THEN 65534 WHEN 'EFBFBF' THEN 65535 ELSE " + plain + " END"
        utf8 = f"CAST({expr} AS BLOB)"
        return (
            f"(CASE WHEN instr({utf8}, X'EFBFBE') + instr({utf8}, X'EFBFBF') > 0 "
            f"THEN {value(exact)} ELSE {value(plain)} END)"
        )


class DuckDBDialect(Dialect):
    name = "duckdb"
    intdiv = "//"
    dictionary_min_span = DICTIONARY_MIN_SPAN

    def integer(self, expr: str) -> str:
        # DuckDB literals and unicode() are INT32 and overflow checks are per type: widen first.
        return f"CAST({expr} AS BIGINT)"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def text_value(self, plan: HashPlan, index: int, expr: str) -> str:
        length_coefficient, *chars = plan.text_coefficients[index]
        prefix, suffix = chars[:PREFIX_CHARS], chars[PREFIX_CHARS:]

        # The same sum as the SQLite one, as a lambda over the coefficients: DuckDB's
        # planner spends ~15 ms per query on the 24 unrolled terms, more than a narrow
        # range scan.
        def chars_sum(coefficients: list[int], sign: str) -> str:
            return (
                f"list_sum(list_transform({coefficients}::BIGINT[], lambda c, i: "
                f"(coalesce(CAST(unicode(substr({expr}, {sign}i, 1)) AS BIGINT), -1) + 2) * c))"
            )

        length = self._length_term(expr, length_coefficient)
        total = f"{length} + {chars_sum(prefix, '')} + {chars_sum(suffix, '-')}"
        return f"CAST(({total}) % {MODULUS} AS BIGINT)"


class TrinoDialect(Dialect):
    """The row hash in Trino's SQL, for the sink table where it lives (compose, external).

    Trino has no ``&``, ``>>`` or ``//``: the digits use ``bitwise_and`` and
    ``bitwise_right_shift_arithmetic``, the bucket index divides an exact multiple (its
    ``/`` on BIGINTs is integer division already). ``codepoint`` takes one character and
    fails on an empty string, so every position is guarded by the string's length (the
    ``-1`` past the end that SQLite and DuckDB give). Every term is cast to BIGINT before it
    is multiplied: Trino's INTEGER arithmetic fails on overflow.

    The embedded stack's Trino-protocol endpoint runs DuckDB; it defines the few Trino
    functions used here as DuckDB macros (``platform.trino_statements``), so the very text
    sent to a real Trino is what the embedded endpoint runs in tests: on DuckDB the bucket's
    ``/`` gives a DOUBLE, exact because the dividend is a multiple of the width and the
    quotient is small (at most ``MAX_FANOUT``), and the CAST rounds it back to that integer.
    """

    name = "trino"
    intdiv = "/"
    materialize_hints = False
    group_by_bucket = "1"

    def bucket(self, offset: str, width: int) -> str:
        w = int(width)
        return f"CAST(({offset} - {offset} % {w}) / {w} AS BIGINT)"

    def low_digit(self, expr: str) -> str:
        return f"bitwise_and({expr}, {LOW_MASK})"

    def high_digit(self, expr: str) -> str:
        return f"bitwise_right_shift_arithmetic({expr}, {DIGIT_BITS})"

    def integer(self, expr: str) -> str:
        return f"CAST({expr} AS BIGINT)"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def timestamp_us(self, expr: str) -> str:
        # Trino 464 has no microsecond epoch function (to_unixtime_nanos came later) and
        # date_diff stops at milliseconds. The whole milliseconds are exact (date_diff
        # counts epoch milliseconds, floored); the microseconds within the millisecond come
        # from two to_unixtime doubles of the same millisecond, whose difference is exact
        # to 0.12 µs before 2038 and 0.48 µs before 2242, so round() gives the integer.
        return (
            f"(date_diff('millisecond', from_unixtime(0), {expr}) * 1000 + "
            f"CAST(round((to_unixtime({expr}) - to_unixtime(date_trunc('millisecond', {expr}))) * 1000000) "
            "AS BIGINT))"
        )

    def text_value(self, plan: HashPlan, index: int, expr: str) -> str:
        length_coefficient, *chars = plan.text_coefficients[index]
        terms = [self._length_term(expr, length_coefficient)]
        for position, coefficient in zip(CHAR_POSITIONS, chars, strict=True):
            char = f"CAST(substr({expr}, {position}, 1) AS VARCHAR(1))"
            terms.append(
                f"(CASE WHEN length({expr}) >= {abs(position)} THEN CAST(codepoint({char}) AS BIGINT) "
                f"ELSE -1 END + 2) * {coefficient}"
            )
        return "(" + " + ".join(terms) + f") % {MODULUS}"


class PostgresDialect(Dialect):
    """The row hash in PostgreSQL, for a source that lives there: counts and hashes run in
    the server, as they run in SQLite for a SQLite source.

    ``substr`` does not count from the end for a negative start, so the suffix characters
    come from ``right()``; ``ascii`` is the code point of the first character in a UTF-8
    database and 0 for an empty string, so every position is guarded by the length (the
    ``-1`` past the end). ``length`` and ``ascii`` are 32-bit: each term is widened before
    it is multiplied.
    """

    name = "postgresql"
    intdiv = "/"

    def integer(self, expr: str) -> str:
        return f"CAST({expr} AS BIGINT)"

    def text(self, expr: str) -> str:
        return f"CAST({expr} AS TEXT)"

    def timestamp_us(self, expr: str) -> str:
        return f"CAST(round(extract(epoch FROM {expr}) * 1000000) AS BIGINT)"

    def date_days(self, expr: str) -> str:
        return f"({expr} - DATE '1970-01-01')"

    @staticmethod
    def _length_term(expr: str, coefficient: int) -> str:
        return f"(coalesce(CAST(length({expr}) AS BIGINT), -1) + 2) * {coefficient}"

    def text_value(self, plan: HashPlan, index: int, expr: str) -> str:
        length_coefficient, *chars = plan.text_coefficients[index]
        terms = [self._length_term(expr, length_coefficient)]
        for position, coefficient in zip(CHAR_POSITIONS, chars, strict=True):
            char = f"substr({expr}, {position}, 1)" if position > 0 else f"left(right({expr}, {-position}), 1)"
            terms.append(
                f"(CASE WHEN length({expr}) >= {abs(position)} THEN CAST(ascii({char}) AS BIGINT) "
                f"ELSE -1 END + 2) * {coefficient}"
            )
        return "(" + " + ".join(terms) + f") % {MODULUS}"


SQLITE: Dialect = SqliteDialect()
DUCKDB: Dialect = DuckDBDialect()
TRINO: Dialect = TrinoDialect()
POSTGRESQL: Dialect = PostgresDialect()
"""PostgreSQL's SQL, for a source database there (``[source] uri``)."""
"""Trino's SQL; also what the embedded stack's Trino-protocol endpoint runs (see TrinoDialect)."""


def _integer_terms(dialect: Dialect, plan: HashPlan, exprs: Sequence[str]) -> str:
    """The summed contributions of the key and the integer columns (already BIGINT)."""
    terms = []
    for expr, (a, b) in zip(exprs, plan.integer_coefficients, strict=True):
        terms.append(f"coalesce({dialect.low_digit(expr)}, {NULL_LOW_DIGIT}) * {a}")
        terms.append(f"coalesce({dialect.high_digit(expr)}, 0) * {b}")
    return " + ".join(terms)


def _hashed_rows_sql(
    dialect: Dialect,
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
    plan = hash_plan(tuple(c.kind for c in columns))
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
    rows = f"SELECT {', '.join(select)} FROM {relation} WHERE {where}"
    if not dialect.materialize_hints:
        # One plain subquery, strings hashed per row: the engine plans and distributes it.
        sums = [_integer_terms(dialect, plan, integers)]
        sums += [dialect.text_value(plan, i, f"base.{alias}") for i, alias in enumerate(texts)]
        return f"SELECT base.k AS k, ({' + '.join(sums)}) % {MODULUS} AS l FROM ({rows}) AS base"
    ctes = [f"base AS NOT MATERIALIZED ({rows})"]
    joins, sums = [], [_integer_terms(dialect, plan, integers)]
    for text_index, alias in enumerate(texts):
        if not dictionary:
            sums.append(dialect.text_value(plan, text_index, f"base.{alias}"))
            continue
        value = dialect.text_value(plan, text_index, "s")
        ctes.append(
            # MATERIALIZED: computed once per distinct value, not inlined into the join.
            f"d{alias} AS MATERIALIZED (SELECT s AS {alias}, {value} AS v "
            f"FROM (SELECT DISTINCT {alias} AS s FROM base WHERE {alias} IS NOT NULL) AS u)"
        )
        joins.append(f"LEFT JOIN d{alias} ON d{alias}.{alias} = base.{alias}")
        # NULL never joins: its value is a constant, computed by the Python mirror.
        sums.append(f"coalesce(d{alias}.v, {plan.text_value_py(text_index, None)})")
    return (
        f"WITH {', '.join(ctes)} SELECT base.k AS k, ({' + '.join(sums)}) % {MODULUS} AS l "
        f"FROM base {' '.join(joins)}{dialect.no_flatten}"
    )


def _row_hash_of(l_expr: str) -> str:
    return f"({l_expr}) * ({l_expr}) % {MODULUS} + ({l_expr})"


def summary_sql(
    dialect: Dialect,
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
    dictionary = hi - lo + 1 > dialect.dictionary_min_span
    inner = _hashed_rows_sql(dialect, relation, key, columns, [(lo, hi)], dictionary=dictionary)
    keys = "count(DISTINCT k)" if count_keys else "NULL"
    return (
        f"SELECT {dialect.bucket(f'(k - ({int(lo)}))', width)} AS b, count(*), {keys}, "
        f"sum({_row_hash_of('l')}) FROM ({inner}) AS h GROUP BY {dialect.group_by_bucket}"
    )


def row_hashes_sql(
    dialect: Dialect, relation: str, key: str, columns: Sequence[Column], ranges: Sequence[tuple[int, int]]
) -> str:
    """One query: ``(key, row hash)`` of every row with a key in one of ``ranges``."""
    inner = _hashed_rows_sql(dialect, relation, key, columns, ranges, dictionary=False)
    return f"SELECT k, {_row_hash_of('l')} FROM ({inner}) AS h"


__all__ = [
    "DICTIONARY_MIN_SPAN",
    "DUCKDB",
    "POSTGRESQL",
    "SQLITE",
    "TRINO",
    "Column",
    "Dialect",
    "DuckDBDialect",
    "SqliteDialect",
    "TrinoDialect",
    "quote_identifier",
    "quote_table",
    "row_hashes_sql",
    "subquery",
    "summary_sql",
]
