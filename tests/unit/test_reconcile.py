"""Reconciliation by key ranges and hash bisection, and repair, on real engines and files.

SQLite holds the source, a pyiceberg SQL catalog in tmp_path holds the sink, DuckDB reads
it through the QueryEngine. No processes, no sockets.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from datadrill.clock import FakeClock
from datadrill.errors import ConfigError
from datadrill.integrity.dialects import DICTIONARY_MIN_SPAN, Column
from datadrill.integrity.hashing import ColumnKind, row_hash
from datadrill.integrity.reconcile import reconcile
from datadrill.integrity.repair import RepairFailed, repair
from datadrill.integrity.result import ReconcileResult
from datadrill.integrity.sides import (
    SOURCE_ORDER_COLUMNS,
    ArrowSide,
    EngineSide,
    RangeSummary,
    Side,
    SqliteSide,
    split_range,
)
from datadrill.platform.catalog import ORDERS_ARROW_SCHEMA, ensure_orders_table, open_catalog
from datadrill.platform.query import QueryEngine
from datadrill.platform.source_db import SCHEMA

TABLE = "dwh.orders"
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY")
STATUSES = ("created", "paid", "shipped", "cancelled", "refunded")
T0 = 1_700_000_000_000_000

Order = tuple[int, int, int, str, str, int]  # order_id, customer_id, amount_cents, currency, status, µs


def make_orders(keys: Sequence[int], seed: int = 7) -> list[Order]:
    rnd = random.Random(seed)
    return [
        (
            k,
            rnd.randrange(1, 100_000),
            rnd.randrange(-5_000, 1_000_000),
            rnd.choice(CURRENCIES),
            rnd.choice(STATUSES),
            T0 + k * 1_000 + rnd.randrange(1_000),
        )
        for k in keys
    ]


def source_db(orders: Sequence[Order]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, 0)", orders)
    db.commit()
    return db


def sink_arrow(orders: Sequence[Order]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in ORDERS_ARROW_SCHEMA.names}
    for order_id, customer_id, amount, currency, status, created_us in orders:
        row = (order_id, customer_id, amount, currency, status, created_us, False, None, None, None, None)
        for name, value in zip(ORDERS_ARROW_SCHEMA.names, row, strict=True):
            columns[name].append(value)
    return pa.Table.from_arrays(
        [pa.array(columns[f.name], type=f.type) for f in ORDERS_ARROW_SCHEMA], schema=ORDERS_ARROW_SCHEMA
    )


@dataclass
class Damage:
    """Problems injected into a sink copy of the source, and the keys each must be found at."""

    duplicates: set[int] = field(default_factory=set)
    omissions: set[int] = field(default_factory=set)
    discrepancies: dict[int, int] = field(default_factory=dict)  # key -> which column changes
    unexpected: set[int] = field(default_factory=set)

    def apply(self, orders: Sequence[Order]) -> list[Order]:
        out: list[Order] = []
        for order in orders:
            key = order[0]
            if key in self.omissions:
                continue
            if key in self.discrepancies:
                order = changed(order, self.discrepancies[key])
            out.append(order)
            if key in self.duplicates:
                out.append(order)
        out.extend(make_orders(sorted(self.unexpected), seed=99))
        return out

    def assert_found(self, result: ReconcileResult) -> None:
        assert result.duplicates == tuple(sorted(self.duplicates)), result.describe()
        assert result.omissions == tuple(sorted(self.omissions)), result.describe()
        assert result.discrepancies == tuple(sorted(self.discrepancies)), result.describe()
        assert result.unexpected == tuple(sorted(self.unexpected)), result.describe()


def changed(order: Order, column: int) -> Order:
    """``order`` with one business column changed (column 0..4: customer, amount, currency,
    status, created_at)."""
    order_id, customer_id, amount, currency, status, created_us = order
    if column == 0:
        customer_id += 1
    elif column == 1:
        amount -= 1
    elif column == 2:
        currency = currency.lower()
    elif column == 3:
        status = status + "!"
    elif column == 4:
        created_us += 1
    else:
        raise ValueError(f"no column {column}")
    return (order_id, customer_id, amount, currency, status, created_us)


@pytest.fixture
def catalog(tmp_path: Path) -> SqlCatalog:
    catalog = open_catalog(f"sqlite:///{tmp_path}/catalog.db", tmp_path / "warehouse")
    ensure_orders_table(catalog, TABLE)
    return catalog


@pytest.fixture
def engine(catalog: SqlCatalog) -> Iterator[QueryEngine]:
    engine = QueryEngine(catalog)
    yield engine
    engine.close()


def append(catalog: SqlCatalog, orders: Sequence[Order]) -> None:
    catalog.load_table(TABLE).append(sink_arrow(orders))


class CountingSide:
    """Wraps a side and counts what crosses into Python (a real object, not a mock)."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.name = side.name
        self.columns = side.columns
        self.calls: list[str] = []
        self.rows_fetched = 0

    def key_bounds(self) -> tuple[int, int] | None:
        self.calls.append("key_bounds")
        return self.side.key_bounds()

    def summarize(self, lo: int, hi: int, buckets: int, *, count_keys: bool = False) -> list[RangeSummary]:
        self.calls.append("summarize")
        return self.side.summarize(lo, hi, buckets, count_keys=count_keys)

    def row_hashes(self, lo: int, hi: int) -> list[tuple[int, int]]:
        return self.row_hashes_in([(lo, hi)])

    def row_hashes_in(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        self.calls.append("row_hashes")
        rows = self.side.row_hashes_in(ranges)
        self.rows_fetched += len(rows)
        return rows


# --- the row hash: identical in SQLite, DuckDB and Python --------------------------------

KINDS = (ColumnKind.INTEGER, ColumnKind.TEXT, ColumnKind.INTEGER, ColumnKind.TEXT)
GENERIC_COLUMNS = tuple(Column(f"v{i}", kind) for i, kind in enumerate(KINDS))
INT64 = st.integers(-(2**63), 2**63 - 1)
# Everything SQLite can store as TEXT: no surrogates; no NUL, where SQLite's length() stops.
TEXT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40),
    # U+FFFE and U+FFFF: SQLite's unicode() reads them as U+FFFD (the dialect corrects it).
    st.sampled_from(["", "EUR", "é", "e\u0301", "👨‍👩‍👧", "x" * 100, "\ufffe", "a\uffffb\ufffd"]),
)
GENERIC_ROW = st.tuples(st.one_of(st.none(), INT64), st.one_of(st.none(), TEXT), INT64, TEXT)


