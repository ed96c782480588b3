"""Reconciliation where the data lives: the Trino dialect of the row hash, the sink side that
sends it (TrinoSide), the columns a Target names and how they are typed, and what the
Reconcile step refuses.

The Trino SQL runs here on DuckDB with the Trino functions the embedded Trino endpoint
defines (``TRINO_FUNCTION_MACROS``): the very text a real Trino gets, checked against the
Python mirror of the hash, DuckDB's own dialect and SQLite.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from datadrill.errors import ConfigError
from datadrill.integrity.dialects import DUCKDB, SQLITE, TRINO, Column, row_hashes_sql, summary_sql
from datadrill.integrity.hashing import ColumnKind, row_hash
from datadrill.integrity.reconcile import ArrowSide, TrinoSide, reconcile
from datadrill.integrity.sides import split_range
from datadrill.integrity.targets import (
    REFERENCE_COLUMNS,
    SinkEngine,
    column_for,
    compared_names,
    is_reference,
    target_sides,
    typed_columns,
)
from datadrill.model.recovery import Reconcile
from datadrill.model.slo import Target
from datadrill.platform.trino_statements import TRINO_FUNCTION_MACROS


class DuckDBAsTrino:
    """A :class:`~datadrill.integrity.sides.RowQueries` that runs the statements it gets on
    DuckDB with the embedded endpoint's Trino functions, as that endpoint does."""

    def __init__(self) -> None:
        self.con = duckdb.connect(":memory:")
        for macro in TRINO_FUNCTION_MACROS:
            self.con.execute(f"CREATE TEMP MACRO {macro}")
        self.statements: list[str] = []

    def rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        self.statements.append(sql)
        if sql.startswith("DESCRIBE "):
            described = self.con.execute(f"SELECT * FROM {sql.removeprefix('DESCRIBE ')} LIMIT 0").description
            return [(name, str(kind).lower(), "", "") for name, kind, *_ in described or ()]
        rows: list[tuple[Any, ...]] = self.con.execute(sql, list(params)).fetchall()
        return rows


@pytest.fixture
def trino() -> Iterator[DuckDBAsTrino]:
    queries = DuckDBAsTrino()
    yield queries
    queries.con.close()


# --- the SQL Trino gets ---------------------------------------------------------------------

TYPED = (
    Column("amount", ColumnKind.INTEGER),
    Column("country", ColumnKind.TEXT),
    Column("shipped_at", ColumnKind.INTEGER, TRINO.timestamp_us('"shipped_at"')),
)


def test_trino_sql_uses_only_what_trino_has() -> None:
    summary = summary_sql(TRINO, '"team"."enriched"', '"id"', TYPED, 1, 1_000_000, 250)
    hashes = row_hashes_sql(TRINO, '"team"."enriched"', '"id"', TYPED, [(1, 10), (20, 30)])
    for sql in (summary, hashes):
        # Trino has no bit operators, no //, no MATERIALIZED hints, no lambdas of DuckDB's.
        assert not re.search(r"&|>>|//|MATERIALIZED|list_transform|lambda|epoch_us|unicode\(", sql), sql
        assert "bitwise_and(" in sql and "bitwise_right_shift_arithmetic(" in sql
        assert "codepoint(CAST(substr(" in sql and "CASE WHEN length(" in sql
        assert "WITH " not in sql  # a plain subquery: Trino inlines WITH anyway
    # Trino cannot group by an output alias; the bucket divides an exact multiple.
    assert summary.endswith("GROUP BY 1")
    assert "CAST(((k - (1)) - (k - (1)) % 250) / 250 AS BIGINT) AS b" in summary
    assert 'WHERE "id" BETWEEN (1) AND (10) OR "id" BETWEEN (20) AND (30)' in hashes
    # Wide ranges do not switch Trino to the per-distinct-value plan DuckDB uses.
    assert summary == summary_sql(TRINO, '"team"."enriched"', '"id"', TYPED, 1, 1_000_000, 250)


