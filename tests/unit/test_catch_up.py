"""What "the pipeline has caught up" means before a live reconciliation (the Kafka and
catalog parts run against the embedded stack in tests/integration/test_resnapshot.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pyiceberg.exceptions import NoSuchTableError

from datadrill.integrity.result import ReconcileResult
from datadrill.platform.source_conn import SourceConnection, open_source
from datadrill.platform.source_db import connect, insert_orders
from datadrill.recovery.catch_up import behind, has_outbox, outbox_waiting, wait_caught_up


def test_a_partition_is_behind_until_the_table_holds_its_mark() -> None:
    marks = {0: 120, 1: 80, 2: 0}
    assert behind({0: 120, 1: 80}, marks) == {}
    assert behind({0: 121, 1: 90, 2: 5}, marks) == {}
    assert behind({0: 119, 1: 80}, marks) == {0: (119, 120)}
    # A partition the table has no offset for holds nothing yet: behind unless empty.
    assert behind({0: 120}, marks) == {1: (0, 80)}
    assert behind({}, {}) == {}


def test_the_outbox_is_waited_on_only_up_to_the_cutoff(tmp_path: Path) -> None:
    db = connect(tmp_path / "source.db")
    try:
        assert has_outbox(db)
        assert not outbox_waiting(db, 10**9)
        insert_orders(db, [(7, 1, 100, "EUR", "new", 1_000_000, 0)])
        assert outbox_waiting(db, 7)
        assert not outbox_waiting(db, 6)
    finally:
        db.close()


def test_a_source_without_an_outbox_is_not_waited_on(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "team.db").execute("CREATE TABLE orders (order_id INTEGER)").connection.close()
    db = open_source(tmp_path / "team.db")
    try:
        assert not has_outbox(db)
    finally:
        db.close()


def test_another_target_waits_for_the_newest_key_and_says_when_it_gave_up(tmp_path: Path) -> None:
    answers = iter([False, False, True])
    waited = wait_caught_up(
        _NoStack(), _no_db(), lambda: next(answers), cutoff=10, timeout_s=30, reference=False
    )
    # By the newest key alone a missing row may still be on its way: not settled.
    assert waited.caught_up and waited.detail == "" and not waited.settled
    never = wait_caught_up(_NoStack(), _no_db(), lambda: False, cutoff=10, timeout_s=0.3, reference=False)
    assert not never.caught_up and never.waited_s >= 0.3
    assert never.detail == "the table's newest key is below the source's"


def test_a_table_missing_from_the_catalog_is_not_waited_for() -> None:
    """The sink waits for a lost table and never makes one: the wait ends at once, naming
    it, without asking Kafka or the source anything (the fake fails on any other use)."""
    loads: list[str] = []

    class _Catalog:
        def load_table(self, identifier: str) -> Any:
            loads.append(identifier)
            raise NoSuchTableError(f"Table does not exist: {identifier}")

    class _LostTable(_NoStack):
        table = "dwh.orders"

        def catalog(self) -> _Catalog:
            return _Catalog()

    waited = wait_caught_up(_LostTable(), _no_db(), lambda: False, cutoff=10, timeout_s=30)
    assert not waited.caught_up and not waited.settled
    assert waited.detail == (
        "cannot tell: the table dwh.orders is not in the catalog (Table does not exist: dwh.orders)"
    )
    assert loads == ["dwh.orders"]


def test_a_comparison_made_before_the_pipeline_caught_up_says_so() -> None:
    result = ReconcileResult(
        compared_rows=4,
        source_rows=2,
        sink_rows=1,
        duplicates=(),
        omissions=(2,),
        discrepancies=(),
        unexpected=(),
        elapsed_s=0.1,
        queries=2,
        ranges_examined=1,
        behind="after 30 s, the table holds fewer messages than were published: orders.v1[1] at 7 of 9",
    )
    assert result.describe().endswith(
        "; compared before the pipeline caught up: after 30 s, the table holds fewer messages than "
        "were published: orders.v1[1] at 7 of 9"
    )
    assert "caught up" not in ReconcileResult(**{**result.__dict__, "behind": ""}).describe()


class _NoStack:
    """Only the reference target's wait touches the stack."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the stack's {name} was used")


def _no_db() -> SourceConnection:
    return SourceConnection(None, "sqlite", "unused")