def generic_sides(rows: dict[int, tuple[Any, ...]]) -> tuple[SqliteSide, ArrowSide]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v0 INTEGER, v1 TEXT, v2 INTEGER, v3 TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [(k, *v) for k, v in rows.items()])
    arrow = pa.table(
        {
            "k": pa.array(list(rows), pa.int64()),
            "v0": pa.array([v[0] for v in rows.values()], pa.int64()),
            "v1": pa.array([v[1] for v in rows.values()], pa.string()),
            "v2": pa.array([v[2] for v in rows.values()], pa.int64()),
            "v3": pa.array([v[3] for v in rows.values()], pa.string()),
        }
    )
    source = SqliteSide(db, query="SELECT * FROM t", key="k", columns=GENERIC_COLUMNS)
    return source, ArrowSide(arrow, key="k", columns=GENERIC_COLUMNS)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.integers(-(2**60), 2**60), GENERIC_ROW, min_size=1, max_size=12))
# Found by Hypothesis on PostgreSQL's test: SQLite read U+FFFE as U+FFFD.
@example({0: (None, None, 0, "\ufffe")})
@example({1: (None, "\uffff" * 30, 0, "é" * 20 + "\ufffe"), 2: (1, "\ufffd", -1, "\uffff\ufffe")})
def test_row_hash_is_identical_in_sqlite_duckdb_and_python(rows: dict[int, tuple[Any, ...]]) -> None:
    """The crux: both engines and the Python mirror compute the same hash for every row,
    int64 extremes, NULLs, empty strings and any Unicode (but NUL) included, and neither
    engine overflows (DuckDB would raise, SQLite would silently switch to REAL)."""
    sqlite_side, duckdb_side = generic_sides(rows)
    lo, hi = min(rows), max(rows)
    expected = sorted((k, row_hash(KINDS, k, v)) for k, v in rows.items())
    assert sorted(duckdb_side.row_hashes(lo, hi)) == expected
    assert sorted(sqlite_side.row_hashes(lo, hi)) == expected
    # Row fetches hash strings per row; wide summaries once per distinct value, joined
    # back. Either way a checksum is the sum of its rows' hashes.
    # (SQLite hashes strings once per distinct value in narrow summaries too, DuckDB per row.)
    for side in (sqlite_side, duckdb_side):
        for start in (lo - DICTIONARY_MIN_SPAN, lo):
            summaries = side.summarize(start, hi, 2)
            assert sum(s.checksum for s in summaries) == sum(h for _, h in expected), side
            assert sum(s.rows for s in summaries) == len(rows)
    duckdb_side.close()