def test_the_other_dialects_sql_is_unchanged_by_the_trino_one() -> None:
    duck = summary_sql(DUCKDB, "t", '"k"', TYPED[:2], 1, 100, 10)
    lite = summary_sql(SQLITE, "t", '"k"', TYPED[:2], 1, 100, 10)
    assert "(k - (1)) // 10 AS b" in duck and duck.endswith("GROUP BY b")
    assert "(k - (1)) / 10 AS b" in lite and "LIMIT -1" in lite
    assert "&" in duck and ">>" in duck and "NOT MATERIALIZED" in duck


def test_the_trino_bucket_is_exact_on_duckdb_for_huge_offsets(trino: DuckDBAsTrino) -> None:
    """On the embedded endpoint the bucket's / is a DOUBLE division: exact, because the
    dividend is a multiple of the width and the quotient is small."""
    lo, hi = -(2**61), 2**61
    width, ranges = split_range(lo, hi, 65_536)
    keys = [lo, lo + width - 1, lo + width, 0, hi - 1, hi, *(r_lo for r_lo, _ in ranges[1::997])]
    for key in keys:
        (bucket,) = (
            trino.con.execute(f"SELECT {TRINO.bucket(f'(CAST({key} AS BIGINT) - ({lo}))', width)}").fetchone()
            or ()
        )
        assert bucket == (key - lo) // width, key


INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30),
    st.sampled_from(["", "EUR", "é", "e\u0301", "👨‍👩‍👧", "x" * 100]),
)
ROW = st.tuples(st.one_of(st.none(), INT64), st.one_of(st.none(), TEXT))
GENERIC = (Column("v0", ColumnKind.INTEGER), Column("v1", ColumnKind.TEXT))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.dictionaries(st.integers(-(2**60), 2**60), ROW, min_size=1, max_size=10))
def test_trino_row_hash_equals_python_duckdb_and_sqlite(
    trino: DuckDBAsTrino, rows: dict[int, tuple[Any, ...]]
) -> None:
    arrow = pa.table(
        {
            "k": pa.array(list(rows), pa.int64()),
            "v0": pa.array([v[0] for v in rows.values()], pa.int64()),
            "v1": pa.array([v[1] for v in rows.values()], pa.string()),
        }
    )
    trino.con.register("t", arrow)
    lo, hi = min(rows), max(rows)
    via_trino = sorted(trino.con.execute(row_hashes_sql(TRINO, "t", '"k"', GENERIC, [(lo, hi)])).fetchall())
    via_duckdb = sorted(trino.con.execute(row_hashes_sql(DUCKDB, "t", '"k"', GENERIC, [(lo, hi)])).fetchall())
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v0 INTEGER, v1 TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?, ?)", [(k, *v) for k, v in rows.items()])
    via_sqlite = sorted(db.execute(row_hashes_sql(SQLITE, "t", '"k"', GENERIC, [(lo, hi)])).fetchall())
    expected = sorted((k, row_hash([c.kind for c in GENERIC], k, list(v))) for k, v in rows.items())
    assert via_trino == via_duckdb == via_sqlite == expected
    summaries = [
        sorted(
            trino.con.execute(
                summary_sql(d, "t", '"k"', GENERIC, lo, hi, max(1, (hi - lo) // 3 + 1))
            ).fetchall()
        )
        for d in (TRINO, DUCKDB)
    ]
    assert summaries[0] == summaries[1]
    trino.con.unregister("t")


def test_trino_timestamps_and_dates_are_exact_integers(trino: DuckDBAsTrino) -> None:
    trino.con.execute("CREATE TABLE ts (t TIMESTAMPTZ, d DATE)")
    values = [
        "2026-01-02 03:04:05.123456+00",
        "1969-12-31 23:59:59.999501+00",  # before the epoch: whole milliseconds floor
        "2100-06-30 23:59:59.999999+00",
        "1970-01-01 00:00:00.000001+00",
    ]
    trino.con.executemany(
        "INSERT INTO ts VALUES (CAST(? AS TIMESTAMPTZ), CAST(? AS TIMESTAMPTZ)::DATE)",
        [(v, v) for v in values],
    )
    got = trino.con.execute(
        f"SELECT epoch_us(t), {TRINO.timestamp_us('t')}, date_diff('day', DATE '1970-01-01', d), {TRINO.date_days('d')} FROM ts"
    ).fetchall()
    for exact, via_trino, days, via_trino_days in got:
        assert via_trino == exact and via_trino_days == days


# --- the columns a Target names -------------------------------------------------------------


def test_columns_are_typed_from_the_table_in_each_dialect() -> None:
    assert column_for("n", "INTEGER", DUCKDB, table="t.x") == Column("n", ColumnKind.INTEGER)
    assert column_for("flag", "boolean", TRINO, table="t.x").kind is ColumnKind.INTEGER
    assert column_for("s", "varchar(12)", TRINO, table="t.x") == Column("s", ColumnKind.TEXT)
    assert column_for("at", "timestamp(6) with time zone", TRINO, table="t.x").expr == TRINO.timestamp_us(
        '"at"'
    )
    assert column_for("at", "TIMESTAMP WITH TIME ZONE", DUCKDB, table="t.x").expr == 'epoch_us("at")'
    assert column_for("d", "date", TRINO, table="t.x").expr == "date_diff('day', DATE '1970-01-01', \"d\")"
    with pytest.raises(
        ConfigError, match=r"columns \(price\) = 't.x.price of type double' is invalid: a column of integer"
    ):
        column_for("price", "double", TRINO, table="t.x")


def test_a_target_names_columns_the_table_and_source_must_have() -> None:
    described = [("id", "bigint"), ("amount", "integer"), ("country", "varchar")]
    target = Target(table="team.enriched", key_column="id", columns=("amount", "country"))
    assert [c.name for c in typed_columns(described, target, TRINO, table="team.enriched")] == [
        "amount",
        "country",
    ]
    with pytest.raises(
        ConfigError, match=r"\['vat'\].*columns of team.enriched, which has id, amount, country"
    ):
        typed_columns(
            described,
            Target(table="team.enriched", key_column="id", columns=("vat",)),
            TRINO,
            table="team.enriched",
        )
    with pytest.raises(
        ConfigError, match=r"key_column = 'team.enriched.country of type varchar'.*an integer column"
    ):
        typed_columns(
            described, Target(key_column="country", columns=("amount",)), TRINO, table="team.enriched"
        )
    with pytest.raises(ConfigError, match="distinct columns besides the key 'id'"):
        compared_names(Target(key_column="id", columns=("id", "amount")))
    assert compared_names(Target()) == (REFERENCE_COLUMNS, (*REFERENCE_COLUMNS[:-1], "created_at_us"))
    assert is_reference(Target()) and not is_reference(Target(columns=("amount_cents",)))


def test_reconcile_repairs_only_the_reference_table() -> None:
    assert Reconcile().repair and Reconcile().describe() == "reconcile source against sink and repair"
    user = Target(table="team.enriched", key_column="id", columns=("amount",))
    assert Reconcile(repair=False, target=user).describe() == "reconcile team.enriched against its source"
    with pytest.raises(ValidationError, match=r"cannot repair team\.enriched; set repair=False"):
        Reconcile(target=user)
    with pytest.raises(ValidationError, match="pattern"):
        Target(columns=("amount; DROP TABLE x",))


# --- TrinoSide against the source, through the Trino SQL ----------------------------------


def _source_and_trino(trino: DuckDBAsTrino) -> tuple[sqlite3.Connection, Target]:
    rows = [
        (k, k * 7 % 1000, ["DE", "FR", "ÉS"][k % 3], 1_767_000_000_000_000 + k * 1_001)
        for k in range(1, 3001)
    ]
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE sales (id INTEGER PRIMARY KEY, amount INTEGER, country TEXT, shipped_us INTEGER)"
    )
    db.executemany("INSERT INTO sales VALUES (?, ?, ?, ?)", rows)
    sink = {k: (a, c, s) for k, a, c, s in rows}
    del sink[17], sink[2999]  # missing
    sink[300] = (sink[300][0], "PL", sink[300][2])  # a changed column
    sink[1500] = (sink[1500][0], sink[1500][1], sink[1500][2] + 1)  # one microsecond off
    sink[4000] = (1, "XX", 0)  # not in the source
    keys = [*sink, 2500]  # 2500 twice: a duplicate
    arrow = pa.table(
        {
            "id": pa.array(keys, pa.int64()),
            "amount": pa.array([sink[k][0] for k in keys], pa.int32()),
            "country": pa.array([sink[k][1] for k in keys], pa.string()),
            "shipped_at": pa.array([sink[k][2] for k in keys], pa.timestamp("us", tz="UTC")),
        }
    )
    trino.con.register("sink_rows", arrow)
    trino.con.execute("CREATE SCHEMA team; CREATE TABLE team.enriched AS SELECT * FROM sink_rows")
    target = Target(
        table="team.enriched",
        key_column="id",
        columns=("amount", "country", "shipped_at"),
        source_query="SELECT id, amount, country, shipped_us AS shipped_at FROM sales",
    )
    return db, target


def test_trino_side_finds_what_an_in_process_side_finds(trino: DuckDBAsTrino) -> None:
    db, target = _source_and_trino(trino)
    source, table = target_sides(target, db, SinkEngine(trino=trino, url="http://127.0.0.1:8080"))
    assert isinstance(table, TrinoSide)
    result = reconcile(source, table, leaf_rows=50)
    assert (result.omissions, result.discrepancies, result.duplicates, result.unexpected) == (
        (17, 2999),
        (300, 1500),
        (2500,),
        (4000,),
    )
    # Only the damaged ranges' pairs crossed into Python, not the 3,000-row table.
    assert result.rows_fetched < 1000, result.describe()
    assert all(s.startswith(("DESCRIBE", "SELECT")) for s in trino.statements)
    # The same table read by DuckDB in this process, with DuckDB's own dialect.
    arrow = trino.con.sql("SELECT * FROM team.enriched").to_arrow_table()
    described = [
        ("id", "BIGINT"),
        ("amount", "INTEGER"),
        ("country", "VARCHAR"),
        ("shipped_at", "TIMESTAMP WITH TIME ZONE"),
    ]
    local_columns = typed_columns(described, target, DUCKDB, table=target.table)
    with ArrowSide(arrow, key="id", columns=local_columns) as local:
        again = reconcile(source, local, leaf_rows=50)
    assert (again.omissions, again.discrepancies, again.duplicates, again.unexpected) == (
        result.omissions,
        result.discrepancies,
        result.duplicates,
        result.unexpected,
    )


def test_a_source_query_without_the_named_columns_is_one_clear_error(trino: DuckDBAsTrino) -> None:
    db, target = _source_and_trino(trino)
    from dataclasses import replace

    bad = replace(target, source_query="SELECT id, amount, country FROM sales")
    with pytest.raises(
        ConfigError, match=r"source_query = .* \(missing: shipped_at; alias them in the query\)"
    ):
        target_sides(bad, db, SinkEngine(trino=trino, url="http://127.0.0.1:8080"))


def test_the_result_says_which_engine_did_the_work(trino: DuckDBAsTrino) -> None:
    assert (
        SinkEngine(trino=trino, url="http://127.0.0.1:8080").where
        == "counts and hashes: Trino at http://127.0.0.1:8080"
    )
    db, target = _source_and_trino(trino)
    source, table = target_sides(target, db, SinkEngine(trino=trino, url="http://h:1"))
    result = reconcile(source, table)
    from dataclasses import replace

    assert (
        replace(result, engine="counts and hashes: Trino at http://h:1")
        .describe()
        .endswith("; counts and hashes: Trino at http://h:1")
    )
    assert "counts and hashes" not in result.describe()
    with pytest.raises(ValueError, match="exactly one"):
        SinkEngine()
