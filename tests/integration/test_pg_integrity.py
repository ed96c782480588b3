"""Reconciliation, repair and the exactly-once check reading a PostgreSQL source.

The counts and hashes of a PostgreSQL source run in the server (``PostgresDialect``), as
they run in SQLite for a SQLite source: these tests hold the server's numbers to the
Python mirror (``row_hash``) and to SQLite's for the same rows, then reconcile, repair and
check a pyiceberg table in tmp_path against a source in a throwaway PostgreSQL server (the
session's ``postgres_dsn``; a fresh database per test). No stack processes.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyiceberg.catalog.sql import SqlCatalog

from datadrill.errors import ConfigError, QueryFailed
from datadrill.integrity.dialects import DICTIONARY_MIN_SPAN, POSTGRESQL, Column
from datadrill.integrity.exactly_once import check_exactly_once
from datadrill.integrity.hashing import ColumnKind, row_hash
from datadrill.integrity.reconcile import reconcile
from datadrill.integrity.repair import repair, source_rows
from datadrill.integrity.result import ReconcileResult
from datadrill.integrity.sides import ArrowSide, EngineSide, SourceSide
from datadrill.integrity.targets import SinkEngine, target_sides
from datadrill.model.slo import Target
from datadrill.platform import source_db
from datadrill.platform.catalog import ORDERS_ARROW_SCHEMA, ensure_orders_table, open_catalog
from datadrill.platform.query import QueryEngine
from datadrill.platform.source_conn import SOURCE_ERRORS, SourceConnection, open_source

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TABLE = "dwh.orders"
T0 = 1_700_000_000_000_000
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "JPY", "zł", "円")
STATUSES = ("created", "paid", "shipped", "cancelled", "refunded", "état-payé", "已发货🚚")

Order = tuple[int, int, int, str, str, int]  # order_id, customer_id, amount_cents, currency, status, µs


def database(postgres_dsn: str, name: str, encoding: str = "UTF8") -> str:
    """A fresh database in ``encoding``, whatever the server's default (initdb under LANG=C
    makes SQL_ASCII the default); its URI."""
    admin = psycopg2.connect(postgres_dsn)
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
            cursor.execute(
                f"CREATE DATABASE {name} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            )
    finally:
        admin.close()
    return postgres_dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def pg_uri(postgres_dsn: str) -> str:
    """A database of this module's own on the session's server."""
    return database(postgres_dsn, "pg_integrity")


@pytest.fixture
def pg(pg_uri: str) -> Iterator[SourceConnection]:
    """The reference schema, emptied: each test starts from no rows."""
    with source_db.connect(pg_uri) as db:
        db.execute("TRUNCATE orders, outbox, canaries RESTART IDENTITY")
        yield db


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


def load_orders(db: SourceConnection, orders: Sequence[Order]) -> None:
    with db.transaction():
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, 0)", list(orders))


def sqlite_orders(orders: Sequence[Order]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(source_db.SCHEMA)
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, 0)", orders)
    db.commit()
    return db


def sink_arrow(orders: Sequence[Order]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in ORDERS_ARROW_SCHEMA.names}
    for order in orders:
        row = (*order, False, None, None, None, None)
        for name, value in zip(ORDERS_ARROW_SCHEMA.names, row, strict=True):
            columns[name].append(value)
    return pa.Table.from_arrays(
        [pa.array(columns[f.name], type=f.type) for f in ORDERS_ARROW_SCHEMA], schema=ORDERS_ARROW_SCHEMA
    )


# --- the row hash: PostgreSQL, SQLite and Python agree -----------------------------------

KINDS = (ColumnKind.INTEGER, ColumnKind.TEXT, ColumnKind.INTEGER, ColumnKind.TEXT)
GENERIC_COLUMNS = tuple(Column(f"v{i}", kind) for i, kind in enumerate(KINDS))
GENERIC_DDL = (
    "CREATE TABLE {table} (k BIGINT PRIMARY KEY, v0 BIGINT, v1 TEXT, v2 BIGINT NOT NULL, v3 TEXT NOT NULL)"
)

# Strings around every boundary of the hash (16 leading, 8 trailing code points), in and out
# of the Basic Multilingual Plane, and with combining marks; PostgreSQL's TEXT has no NUL.
EDGE_STRINGS = [
    "",
    " ",
    "a",
    "é",
    "e\u0301",
    "漢",
    "🙂",
    "👨\u200d👩\u200d👧",
    *("x" * n for n in (7, 8, 9, 15, 16, 17, 23, 24, 25, 26)),
    "漢字かな交じり文の長い文字列です。",
    "🙂" * 24,
    "é" * 17 + "🙂" * 9,
    "abcdefghijklmnopqrstuvwxyz" * 40,
    "trailing space ",
    'it\'s 100% \\ "quoted" ?',
    # Noncharacters: SQLite's unicode() reads them as U+FFFD (the dialect corrects it).
    "\ufffe",
    "x\uffffy\ufffd" + "z" * 30 + "\ufffe",
]
EDGE_INTEGERS = [
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    -(2**31),
    3_037_000_493,
    2**62,
    -(2**62),
    2**63 - 1,
    -(2**63),
]


def pg_generic_side(db: SourceConnection, rows: dict[int, tuple[Any, ...]], table: str = "t") -> SourceSide:
    db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute(GENERIC_DDL.format(table=table))
    db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)", [(k, *v) for k, v in rows.items()])
    return SourceSide(db, query=f"SELECT * FROM {table}", key="k", columns=GENERIC_COLUMNS)


def sqlite_generic_side(rows: dict[int, tuple[Any, ...]]) -> SourceSide:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v0 INTEGER, v1 TEXT, v2 INTEGER, v3 TEXT)")
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [(k, *v) for k, v in rows.items()])
    return SourceSide(db, query="SELECT * FROM t", key="k", columns=GENERIC_COLUMNS)


def edge_rows() -> dict[int, tuple[Any, ...]]:
    """Every edge string and integer, in both nullable and non-null columns, with NULLs.
    Keys stay within ±2^60: a summary subtracts the lowest key from each (every engine's
    64-bit arithmetic), so the keys of one reconciliation must span less than 2^63."""
    rows: dict[int, tuple[Any, ...]] = {}
    key = -(2**60)
    for i, text in enumerate(EDGE_STRINGS):
        rows[key] = (EDGE_INTEGERS[i % len(EDGE_INTEGERS)], text, -i, EDGE_STRINGS[-1 - i])
        key += 2**55
    for i, number in enumerate(EDGE_INTEGERS):
        rows[key] = (number, None if i % 2 else EDGE_STRINGS[i], number, "")
        key += 2**55
    rows[2**60] = (None, None, 2**63 - 1, "🙂")
    rows[0] = (None, "", -(2**63), "é")
    return rows


def assert_hashes_agree(
    pg_side: SourceSide, sqlite_side: SourceSide, rows: dict[int, tuple[Any, ...]]
) -> None:
    lo, hi = min(rows), max(rows)
    expected = sorted((k, row_hash(KINDS, k, v)) for k, v in rows.items())
    assert sorted(pg_side.row_hashes(lo, hi)) == expected
    assert sorted(sqlite_side.row_hashes(lo, hi)) == expected
    # Wide summaries hash strings once per distinct value and join them back; narrow ones
    # per row: both must sum to the rows' hashes, bucket by bucket the same as SQLite's.
    for start in (lo, lo - DICTIONARY_MIN_SPAN):
        for buckets in (2, 7, 64):
            ours = pg_side.summarize(start, hi, buckets, count_keys=True)
            assert ours == sqlite_side.summarize(start, hi, buckets, count_keys=True)
            assert sum(s.checksum for s in ours) == sum(h for _, h in expected)
            assert sum(s.rows for s in ours) == sum(s.keys or 0 for s in ours) == len(rows)


def test_row_hash_edge_cases_agree_with_python_and_sqlite(pg: SourceConnection) -> None:
    rows = edge_rows()
    pg_side = pg_generic_side(pg, rows)
    assert pg_side._dialect is POSTGRESQL
    assert_hashes_agree(pg_side, sqlite_generic_side(rows), rows)


INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40),
    st.sampled_from(EDGE_STRINGS),
)
GENERIC_ROW = st.tuples(st.one_of(st.none(), INT64), st.one_of(st.none(), TEXT), INT64, TEXT)


@pytest.fixture(scope="module")
def shared_pg(pg_uri: str) -> Iterator[SourceConnection]:
    # Module-scoped: Hypothesis runs every example of a test on one fixture value.
    with open_source(pg_uri) as db:
        yield db


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.integers(-(2**60), 2**60), GENERIC_ROW, min_size=1, max_size=12))
def test_row_hash_is_identical_in_postgresql_sqlite_and_python(
    shared_pg: SourceConnection, rows: dict[int, tuple[Any, ...]]
) -> None:
    assert_hashes_agree(pg_generic_side(shared_pg, rows, "hyp"), sqlite_generic_side(rows), rows)


def test_order_summaries_agree_with_sqlite_bucket_by_bucket(pg: SourceConnection) -> None:
    # 60,000 rows over 120,000 keys: the full range hashes strings per distinct value.
    orders = make_orders(range(1, 120_001, 2))
    load_orders(pg, orders)
    pg_side, lite = SourceSide(pg), SourceSide(sqlite_orders(orders))
    assert pg_side.key_bounds() == lite.key_bounds() == (1, 119_999)
    for lo, hi, buckets in ((1, 119_999, 64), (1, 119_999, 3), (1_001, 1_999, 16), (50, 50, 4)):
        ours = pg_side.summarize(lo, hi, buckets)
        assert ours == lite.summarize(lo, hi, buckets), (lo, hi, buckets)
    assert sorted(pg_side.row_hashes_in([(1, 99), (5_001, 5_099)])) == sorted(
        lite.row_hashes_in([(1, 99), (5_001, 5_099)])
    )


def test_an_empty_postgresql_source_has_no_bounds(pg: SourceConnection) -> None:
    side = SourceSide(pg)
    assert side.key_bounds() is None
    assert [s.rows for s in side.summarize(1, 10, 2)] == [0, 0]


def test_a_bad_source_query_is_a_query_failure_naming_postgresql(pg: SourceConnection) -> None:
    side = SourceSide(pg, query="SELECT * FROM no_such_table")
    with pytest.raises(QueryFailed, match=r"source: PostgreSQL query failed: .*no_such_table"):
        side.key_bounds()
    assert pg.execute("SELECT 1").fetchone() == (1,)  # the connection is still usable


@pytest.mark.parametrize("encoding", ["SQL_ASCII", "WIN1252"])
def test_a_database_whose_characters_are_not_code_points_is_refused(postgres_dsn: str, encoding: str) -> None:
    """In these encodings length() counts bytes or ascii() gives a byte (€ is 0x80 in
    WIN1252): every non-ASCII row would be a false discrepancy, so no hash is computed."""
    with open_source(database(postgres_dsn, f"pg_integrity_{encoding.lower()}", encoding)) as db:
        db.execute(GENERIC_DDL.format(table="t"))
        db.execute("INSERT INTO t VALUES (1, 1, '€', 1, 'x')")
        side = SourceSide(db, query="SELECT * FROM t", key="k", columns=GENERIC_COLUMNS)
        with pytest.raises(ConfigError, match=rf"server_encoding = '{encoding}' is invalid: UTF8 or LATIN1"):
            side.key_bounds()


def test_a_latin1_database_hashes_as_the_others(postgres_dsn: str) -> None:
    rows: dict[int, tuple[Any, ...]] = {1: (1, "éàü ÿ", 2, ""), 2: (None, None, -(2**62), "ß" * 30)}
    with open_source(database(postgres_dsn, "pg_integrity_latin1", "LATIN1")) as db:
        assert_hashes_agree(pg_generic_side(db, rows), sqlite_generic_side(rows), rows)
        with pytest.raises(SOURCE_ERRORS, match="has no equivalent in encoding"):
            db.execute("INSERT INTO t VALUES (3, 1, '漢', 1, 'x')")


# --- reconcile, repair and exactly-once against a PostgreSQL source ------------------------


@dataclass
class Damage:
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
    order_id, customer_id, amount, currency, status, created_us = order
    if column == 0:
        customer_id += 1
    elif column == 1:
        amount -= 1
    elif column == 2:
        currency = currency + "é"
    elif column == 3:
        status = status[:-1]
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


def test_reconcile_finds_exactly_the_injected_keys(
    pg: SourceConnection, catalog: SqlCatalog, engine: QueryEngine
) -> None:
    orders = make_orders(range(1, 3_001))
    damage = Damage(
        duplicates={5, 1_500, 3_000},
        omissions={1, 777, 2_222},
        discrepancies={10: 1, 11: 2, 12: 3, 13: 4, 2_999: 0},
        unexpected={5_000, 6_000},
    )
    catalog.load_table(TABLE).append(sink_arrow(damage.apply(orders)))
    load_orders(pg, orders)
    for buckets, leaf_rows in ((64, 2_000), (4, 10), (2, 1)):
        result = reconcile(SourceSide(pg), EngineSide(engine), buckets=buckets, leaf_rows=leaf_rows)
        damage.assert_found(result)
        assert (result.source_rows, result.sink_rows) == (3_000, 3_002)
    # A live source has rows above the sink's newest: a key range leaves them out (and the
    # unexpected keys above it too).
    load_orders(pg, make_orders(range(3_001, 3_101)))
    result = reconcile(SourceSide(pg), EngineSide(engine), key_range=(0, 3_000))
    damage.unexpected.clear()
    damage.assert_found(result)
    assert result.source_rows == 3_000


@st.composite
def damage_plans(draw: st.DrawFn) -> tuple[list[Order], Damage]:
    n = draw(st.integers(1, 200))
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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damage_plans(), st.integers(2, 16), st.integers(1, 64))
def test_random_damage_is_found_and_nothing_else(
    shared_pg: SourceConnection, plan: tuple[list[Order], Damage], buckets: int, leaf_rows: int
) -> None:
    orders, damage = plan
    shared_pg.execute("DROP TABLE IF EXISTS damaged")
    shared_pg.execute("CREATE TABLE damaged (LIKE orders INCLUDING ALL)")
    shared_pg.executemany("INSERT INTO damaged VALUES (?, ?, ?, ?, ?, ?, 0)", orders)
    query = "SELECT order_id, customer_id, amount_cents, currency, status, created_at_us FROM damaged"
    with ArrowSide(sink_arrow(damage.apply(orders))) as sink:
        result = reconcile(SourceSide(shared_pg, query=query), sink, buckets=buckets, leaf_rows=leaf_rows)
    damage.assert_found(result)


def test_source_rows_reads_postgresql_in_the_sinks_schema(pg: SourceConnection) -> None:
    orders = make_orders(range(1, 1_201))
    load_orders(pg, orders)
    pg.execute("UPDATE orders SET is_canary = 1 WHERE order_id = 7")
    keys = [7, 8, 1_200, *range(100, 1_100), 99_999]  # more keys than one IN list holds
    query = "SELECT * FROM orders"  # with is_canary: canaries stay canaries
    rows = source_rows(pg, keys, query=query)
    assert rows.schema == ORDERS_ARROW_SCHEMA
    by_key = {r["order_id"]: r for r in rows.to_pylist()}
    assert sorted(by_key) == sorted(set(keys) - {99_999})
    seven = orders[6]
    assert (by_key[7]["customer_id"], by_key[7]["currency"], by_key[7]["status"]) == (
        seven[1],
        seven[3],
        seven[4],
    )
    assert by_key[7]["is_canary"] is True and by_key[8]["is_canary"] is False
    created = rows.filter(pc.equal(rows["order_id"], 7))["created_at"].cast(pa.int64())
    assert created.to_pylist() == [seven[5]]


def test_repair_reads_postgresql_and_makes_the_sink_exact(
    pg: SourceConnection, catalog: SqlCatalog, engine: QueryEngine
) -> None:
    orders = make_orders(range(1, 2_001))
    damage = Damage(
        duplicates={2, 1_000}, omissions={3, 1_999}, discrepancies={4: 2, 5: 4}, unexpected={9_000}
    )
    catalog.load_table(TABLE).append(sink_arrow(damage.apply(orders)))
    load_orders(pg, orders)
    found = reconcile(SourceSide(pg), EngineSide(engine))
    damage.assert_found(found)

    repaired = repair(catalog, TABLE, found, pg)

    assert (repaired.deleted_rows, repaired.inserted_rows, repaired.missing_in_source) == (7, 6, ())
    after = reconcile(SourceSide(pg), EngineSide(engine))
    assert after.exact, after.describe()
    counts = dict(engine.rows(f"SELECT order_id, count(*) FROM {TABLE} GROUP BY order_id"))
    assert set(counts) == set(range(1, 2_001)) and set(counts.values()) == {1}
    (row,) = engine.rows(f"SELECT currency, status, epoch_us(created_at) FROM {TABLE} WHERE order_id = 5")
    assert row == (orders[4][3], orders[4][4], orders[4][5])


def test_exactly_once_with_a_postgresql_source(
    pg: SourceConnection, catalog: SqlCatalog, engine: QueryEngine
) -> None:
    orders = make_orders(range(1, 501))
    load_orders(pg, orders)
    catalog.load_table(TABLE).append(sink_arrow(orders))
    result = check_exactly_once(pg, engine, table=TABLE)
    assert result.exact and (result.source_orders, result.sink_rows) == (500, 500), result.describe()
    catalog.load_table(TABLE).append(sink_arrow(Damage(duplicates={9}, unexpected={777}).apply(orders[:10])))
    load_orders(pg, make_orders([501, 502]))
    result = check_exactly_once(pg, engine, table=TABLE)
    assert (result.duplicated_orders, result.missing_orders, result.unexpected_orders) == (10, 2, 1)
    assert not result.exact, result.describe()


def test_a_targets_boolean_and_unicode_columns_on_postgresql(
    pg: SourceConnection, catalog: SqlCatalog, engine: QueryEngine
) -> None:
    """A team's own table against a PostgreSQL source: a boolean hashes as 0 or 1 on both
    sides (PostgreSQL cannot cast a boolean to BIGINT), and the findings are the injected ones."""
    source = [
        (k, k * 7 % 1000, ["DE", "FR", "ÉS", None][k % 4], T0 + k * 1_001, k % 3 == 0) for k in range(1, 3001)
    ]
    pg.execute(
        "CREATE TABLE sales (id BIGINT PRIMARY KEY, amount INTEGER, country TEXT, shipped_us BIGINT, express BOOLEAN)"
    )
    pg.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", source)
    sink: dict[int, tuple[Any, ...]] = {row[0]: row[1:] for row in source}
    del sink[17]
    sink[300] = (sink[300][0], "PL", *sink[300][2:])
    sink[303] = (*sink[303][:3], not sink[303][3])  # express flipped
    sink[9000] = (1, "XX", T0, False)
    keys = [*sink, 2500]
    table = pa.table(
        {
            "id": pa.array(keys, pa.int64()),
            "amount": pa.array([sink[k][0] for k in keys], pa.int32()),
            "country": pa.array([sink[k][1] for k in keys], pa.string()),
            "shipped_at": pa.array([sink[k][2] for k in keys], pa.timestamp("us", tz="UTC")),
            "express": pa.array([sink[k][3] for k in keys], pa.bool_()),
        }
    )
    catalog.create_namespace("team")
    catalog.create_table("team.enriched", schema=table.schema).append(table)
    target = Target(
        table="team.enriched",
        key_column="id",
        columns=("amount", "country", "shipped_at", "express"),
        source_query="SELECT id, amount, country, shipped_us AS shipped_at, express FROM sales",
    )
    try:
        source_side, sink_side = target_sides(target, pg, SinkEngine(local=engine))
        result = reconcile(source_side, sink_side, leaf_rows=100)
    finally:
        pg.execute("DROP TABLE sales")
    found = (result.omissions, result.discrepancies, result.duplicates, result.unexpected)
    assert found == ((17,), (300, 303), (2500,), (9000,)), result.describe()


# --- SourceConnection and source_db on PostgreSQL -----------------------------------------


def test_placeholders_and_percent_signs(pg: SourceConnection) -> None:
    assert pg.execute("SELECT ? + ?, ?", (1, 2, "x?")).fetchone() == (3, "x?")
    # A % in the SQL (the hash's modulo) with and without parameters.
    assert pg.execute("SELECT 17 % 5").fetchone() == (2,)
    assert pg.execute("SELECT ? % 5, '100%'", (17,)).fetchone() == (2, "100%")
    assert pg.execute("SELECT ?::text LIKE 'a%'", ("abc",)).fetchone() == (True,)


def test_executemany_inserts_every_row_in_batches(pg: SourceConnection) -> None:
    rows = [(i, f"row {i} 100%") for i in range(2_500)]  # more than one page of 1,000
    pg.execute("CREATE TEMP TABLE many (a BIGINT PRIMARY KEY, b BIGINT, c TEXT)")
    # A literal in the row's tuple stays in every row (it was dropped, shifting the values).
    pg.executemany("INSERT INTO many VALUES (?, 7, ?)", rows)
    pg.executemany("INSERT INTO many VALUES (?, ?, ?)", [])
    assert pg.execute("SELECT count(*), sum(a), min(b), max(b), count(DISTINCT c) FROM many").fetchone() == (
        2_500,
        3_123_750,
        7,
        7,
        2_500,
    )
    # What follows the row stays after the rows; parentheses and % inside literals too.
    pg.executemany(
        "INSERT INTO many (a, b, c) VALUES (?, length('a)b'), '50%' || ?) ON CONFLICT (a) DO NOTHING",
        [(0, "dropped"), (-1, "kept")],
    )
    assert pg.execute("SELECT b, c FROM many WHERE a IN (0, -1) ORDER BY a").fetchall() == [
        (3, "50%kept"),
        (7, "row 0 100%"),
    ]
    # Not an INSERT ... VALUES: one statement per row.
    pg.executemany("UPDATE many SET b = ? WHERE a = ?", [(100, 1), (200, 2)])
    assert pg.execute("SELECT b FROM many WHERE a IN (1, 2) ORDER BY a").fetchall() == [(100,), (200,)]


def test_a_transaction_whose_connection_died_raises_what_killed_it(pg_uri: str, pg: SourceConnection) -> None:
    """Not the ROLLBACK's InterfaceError ("connection already closed"), which hid it."""
    with open_source(pg_uri) as victim:
        (pid,) = victim.execute("SELECT pg_backend_pid()").fetchone()
        with pytest.raises(psycopg2.OperationalError, match="terminat"), victim.transaction():
            victim.execute("INSERT INTO canaries VALUES (1, 1, 1)")
            pg.execute("SELECT pg_terminate_backend(?)", (pid,))
            victim.execute("INSERT INTO canaries VALUES (2, 2, 2)")
    assert pg.execute("SELECT count(*) FROM canaries").fetchone() == (0,)