def test_row_hash_of_null_and_empty_string_differ() -> None:
    kinds = (ColumnKind.TEXT,)
    assert len({row_hash(kinds, 1, [None]), row_hash(kinds, 1, [""]), row_hash(kinds, 1, ["a"])}) == 3
    assert row_hash((ColumnKind.INTEGER,), 1, [None]) != row_hash((ColumnKind.INTEGER,), 1, [0])


def test_row_hash_tells_apart_values_a_modulus_apart() -> None:
    # Exact digits, not x mod P: values P apart (P ≈ 3.04e9, e.g. microseconds) differ.
    kinds = (ColumnKind.INTEGER,)
    assert row_hash(kinds, 1, [5]) != row_hash(kinds, 1, [5 + 3_037_000_493])


def test_split_range_covers_the_range_with_equal_widths() -> None:
    assert split_range(1, 10, 4) == (3, [(1, 3), (4, 6), (7, 9), (10, 10)])
    assert split_range(5, 5, 64) == (1, [(5, 5)])
    _, ranges = split_range(-7, 1_000, 64)
    assert ranges[0][0] == -7 and ranges[-1][1] == 1_000 and len(ranges) <= 64
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))


# --- reconcile: SQLite source against the Iceberg sink through DuckDB ---------------------


def test_reconcile_finds_exactly_the_injected_keys(catalog: SqlCatalog, engine: QueryEngine) -> None:
    orders = make_orders(range(1, 3_001))
    damage = Damage(
        duplicates={5, 1_500, 3_000},
        omissions={1, 777, 2_222},
        discrepancies={10: 1, 11: 2, 12: 3, 13: 4, 2_999: 0},
        unexpected={5_000, 6_000},
    )
    append(catalog, damage.apply(orders))
    db = source_db(orders)
    for buckets, leaf_rows in ((64, 2_000), (4, 10), (2, 1)):
        result = reconcile(SqliteSide(db), EngineSide(engine), buckets=buckets, leaf_rows=leaf_rows)
        damage.assert_found(result)
        assert result.source_rows == 3_000
        assert result.sink_rows == 3_000 - 3 + 3 + 2
        assert result.compared_rows == result.source_rows + result.sink_rows
        assert result.affected == 13 and not result.exact
    assert "3 duplicated, 3 missing, 5 differing, 2 not in source" in result.describe()


