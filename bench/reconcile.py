"""Reconciliation throughput: rows compared per second, source against sink, in the engines.

Ten million orders are generated with DuckDB (``range()`` and arithmetic) into two Parquet
copies in a temporary directory; the second copy carries a handful of injected differences
(duplicated, missing, changed and unexpected keys). Both are reconciled with DuckDB
(``ParquetSide`` against ``ParquetSide``), every injected key must be found and nothing
else, and we print rows compared (both sides together, as ``ReconcileResult.compared_rows``
counts), seconds and rows/s. Goal: at least 10 million rows/s on 2 cores.

SQLite scans are the slow side, so the path with the real source engine (``SqliteSide``
over a one-million-row SQLite ``orders`` table against a Parquet copy) is printed
separately and is not held to that goal.

    python bench/reconcile.py [--rows 10000000] [--sqlite-rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from datadrill.integrity.reconcile import ParquetSide, ReconcileResult, SqliteSide, reconcile
from datadrill.platform.source_db import SCHEMA

GOAL_ROWS_PER_S = 10_000_000


@dataclass(frozen=True)
class Damage:
    """Keys whose sink copy is damaged, and how; the rest of the copy is identical."""

    duplicated: tuple[int, ...]
    missing: tuple[int, ...]
    changed_amount: tuple[int, ...]
    changed_status: tuple[int, ...]
    changed_created_at: tuple[int, ...]
    unexpected: tuple[int, ...]

    @classmethod
    def spread_over(cls, rows: int) -> Damage:
        return cls(
            duplicated=(17, rows // 2 + 3),
            missing=(42, rows * 7 // 9),
            changed_amount=(rows // 8 + 1,),
            changed_status=(rows * 9 // 10 + 1,),
            changed_created_at=(rows // 3,),
            unexpected=(rows + 10, rows + 11),
        )


def _in(keys: tuple[int, ...]) -> str:
    return ", ".join(str(k) for k in keys)


def orders_sql(rows: int) -> str:
    """``rows`` orders in the sink's layout, cheap to generate and not trivially compressible."""
    return f"""
        SELECT i AS order_id,
               (i * 7919) % 100000 AS customer_id,
               (i * 104729) % 1000000 - 5000 AS amount_cents,
               ['EUR', 'USD', 'GBP', 'CHF'][1 + i % 4] AS currency,
               ['created', 'paid', 'shipped', 'cancelled', 'refunded'][1 + (i * 31) % 5] AS status,
               make_timestamptz(1700000000000000 + i * 1000) AS created_at
        FROM range(1, {rows + 1}) t(i)
    """


def damaged_sql(rows: int, damage: Damage) -> str:
    return f"""
        WITH o AS ({orders_sql(rows)})
        SELECT order_id, customer_id,
               CASE WHEN order_id IN ({_in(damage.changed_amount)})
                    THEN amount_cents + 1 ELSE amount_cents END AS amount_cents,
               currency,
               CASE WHEN order_id IN ({_in(damage.changed_status)}) THEN 'paiD' ELSE status END AS status,
               CASE WHEN order_id IN ({_in(damage.changed_created_at)})
                    THEN created_at + INTERVAL 1 MICROSECOND ELSE created_at END AS created_at
        FROM o WHERE order_id NOT IN ({_in(damage.missing)})
        UNION ALL SELECT * FROM o WHERE order_id IN ({_in(damage.duplicated)})
        UNION ALL SELECT order_id, 1, 100, 'EUR', 'created', make_timestamptz(1700000000000000)
                  FROM (SELECT unnest([{_in(damage.unexpected)}]) AS order_id)
    """


def check(result: ReconcileResult, damage: Damage) -> None:
    expected = {
        "duplicates": damage.duplicated,
        "omissions": damage.missing,
        "discrepancies": tuple(
            sorted(damage.changed_amount + damage.changed_status + damage.changed_created_at)
        ),
        "unexpected": damage.unexpected,
    }
    for name, keys in expected.items():
        found = getattr(result, name)
        if found != tuple(sorted(keys)):
            raise SystemExit(f"reconcile found {name} {found}, expected {keys}: {result.describe()}")


def write_parquet(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> None:
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")


def duckdb_path(tmp: Path, rows: int, runs: int) -> float:
    con = duckdb.connect()
    started = time.monotonic()
    write_parquet(con, orders_sql(rows), tmp / "source.parquet")
    damage = Damage.spread_over(rows)
    write_parquet(con, damaged_sql(rows, damage), tmp / "sink.parquet")
    con.close()
    print(f"generated 2 × {rows:,} rows of Parquet in {time.monotonic() - started:.1f} s")
    rates = []
    for run in range(1, runs + 1):
        with (
            ParquetSide([tmp / "source.parquet"], name="source copy") as source,
            ParquetSide([tmp / "sink.parquet"], name="sink copy") as sink,
        ):
            result = reconcile(source, sink)
        check(result, damage)
        rates.append(result.rows_per_s)
        print(
            f"run {run}: {result.compared_rows:,} rows compared ({result.source_rows:,} source + "
            f"{result.sink_rows:,} sink) in {result.elapsed_s:.2f} s = {result.rows_per_s:,.0f} rows/s; "
            f"{result.affected} keys found, {result.queries} queries, {result.ranges_examined} ranges, "
            f"{result.rows_fetched:,} (key, hash) pairs fetched"
        )
    return statistics.median(rates)


def sqlite_path(tmp: Path, rows: int) -> None:
    con = duckdb.connect()
    damage = Damage.spread_over(rows)
    write_parquet(con, damaged_sql(rows, damage), tmp / "sink-small.parquet")
    source = con.execute(
        f"SELECT order_id, customer_id, amount_cents, currency, status, epoch_us(created_at), false "
        f"FROM ({orders_sql(rows)})"
    ).fetchall()
    db = sqlite3.connect(tmp / "source.db")
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", source)
    db.commit()
    del source
    with ParquetSide([tmp / "sink-small.parquet"], name="sink copy") as sink:
        result = reconcile(SqliteSide(db), sink)
    db.close()
    check(result, damage)
    print(
        f"SQLite source path (SqliteSide over {rows:,} rows vs ParquetSide): "
        f"{result.compared_rows:,} rows compared in {result.elapsed_s:.2f} s = {result.rows_per_s:,.0f} rows/s "
        f"(SQLite is the slow side; not held to the goal)"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows per side, DuckDB path")
    parser.add_argument("--sqlite-rows", type=int, default=1_000_000, help="rows per side, SQLite path")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    # Two cores shared with anything else running: the load says how much the figures mean.
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="datadrill-bench-") as name:
        tmp = Path(name)
        median = duckdb_path(tmp, args.rows, args.runs)
        print(
            f"DuckDB path (ParquetSide vs ParquetSide, {args.rows:,} rows per side): median {median:,.0f} rows/s"
        )
        print(
            f"goal ≥ {GOAL_ROWS_PER_S:,} rows/s compared: {'met' if median >= GOAL_ROWS_PER_S else 'NOT met'}"
        )
        sqlite_path(tmp, args.sqlite_rows)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