def test_a_failed_transaction_leaves_nothing_and_the_connection_usable(pg: SourceConnection) -> None:
    with pytest.raises(SOURCE_ERRORS), pg.transaction():
        pg.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, 0)", make_orders([1, 2]))
        pg.execute("INSERT INTO orders VALUES (1, 1, 1, 'EUR', 'dup', 1, 0)")  # the key again
    with pytest.raises(RuntimeError, match="not a database error"), pg.transaction():
        pg.execute("INSERT INTO canaries VALUES (1, 1, 1)")
        raise RuntimeError("not a database error")
    assert pg.execute("SELECT count(*) FROM orders").fetchone() == (0,)
    assert pg.execute("SELECT count(*) FROM canaries").fetchone() == (0,)
    with pg.transaction():
        pg.execute("INSERT INTO canaries VALUES (?, ?, ?)", (1, 2, 3))
    assert pg.execute("SELECT * FROM canaries").fetchall() == [(1, 2, 3)]


def test_a_bad_query_raises_a_source_error_and_the_block_closes(pg_uri: str) -> None:
    with open_source(pg_uri) as db:
        with pytest.raises(SOURCE_ERRORS):
            db.execute("SELECT no_such_column FROM orders")
        assert db.execute("SELECT 1").fetchone() == (1,)
    assert db.raw.closed
    with pytest.raises(SOURCE_ERRORS):
        db.execute("SELECT 1")