def test_identical_tables_are_exact_without_bisection(catalog: SqlCatalog, engine: QueryEngine) -> None:
    orders = make_orders(range(1, 5_001))
    append(catalog, orders[:2_500])
    append(catalog, orders[2_500:])  # two data files, one table
    source, sink = CountingSide(SqliteSide(source_db(orders))), CountingSide(EngineSide(engine))
    result = reconcile(source, sink)
    assert result.exact, result.describe()
    assert result.queries == 4  # bounds and one summary per side
    assert source.calls == sink.calls == ["key_bounds", "summarize"]
    assert result.rows_fetched == 0 and result.ranges_examined == 64
    assert (result.source_rows, result.sink_rows, result.key_range) == (5_000, 5_000, (1, 5_000))


def test_key_range_leaves_keys_above_the_cutoff_out(catalog: SqlCatalog, engine: QueryEngine) -> None:
    orders = make_orders(range(1, 1_001))
    in_flight = orders[900:]  # written to the source, not yet in the sink
    damaged = Damage(discrepancies={950: 1})
    append(catalog, damaged.apply(orders[:900]))
    db = source_db(orders)
    assert reconcile(SqliteSide(db), EngineSide(engine)).omissions == tuple(o[0] for o in in_flight)
    result = reconcile(SqliteSide(db), EngineSide(engine), key_range=(0, 900))
    assert result.exact, result.describe()
    assert (result.source_rows, result.sink_rows, result.key_range) == (900, 900, (1, 900))


def test_it_never_fetches_whole_tables(catalog: SqlCatalog, engine: QueryEngine) -> None:
    # 50,000 rows over 100,000 keys: wide enough that strings are hashed per distinct value.
    orders = make_orders(range(1, 100_001, 2))
    damage = Damage(duplicates={12_345}, omissions={33_333}, discrepancies={99_999: 2})
    append(catalog, damage.apply(orders))
    source, sink = CountingSide(SqliteSide(source_db(orders))), CountingSide(EngineSide(engine))
    result = reconcile(source, sink)
    damage.assert_found(result)
    fetched = source.rows_fetched + sink.rows_fetched
    assert fetched == result.rows_fetched
    # Three damaged leaves of at most leaf_rows rows each, on each side, out of 100,000.
    assert fetched <= 3 * 2 * 2_000 and fetched < 0.05 * result.compared_rows
    assert source.calls.count("row_hashes") == sink.calls.count("row_hashes") == 1  # batched


def test_engine_side_reads_one_snapshot_per_reconciliation(catalog: SqlCatalog, engine: QueryEngine) -> None:
    orders = make_orders(range(1, 101))
    append(catalog, orders)
    sink = EngineSide(engine)
    bounds = sink.key_bounds()
    append(catalog, make_orders(range(101, 111)))  # a commit lands mid-reconciliation
    assert sum(s.rows for s in sink.summarize(1, 200, 4)) == 100
    assert sink.key_bounds() == (1, 110) != bounds  # the next reconciliation sees it


def test_summaries_count_distinct_keys_on_request(catalog: SqlCatalog, engine: QueryEngine) -> None:
    orders = make_orders(range(1, 11))
    append(catalog, Damage(duplicates={3}).apply(orders))
    (summary,) = EngineSide(engine).summarize(1, 10, 1, count_keys=True)
    assert (summary.rows, summary.keys) == (11, 10)
    (summary,) = SqliteSide(source_db(orders)).summarize(1, 10, 1)
    assert (summary.rows, summary.keys) == (10, None)


def test_empty_sides_are_exact(catalog: SqlCatalog, engine: QueryEngine) -> None:
    result = reconcile(SqliteSide(source_db([])), EngineSide(engine), clock=FakeClock())
    assert result.exact and result.compared_rows == 0 and result.key_range is None
    assert result.rows_per_s == 0.0


def test_an_empty_sink_lists_every_source_key_as_missing(engine: QueryEngine) -> None:
    orders = make_orders(range(1, 5_001))
    result = reconcile(SqliteSide(source_db(orders)), EngineSide(engine), leaf_rows=100)
    assert result.omissions == tuple(range(1, 5_001))
    # Ranges empty on one side are fetched at once, not bisected down to leaves: one query
    # for every 64 of them, and none on the empty side.
    assert result.ranges_examined == 100 and result.queries == 4 + 2


