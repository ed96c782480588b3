"""Reconciliation throughput: rows compared per second, source against sink, in the engines.

Ten million orders are generated with DuckDB (``range()`` and arithmetic) into two Parquet
copies in a temporary directory; the second copy carries a handful of injected differences
(duplicated, missing, changed and unexpected keys). Both are reconciled with DuckDB
(``ParquetSide`` against ``ParquetSide``), every injected key must be found and nothing
else, and we print rows compared (both sides together, as ``ReconcileResult.compared_rows``
counts), seconds and rows/s. Goal: at least 15 million rows/s on 2 cores.

SQLite scans are the slow side, so the path with the real source engine (``SourceSide``
over a one-million-row SQLite ``orders`` table against a Parquet copy) is printed
separately and is not held to that goal. With ``--source postgresql`` the same rows are
also loaded into a throwaway PostgreSQL server (the embedded stack's, from the system's
binaries; or ``--pg-uri``) and reconciled against the same Parquet copy, the counts and
hashes running in PostgreSQL: both source engines' rates are printed side by side.
``--rows 0`` skips the DuckDB path.

    python bench/reconcile.py [--rows 10000000] [--sqlite-rows 1000000] [--runs 3]
                              [--source sqlite|postgresql] [--pg-uri postgresql://...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

# The synthetic orders are the calibration's (datadrill calibrate): one generator for both.
from datadrill.engine.calibration import (
    fill_sqlite_orders,
    orders_sql,
    source_orders_sql,
    throwaway_postgres,
    write_parquet,
)
from datadrill.integrity.reconcile import ParquetSide, ReconcileResult, SourceSide, reconcile
from datadrill.platform.source_conn import SourceConnection

GOAL_ROWS_PER_S = 15_000_000


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


def source_runs(
    name: str, source: SourceSide, sink_file: Path, damage: Damage, rows: int, runs: int
) -> float:
    """Reconcile ``source`` against the Parquet sink ``runs`` times; the median rate."""
    rates = []
    for run in range(1, runs + 1):
        with ParquetSide([sink_file], name="sink copy") as sink:
            result = reconcile(source, sink)
        check(result, damage)
        rates.append(result.rows_per_s)
        print(
            f"{name} source, run {run}: {result.compared_rows:,} rows compared in {result.elapsed_s:.2f} s "
            f"= {result.rows_per_s:,.0f} rows/s; {result.queries} queries, "
            f"{result.rows_fetched:,} (key, hash) pairs fetched"
        )
    median = statistics.median(rates)
    print(f"{name} source path (SourceSide over {rows:,} rows vs ParquetSide): median {median:,.0f} rows/s")
    return median


def sqlite_path(tmp: Path, rows: int, runs: int) -> float:
    con = duckdb.connect()
    damage = Damage.spread_over(rows)
    write_parquet(con, damaged_sql(rows, damage), tmp / "sink-small.parquet")
    con.close()
    db = sqlite3.connect(tmp / "source.db")
    fill_sqlite_orders(db, rows)
    try:
        return source_runs("SQLite", SourceSide(db), tmp / "sink-small.parquet", damage, rows, runs)
    finally:
        db.close()


def postgres_path(tmp: Path, rows: int, runs: int, uri: str | None) -> float:
    from datadrill.platform import source_db

    damage = Damage.spread_over(rows)
    csv = tmp / "orders.csv"
    con = duckdb.connect()
    con.execute(f"COPY ({source_orders_sql(rows)}) TO '{csv}' (FORMAT csv, HEADER false)")
    con.close()
    with contextlib.ExitStack() as stack:
        target = uri or stack.enter_context(throwaway_postgres(tmp))
        db: SourceConnection = stack.enter_context(source_db.connect(target))
        started = time.monotonic()
        db.execute("DROP TABLE IF EXISTS bench_orders")
        db.execute("CREATE TABLE bench_orders (LIKE orders INCLUDING ALL)")
        with csv.open("rb") as data:
            db.raw.cursor().copy_expert("COPY bench_orders FROM STDIN WITH (FORMAT csv)", data)
        # Hint bits and statistics now, so that the first timed scan is not the one that sets them.
        db.execute("VACUUM ANALYZE bench_orders")
        print(f"loaded {rows:,} rows into PostgreSQL in {time.monotonic() - started:.1f} s")
        query = (
            "SELECT order_id, customer_id, amount_cents, currency, status, created_at_us FROM bench_orders"
        )
        try:
            return source_runs(
                "PostgreSQL", SourceSide(db, query=query), tmp / "sink-small.parquet", damage, rows, runs
            )
        finally:
            db.execute("DROP TABLE bench_orders")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows per side, DuckDB path")
    parser.add_argument("--sqlite-rows", type=int, default=1_000_000, help="rows per side, SQLite path")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--source",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="postgresql: also reconcile the same rows in PostgreSQL (a throwaway server unless --pg-uri)",
    )
    parser.add_argument("--pg-uri", default=None, help="a PostgreSQL database to load the rows into instead")
    args = parser.parse_args()
    if args.pg_uri is not None and args.source != "postgresql":
        parser.error(f"--pg-uri {args.pg_uri!r} needs --source postgresql")
    # Two cores shared with anything else running: the load says how much the figures mean.
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="datadrill-bench-") as name:
        tmp = Path(name)
        if args.rows > 0:
            median = duckdb_path(tmp, args.rows, args.runs)
            print(
                f"DuckDB path (ParquetSide vs ParquetSide, {args.rows:,} rows per side): median {median:,.0f} rows/s"
            )
            print(
                f"goal ≥ {GOAL_ROWS_PER_S:,} rows/s compared: {'met' if median >= GOAL_ROWS_PER_S else 'NOT met'}"
            )
        sqlite = sqlite_path(tmp, args.sqlite_rows, args.runs)
        if args.source == "postgresql":
            postgres = postgres_path(tmp, args.sqlite_rows, args.runs, args.pg_uri)
            print(
                f"same {args.sqlite_rows:,} rows: SQLite {sqlite:,.0f} rows/s, PostgreSQL {postgres:,.0f} rows/s "
                f"({postgres / sqlite:.2f}× SQLite's)"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
