"""The query engine resolves tables through the catalog, incrementally when it can."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.expressions import LessThan

from datadrill.errors import QueryFailed
from datadrill.platform.catalog import ORDERS_ARROW_SCHEMA, ensure_orders_table, open_catalog
from datadrill.platform.query import QueryEngine


def _rows(start: int, count: int) -> pa.Table:
    ids = list(range(start, start + count))
    columns = {
        "order_id": ids,
        "customer_id": [i % 7 for i in ids],
        "amount_cents": [i * 3 for i in ids],
        "currency": ["EUR"] * count,
        "status": ["created"] * count,
        "created_at": [1_700_000_000_000_000 + i for i in ids],
        "is_canary": [False] * count,
        "event_id": ids,
        "kafka_partition": [0] * count,
        "kafka_offset": ids,
        "ingested_at": [1_700_000_000_000_000] * count,
    }
    return pa.Table.from_pydict(columns, schema=ORDERS_ARROW_SCHEMA)


@pytest.fixture
def catalog(tmp_path: Path):  # type: ignore[no-untyped-def]
    catalog = open_catalog(f"sqlite:///{tmp_path}/catalog.db", tmp_path / "warehouse")
    ensure_orders_table(catalog, "dwh.orders")
    return catalog


def _count(engine: QueryEngine) -> int:
    return int(engine.rows("SELECT count(*) FROM dwh.orders")[0][0])


def test_appends_are_seen_incrementally_and_match_a_fresh_plan(catalog) -> None:  # type: ignore[no-untyped-def]
    engine = QueryEngine(catalog)
    assert _count(engine) == 0
    table = catalog.load_table("dwh.orders")
    for batch in range(5):
        table.append(_rows(batch * 100, 100))
        assert _count(engine) == (batch + 1) * 100
        assert _count(QueryEngine(catalog)) == (batch + 1) * 100


def test_deletes_and_restored_snapshots_force_a_full_plan(catalog) -> None:  # type: ignore[no-untyped-def]
    engine = QueryEngine(catalog)
    table = catalog.load_table("dwh.orders")
    table.append(_rows(0, 100))
    old_location = catalog.load_table("dwh.orders").metadata_location
    table.append(_rows(100, 100))
    assert _count(engine) == 200
    table.delete(delete_filter=LessThan("order_id", 50))
    assert _count(engine) == 150
    # Point the catalog back at an older metadata file, as a restore does.
    catalog.drop_table("dwh.orders")
    catalog.register_table("dwh.orders", old_location)
    assert _count(engine) == 100


def test_a_missing_table_fails_the_query(catalog) -> None:  # type: ignore[no-untyped-def]
    engine = QueryEngine(catalog)
    catalog.load_table("dwh.orders").append(_rows(0, 10))
    assert _count(engine) == 10
    catalog.drop_table("dwh.orders")
    with pytest.raises(QueryFailed, match="does not exist in the catalog"):
        _count(engine)


def test_memory_does_not_grow_with_the_files_queried(catalog) -> None:  # type: ignore[no-untyped-def]
    # The sink adds a data file per commit and the stack's engine lives as long as the
    # stack: a per-file cache (DuckDB's Parquet footers, ~18 KiB each) grew without bound.
    engine = QueryEngine(catalog)
    table = catalog.load_table("dwh.orders")
    files = 12
    for batch in range(files):
        table.append(_rows(batch * 10, 10))
        assert _count(engine) == (batch + 1) * 10
    cached = "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'OBJECT_CACHE'"
    (cached_bytes,) = engine.rows(cached, tables=())[0]
    assert cached_bytes < files * 1024, f"DuckDB caches {cached_bytes} bytes for {files} files"