def test_bad_arguments_name_the_field_and_value(engine: QueryEngine) -> None:
    source, sink = SqliteSide(source_db([])), EngineSide(engine)
    with pytest.raises(ConfigError, match=r"buckets = 1 is invalid"):
        reconcile(source, sink, buckets=1)
    with pytest.raises(ConfigError, match=r"leaf_rows = 0 is invalid"):
        reconcile(source, sink, leaf_rows=0)
    with pytest.raises(ConfigError, match=r"key_range = \(5, 1\) is invalid"):
        reconcile(source, sink, key_range=(5, 1))
    short = EngineSide(engine, columns=SOURCE_ORDER_COLUMNS[:4])
    with pytest.raises(ConfigError, match="same kinds"):
        reconcile(source, short)


# --- the property: random damage is found, and nothing else --------------------------------


@st.composite
def damage_plans(draw: st.DrawFn) -> tuple[list[Order], Damage]:
    n = draw(st.integers(1, 300))
    keys = draw(st.lists(st.integers(1, 5 * n), min_size=n, max_size=n, unique=True))
    orders = make_orders(sorted(keys), seed=draw(st.integers(0, 2**16)))
    pool = list(keys)
    damage = Damage()
    for target in ("duplicates", "omissions", "discrepancies"):
        chosen = draw(st.lists(st.sampled_from(pool), max_size=5, unique=True)) if pool else []
        pool = [k for k in pool if k not in chosen]
        if target == "discrepancies":
            damage.discrepancies = {k: draw(st.integers(0, 4)) for k in chosen}
        else:
            getattr(damage, target).update(chosen)
    fresh = st.integers(-50, 6 * n).filter(lambda k: k not in set(keys))
    damage.unexpected = set(draw(st.lists(fresh, max_size=4, unique=True)))
    return orders, damage


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damage_plans(), st.integers(2, 16), st.integers(1, 64))
def test_random_damage_is_found_and_nothing_else(
    plan: tuple[list[Order], Damage], buckets: int, leaf_rows: int
) -> None:
    orders, damage = plan
    with ArrowSide(sink_arrow(damage.apply(orders))) as sink:
        result = reconcile(SqliteSide(source_db(orders)), sink, buckets=buckets, leaf_rows=leaf_rows)
    damage.assert_found(result)


# --- repair ------------------------------------------------------------------------------


def sink_key_counts(engine: QueryEngine) -> dict[int, int]:
    return dict(engine.rows(f"SELECT order_id, count(*) FROM {TABLE} GROUP BY order_id"))


def test_repair_makes_the_sink_exact(catalog: SqlCatalog, engine: QueryEngine) -> None:
    orders = make_orders(range(1, 2_001))
    damage = Damage(
        duplicates={2, 1_000}, omissions={3, 1_999}, discrepancies={4: 2, 5: 4}, unexpected={9_000}
    )
    append(catalog, damage.apply(orders))
    db = source_db(orders)
    found = reconcile(SqliteSide(db), EngineSide(engine))
    damage.assert_found(found)

    repaired = repair(catalog, TABLE, found, db)

    # 2 duplicates x 2 rows, 2 discrepancies, 1 unexpected; then 2 + 2 + 2 rows back.
    assert (repaired.deleted_rows, repaired.inserted_rows, repaired.attempts) == (7, 6, 1)
    assert "7 rows deleted, 6 inserted" in repaired.describe()
    after = reconcile(SqliteSide(db), EngineSide(engine))
    assert after.exact, after.describe()
    counts = sink_key_counts(engine)
    assert set(counts) == set(range(1, 2_001)) and set(counts.values()) == {1}
    repaired_row = engine.rows(
        f"SELECT event_id, kafka_partition, kafka_offset, is_canary, ingested_at IS NOT NULL "
        f"FROM {TABLE} WHERE order_id = 3"
    )
    assert repaired_row == [(None, None, None, False, True)]


