"""Compaction rewrites the sink's small files into one: same rows, fewer files, the sink's
exactly-once state kept, older snapshots still readable, a lost race changing nothing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import EqualTo
from test_query_engine import _rows

from datadrill.platform.catalog import ensure_orders_table, open_catalog, sink_state
from datadrill.platform.compaction import COMPACTED_FILES_PROPERTY, compact, plan
from datadrill.platform.query import QueryEngine
from datadrill.platform.sink import snapshot_properties


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    catalog = open_catalog(f"sqlite:///{tmp_path}/catalog.db", tmp_path / "warehouse")
    ensure_orders_table(catalog, "dwh.orders")
    return catalog


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by("order_id")


def _append_batches(catalog: Catalog, sizes: list[int]) -> None:
    table = catalog.load_table("dwh.orders")
    start = 0
    for n, size in enumerate(sizes):
        props = snapshot_properties({0: start + size}, {0: start + size})
        table.append(_rows(start, size), snapshot_properties=props)
        start += size if n % 3 else size - 1  # overlapping keys too: duplicates stay duplicates


def test_small_files_become_one_with_the_same_rows_and_state(catalog: Catalog) -> None:
    _append_batches(catalog, [5_000] + [40] * 12)
    table = catalog.load_table("dwh.orders")
    before = _sorted(table.scan().to_arrow())
    state = sink_state(table)
    old_location = table.metadata_location

    files = plan(table, file_rows=1_000)
    assert files.small is not None and len(files.small) == 12 and files.large == 1
    done = compact(table, files.small, properties=snapshot_properties(*state))
    assert (done.files_in, done.files_out, done.rows) == (12, 1, 12 * 40)

    table = catalog.load_table("dwh.orders")
    assert _sorted(table.scan().to_arrow()).equals(before)  # every row, duplicates included
    assert len(list(table.scan().plan_files())) == 2
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None and summary.additional_properties[COMPACTED_FILES_PROPERTY] == "12"
    assert sink_state(table) == state  # the sink resumes where it was
    # DuckDB's view (a full plan after a non-append) sees the same rows.
    engine = QueryEngine(catalog)
    assert engine.rows("SELECT count(*), count(DISTINCT order_id) FROM dwh.orders")[0] == (
        before.num_rows,
        len(pc.unique(before["order_id"])),
    )
    # The replaced files stay: the metadata from before the rewrite (a catalog backup's) reads.
    old = catalog.register_table("dwh.before", old_location)
    assert _sorted(old.scan().to_arrow()).equals(before)


def test_the_rewrite_reads_through_the_tables_current_schema(catalog: Catalog) -> None:
    _append_batches(catalog, [10] * 3)
    table = catalog.load_table("dwh.orders")
    table.delete(EqualTo("order_id", 3))  # copy-on-write: files replaced, no delete files
    files = plan(catalog.load_table("dwh.orders"), file_rows=100)
    assert files.small is not None and len(files.small) == 3
    before = _sorted(catalog.load_table("dwh.orders").scan().to_arrow())
    compact(catalog.load_table("dwh.orders"), files.small, properties={})
    assert _sorted(catalog.load_table("dwh.orders").scan().to_arrow()).equals(before)


def test_a_rewrite_that_loses_a_race_changes_nothing(catalog: Catalog) -> None:
    _append_batches(catalog, [30] * 4)
    stale = catalog.load_table("dwh.orders")
    files = plan(stale, file_rows=100)
    assert files.small is not None
    catalog.load_table("dwh.orders").append(_rows(10_000, 5))  # another writer commits first
    expected = _sorted(catalog.load_table("dwh.orders").scan().to_arrow())
    # pyiceberg retries the commit on the new head and refuses it there: another writer
    # added files the rewrite did not see (serializable isolation).
    with pytest.raises((CommitFailedException, ValidationException)):
        compact(stale, files.small, properties={})
    table = catalog.load_table("dwh.orders")
    assert _sorted(table.scan().to_arrow()).equals(expected)
    assert len(list(table.scan().plan_files())) == 5