def connect_at_once(uri: str, connections: int) -> list[BaseException]:
    """``source_db.connect(uri)`` from ``connections`` threads released together; their errors."""
    barrier = threading.Barrier(connections)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            source_db.connect(uri).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_connecting_twice_at_once_creates_the_schema_once(postgres_dsn: str) -> None:
    """Processes starting at once (workload and relay) all create the schema: the advisory
    lock serializes them (CREATE TABLE IF NOT EXISTS alone races in pg_type)."""
    for attempt in range(3):
        uri = database(postgres_dsn, f"pg_integrity_race{attempt}")
        assert connect_at_once(uri, 4) == []
        with open_source(uri) as db:
            tables = db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
            ).fetchall()
        assert tables == [("canaries",), ("orders",), ("outbox",)]


def test_last_event_id_on_a_fresh_and_a_used_sequence(pg: SourceConnection) -> None:
    assert source_db.last_event_id(pg) == 0  # RESTART IDENTITY: as new
    source_db.insert_orders(pg, [source_db.OrderRow(*o, False) for o in make_orders([1, 2, 3])])
    assert source_db.last_event_id(pg) == 3
    source_db.mark_published(pg, up_to_event_id=3)
    assert source_db.outbox_depth(pg) == 0 and source_db.last_event_id(pg) == 3  # deletes keep it
    events = [e.event_id for e in source_db.pending_events(pg, limit=10)]
    assert events == []
    source_db.insert_orders(pg, [source_db.OrderRow(*make_orders([4])[0], True)])
    assert [e.event_id for e in source_db.pending_events(pg, limit=10)] == [4]
    assert source_db.next_order_id(pg) == 5 and source_db.count_orders(pg) == 4


def test_a_bad_uri_is_a_source_error(postgres_dsn: str) -> None:
    with pytest.raises(SOURCE_ERRORS):
        open_source(postgres_dsn.rsplit("/", 1)[0] + "/no_such_database", timeout_s=5)
    with pytest.raises(psycopg2.OperationalError):
        open_source("postgresql://drill@127.0.0.1:1/source", timeout_s=2)