def test_repair_of_an_exact_result_changes_nothing(catalog: SqlCatalog, engine: QueryEngine) -> None:
    orders = make_orders(range(1, 11))
    append(catalog, orders)
    db = source_db(orders)
    snapshot = catalog.load_table(TABLE).current_snapshot()
    result = repair(catalog, TABLE, reconcile(SqliteSide(db), EngineSide(engine)), db)
    assert (result.deleted_rows, result.inserted_rows, result.attempts) == (0, 0, 0)
    assert catalog.load_table(TABLE).current_snapshot() == snapshot


class RacingCatalog:
    """A catalog where another writer commits between each of the first ``races`` loads
    and the repair's commit: the table the repair loaded is stale by the time it commits."""

    def __init__(self, catalog: SqlCatalog, races: int) -> None:
        self.catalog = catalog
        self.races = races
        self.next_key = 100_000

    def load_table(self, identifier: str) -> Table:
        table = self.catalog.load_table(identifier)
        if self.races > 0:
            self.races -= 1
            # The live sink, appending rows far from the repaired keys.
            append(self.catalog, make_orders([self.next_key]))
            self.next_key += 1
        return table


def test_repair_retries_when_a_concurrent_commit_wins(catalog: SqlCatalog, engine: QueryEngine) -> None:
    orders = make_orders(range(1, 101))
    append(catalog, Damage(duplicates={7}, omissions={8}).apply(orders))
    # pyiceberg retries a lost commit by itself; turn that off to exercise ours.
    with catalog.load_table(TABLE).transaction() as tx:
        tx.set_properties({"commit.retry.num-retries": "0"})
    db = source_db(orders)
    found = reconcile(SqliteSide(db), EngineSide(engine))

    repaired = repair(RacingCatalog(catalog, races=2), TABLE, found, db, clock=FakeClock())

    assert repaired.attempts == 3
    after = reconcile(SqliteSide(db), EngineSide(engine))
    assert after.omissions == () and after.duplicates == ()
    assert after.unexpected == (100_000, 100_001)  # the other writer's rows survived

    with pytest.raises(RepairFailed, match=r"2 commits in a row lost a race") as caught:
        repair(RacingCatalog(catalog, races=5), TABLE, after, db, retries=2, clock=FakeClock())
    assert isinstance(caught.value.__cause__, CommitFailedException)


class TouchingCatalog(RacingCatalog):
    """Like RacingCatalog, but the other writer appends a stale copy of a key being repaired."""

    def __init__(self, catalog: SqlCatalog, races: int, order: Order) -> None:
        super().__init__(catalog, races)
        self.order = order

    def load_table(self, identifier: str) -> Table:
        table = self.catalog.load_table(identifier)
        if self.races > 0:
            self.races -= 1
            append(self.catalog, [self.order])
        return table


def test_repair_redoes_its_delete_when_a_concurrent_commit_adds_a_repaired_key(
    catalog: SqlCatalog, engine: QueryEngine
) -> None:
    orders = make_orders(range(1, 101))
    stale = changed(orders[8], 1)  # key 9, wrong amount
    append(catalog, [*orders[:8], stale, *orders[9:]])
    db = source_db(orders)
    found = reconcile(SqliteSide(db), EngineSide(engine))
    assert found.discrepancies == (9,)

    # pyiceberg's own retry finds the new file matching the delete and gives up
    # (ValidationException); the repair starts over from the new table.
    repaired = repair(TouchingCatalog(catalog, races=1, order=stale), TABLE, found, db, clock=FakeClock())

    assert (repaired.attempts, repaired.deleted_rows, repaired.inserted_rows) == (2, 2, 1)
    after = reconcile(SqliteSide(db), EngineSide(engine))
    assert after.exact, after.describe()
