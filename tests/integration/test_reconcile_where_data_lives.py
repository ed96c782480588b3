"""Reconciliation where the data lives, on the embedded stack: the same table reconciled
with its counts and hashes in Trino's SQL through the stack's Trino-protocol endpoint
(``stack status``'s ``query-engine`` URL, as a compose or external stack's Trino gets them)
and in the harness's in-process DuckDB, finds the same missing, changed, duplicated and
unexpected keys; the Reconcile step on a stack whose queries go to Trino says so."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.exceptions import NamespaceAlreadyExistsError

from datadrill.clock import MonotonicClock
from datadrill.faults.base import DrillContext
from datadrill.integrity.reconcile import EngineSide, TrinoSide, reconcile
from datadrill.integrity.targets import SinkEngine, target_sides
from datadrill.interfaces.trino_client import TrinoQueryEngine
from datadrill.model.slo import Target
from datadrill.recovery.reconcile_step import live_reconcile
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

BASE_US = 1_767_000_000_000_000
TARGET = Target(
    table="team.enriched",
    key_column="id",
    columns=("amount", "country", "shipped_at", "express"),
    source_query="SELECT id, amount, country, shipped_us AS shipped_at, express FROM sales",
)


def _endpoint(stack: StackClient) -> str:
    return stack.status().component("query-engine").endpoint


@pytest.fixture(scope="module")
def damaged(stack: StackClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """A source of 5,000 sales and the team's Iceberg table in the stack's catalog with two
    rows missing, one country and one timestamp (by 1 µs) changed, one row twice and one
    row the source does not have."""
    source = [
        (k, k * 7 % 1000, ["DE", "FR", "ÉS", None][k % 4], BASE_US + k * 1_001, k % 2) for k in range(1, 5001)
    ]
    db = sqlite3.connect(tmp_path_factory.mktemp("source") / "sales.db")
    db.execute(
        "CREATE TABLE sales (id INTEGER PRIMARY KEY, amount INTEGER, country TEXT, shipped_us INTEGER, express INTEGER)"
    )
    db.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", source)
    db.commit()
    sink: dict[int, tuple[Any, ...]] = {row[0]: row[1:] for row in source}
    del sink[17], sink[4321]
    sink[300] = (sink[300][0], "PL", *sink[300][2:])
    sink[2222] = (*sink[2222][:2], sink[2222][2] + 1, sink[2222][3])
    sink[9000] = (1, "XX", BASE_US, 0)
    keys = [*sink, 2500]
    table = pa.table(
        {
            "id": pa.array(keys, pa.int64()),
            "amount": pa.array([sink[k][0] for k in keys], pa.int32()),
            "country": pa.array([sink[k][1] for k in keys], pa.string()),
            "shipped_at": pa.array([sink[k][2] for k in keys], pa.timestamp("us", tz="UTC")),
            "express": pa.array([bool(sink[k][3]) for k in keys], pa.bool_()),
        }
    )
    catalog = stack.catalog()
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace("team")
    iceberg = catalog.create_table("team.enriched", schema=table.schema)
    iceberg.append(table)
    try:
        yield db
    finally:
        db.close()
        catalog.drop_table("team.enriched")


def _findings(result: Any) -> tuple[tuple[int, ...], ...]:
    return (result.omissions, result.discrepancies, result.duplicates, result.unexpected)


def test_trino_and_in_process_duckdb_find_the_same_keys(
    stack: StackClient, damaged: sqlite3.Connection
) -> None:
    endpoint = _endpoint(stack)
    trino = SinkEngine(trino=TrinoQueryEngine.from_url(endpoint, timeout_s=120), url=endpoint)
    source, in_trino = target_sides(TARGET, damaged, trino)
    assert isinstance(in_trino, TrinoSide)
    via_trino = reconcile(source, in_trino, leaf_rows=100)

    engine = stack.query_engine()
    try:
        local = SinkEngine(local=engine)
        source, in_process = target_sides(TARGET, damaged, local)
        assert isinstance(in_process, EngineSide)
        via_duckdb = reconcile(source, in_process, leaf_rows=100)
    finally:
        engine.close()

    expected = ((17, 4321), (300, 2222), (2500,), (9000,))
    assert _findings(via_trino) == expected, via_trino.describe()
    assert _findings(via_duckdb) == expected, via_duckdb.describe()
    assert (
        (via_trino.source_rows, via_trino.sink_rows)
        == (via_duckdb.source_rows, via_duckdb.sink_rows)
        == (5000, 5000)
    )
    # Only the damaged ranges came back over the protocol, not the table.
    assert via_trino.rows_fetched < 2000, via_trino.describe()
    assert trino.where == f"counts and hashes: Trino at {endpoint}"
    assert local.where == "counts and hashes: DuckDB in process"


class _StackBehindTrino:
    """The embedded stack as a stack whose queries go to Trino (a compose or external
    one's): its query client says ``dialect = "trino"``; everything else is the stack's."""

    def __init__(self, stack: StackClient) -> None:
        self._stack = stack

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stack, name)

    def mart_queries(self, *, timeout_s: float = 2.0) -> TrinoQueryEngine:
        engine = TrinoQueryEngine.from_url(_endpoint(self._stack), timeout_s=timeout_s)
        engine.dialect = "trino"
        return engine


def test_the_reconcile_step_runs_in_trino_and_says_so(stack: StackClient, tmp_path: Path) -> None:
    # The reference table named as a user's target would be: explicit columns, the source
    # query aliasing created_at_us to the table's created_at (a timestamp with a zone).
    target = Target(
        columns=("customer_id", "amount_cents", "currency", "status", "created_at"),
        source_query=(
            "SELECT order_id, customer_id, amount_cents, currency, status, created_at_us AS created_at FROM orders"
        ),
    )
    behind_trino = DrillContext(_StackBehindTrino(stack), tmp_path, MonotonicClock())
    via_trino = live_reconcile(behind_trino, target=target)
    assert via_trino.engine == f"counts and hashes: Trino at {_endpoint(stack)}"
    assert via_trino.describe().endswith(via_trino.engine)
    assert via_trino.source_rows > 0 and via_trino.exact, via_trino.describe()
    in_process = live_reconcile(DrillContext(stack, tmp_path, MonotonicClock()), target=target)
    assert in_process.engine == "counts and hashes: DuckDB in process"
    assert in_process.exact and in_process.source_rows >= via_trino.source_rows, in_process.describe()
