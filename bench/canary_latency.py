"""Canary end-to-end latency at a steady rate: written to the source db → visible to a
query through the catalog. Goal: p99 under 500 ms at 2,000 orders/s.

A poller reloads the table through the catalog every few milliseconds; when a new
snapshot appears it asks DuckDB which canaries it now holds. Latency is the poller's
CLOCK_MONOTONIC at first sight minus the one the workload stamped in the source db
(the same clock for every process on the machine). The poll period bounds the error.

    python bench/canary_latency.py [--rate 2000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import MemorySampler, bench_stack, mib, percentile

GOAL_P99_S = 0.5


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--canary-interval", type=float, default=0.1)
    parser.add_argument("--poll", type=float, default=0.02)
    parser.add_argument("--warmup", type=float, default=5)
    args = parser.parse_args()
    settings = {"workload": {"rate": args.rate, "canary_interval_s": args.canary_interval}}
    latencies: list[float] = []
    with bench_stack(settings) as stack, MemorySampler(int(stack.state["pgid"])) as memory:
        catalog = stack.catalog()
        engine = stack.query_engine()
        time.sleep(args.warmup)
        with stack.source() as db:
            (start_id,) = db.execute("SELECT COALESCE(MAX(order_id), 0) FROM orders").fetchone()
        seen_snapshot = None
        last_id = start_id
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            table = catalog.load_table(stack.table)
            snapshot = table.current_snapshot()
            snapshot_id = snapshot.snapshot_id if snapshot else None
            if snapshot_id != seen_snapshot:
                seen_snapshot = snapshot_id
                rows = engine.rows(
                    f"SELECT order_id FROM {stack.table} WHERE is_canary AND order_id > ? ORDER BY order_id",
                    [last_id],
                )
                seen_ns = time.monotonic_ns()
                if rows:
                    ids = [r[0] for r in rows]
                    last_id = ids[-1]
                    with stack.source() as db:
                        placeholders = ",".join("?" * len(ids))
                        marks = db.execute(
                            f"SELECT emitted_mono_ns FROM canaries WHERE order_id IN ({placeholders})", ids
                        ).fetchall()
                    latencies.extend((seen_ns - m[0]) / 1e9 for m in marks)
            time.sleep(args.poll)
        engine.close()
    if not latencies:
        print("no canary became visible: the pipeline is not flowing")
        return 1
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(
        f"rate {args.rate:,.0f} orders/s, {len(latencies)} canaries over {args.seconds:g}s "
        f"(poll every {args.poll * 1000:.0f} ms)"
    )
    print(
        f"canary end-to-end latency: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )
    print(f"peak memory (all stack processes) {mib(memory.peak)}")
    print(f"goal p99 < {GOAL_P99_S:g}s: {'met' if p99 < GOAL_P99_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
