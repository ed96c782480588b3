"""Exactly-once check of the reference platform: source ``orders`` against ``dwh.orders``.

The comparison runs in DuckDB: the source order ids are handed over as an Arrow column and
joined with the sink table resolved through the catalog. (Reconciliation by key ranges and
hash bisection, for tables too big to hand over, belongs to the recovery toolkit.)

Example::

    result = check_exactly_once(stack)
    assert result.exact, result.describe()
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pyarrow as pa

from datadrill.platform.query import QueryEngine
from datadrill.platform.source_conn import SourceConnection, as_source


@dataclass(frozen=True)
class ExactlyOnceResult:
    source_orders: int
    sink_rows: int
    duplicated_orders: int
    missing_orders: int
    unexpected_orders: int

    @property
    def exact(self) -> bool:
        return (
            self.duplicated_orders == 0
            and self.missing_orders == 0
            and self.unexpected_orders == 0
            and self.source_orders == self.sink_rows
        )

    def describe(self) -> str:
        return (
            f"source {self.source_orders} orders, sink {self.sink_rows} rows: "
            f"{self.duplicated_orders} duplicated, {self.missing_orders} missing, "
            f"{self.unexpected_orders} not in source"
        )


def source_order_ids(db: SourceConnection | sqlite3.Connection) -> pa.Table:
    ids = [row[0] for row in as_source(db).execute("SELECT order_id FROM orders").fetchall()]
    return pa.table({"order_id": pa.array(ids, type=pa.int64())})


def check_exactly_once(
    db: SourceConnection | sqlite3.Connection, engine: QueryEngine, *, table: str = "dwh.orders"
) -> ExactlyOnceResult:
    """Compare every source order with the sink table, in the query engine."""
    source = source_order_ids(db)
    engine.register_arrow("source_orders", source)
    (sink_rows, duplicated, missing, unexpected) = engine.rows(
        f"""
        WITH sink AS (SELECT order_id, count(*) AS n FROM {table} GROUP BY order_id)
        SELECT
          (SELECT count(*) FROM {table}),
          (SELECT count(*) FROM sink WHERE n > 1),
          (SELECT count(*) FROM source_orders s ANTI JOIN sink USING (order_id)),
          (SELECT count(*) FROM sink ANTI JOIN source_orders s USING (order_id))
        """,
        tables=(table,),
    )[0]
    return ExactlyOnceResult(source.num_rows, int(sink_rows), int(duplicated), int(missing), int(unexpected))
