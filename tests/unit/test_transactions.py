"""The cached Iceberg transaction (platform/transactions.py) commits what pyiceberg's own
does: the same rows and summaries, staged changes seen at once, a stale table's commit
retried on the new head without losing the other writer's rows — with the staged
metadata worked out a handful of times per append instead of ~23."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table import Transaction as PyicebergTransaction
from test_query_engine import _rows

from datadrill.platform.catalog import ensure_orders_table, open_catalog, sink_state
from datadrill.platform.sink import snapshot_properties
from datadrill.platform.transactions import Transaction, expire_snapshots, transaction


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    catalog = open_catalog(f"sqlite:///{tmp_path}/catalog.db", tmp_path / "warehouse")
    ensure_orders_table(catalog, "dwh.orders")
    return catalog


def _summary(catalog: Catalog) -> dict[str, str]:
    snapshot = catalog.load_table("dwh.orders").current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    return dict(snapshot.summary.additional_properties)


def test_an_append_commits_the_rows_and_the_state_as_pyicebergs_does(catalog: Catalog) -> None:
    table = catalog.load_table("dwh.orders")
    with PyicebergTransaction(table) as tx:
        tx.append(_rows(0, 30), snapshot_properties=snapshot_properties({0: 30}, {0: 29}))
    theirs = _summary(catalog)
    table = catalog.load_table("dwh.orders")
    with transaction(table) as tx:
        tx.append(_rows(30, 30), snapshot_properties=snapshot_properties({0: 60}, {0: 59}))
    ours = _summary(catalog)
    table = catalog.load_table("dwh.orders")
    assert sorted(table.scan().to_arrow().column("order_id").to_pylist()) == list(range(60))
    assert sink_state(table) == ({0: 60}, {0: 59})
    assert set(ours) == set(theirs)  # the same summary keys: offsets, event ids, counts
    assert (ours["added-records"], ours["total-records"]) == ("30", "60")


def test_staged_changes_are_seen_at_once_and_the_metadata_is_worked_out_once_per_change(
    catalog: Catalog,
) -> None:
    table = catalog.load_table("dwh.orders")
    tx = Transaction(table)
    computed = 0
    original = PyicebergTransaction.table_metadata.fget  # type: ignore[attr-defined]

    def counting(self: PyicebergTransaction) -> object:
        nonlocal computed
        computed += 1
        return original(self)

    with mock.patch.object(PyicebergTransaction, "table_metadata", property(counting)):
        first = tx.table_metadata
        assert tx.table_metadata is first and computed == 1
        tx.set_properties({"datadrill.test": "1"})
        assert tx.table_metadata.properties["datadrill.test"] == "1" and computed >= 2
        before = computed
        tx.append(_rows(0, 10), snapshot_properties=snapshot_properties({0: 10}, {0: 9}))
        per_append = computed - before
        tx.commit_transaction()
    assert per_append <= 6, f"the staged metadata was worked out {per_append} times for one append"
    table = catalog.load_table("dwh.orders")
    assert table.properties["datadrill.test"] == "1" and len(table.scan().to_arrow()) == 10


def test_a_stale_tables_append_is_retried_on_the_new_head_and_keeps_both_writers_rows(
    catalog: Catalog,
) -> None:
    stale = catalog.load_table("dwh.orders")
    other = catalog.load_table("dwh.orders")
    other.append(_rows(0, 20))  # another writer commits first
    with transaction(stale) as tx:
        tx.append(_rows(20, 20), snapshot_properties=snapshot_properties({0: 40}, {0: 39}))
    table = catalog.load_table("dwh.orders")
    assert sorted(table.scan().to_arrow().column("order_id").to_pylist()) == list(range(40))
    assert sink_state(table) == ({0: 40}, {0: 39})


def test_snapshot_expiry_on_the_cached_transaction_keeps_the_rows(catalog: Catalog) -> None:
    table = catalog.load_table("dwh.orders")
    for start in range(0, 50, 10):
        with transaction(table) as tx:
            tx.append(_rows(start, 10))
    old = [s.snapshot_id for s in table.metadata.snapshots[:-2]]
    expire_snapshots(table).by_ids(old).commit()
    table = catalog.load_table("dwh.orders")
    assert len(table.metadata.snapshots) == 2
    assert sorted(table.scan().to_arrow().column("order_id").to_pylist()) == list(range(50))
