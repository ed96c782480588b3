"""CDC beside polling, and the two ways back, on one machine.

For each of three stacks — SQLite with the polling relay, PostgreSQL with the polling
relay, PostgreSQL with the CDC relay (a logical replication slot, pgoutput) — the workload
offers more orders per second than the pipeline carries; after a warm-up the rows the sink
commits per second are the sustained end-to-end throughput. Then, on the same stack, a gap
of about ``--gap`` orders is made that the relay will never publish — with the CDC relay
its slot is dropped while it is stopped (as ``DropReplicationSlot`` does under load), with
the polling relay the outbox events are deleted while it is paused — and
``ResnapshotFromSource`` brings them back through the outbox (its rate: rows over the
whole step, finding the gap by reconciliation included). Last, ``ReplayKafka`` replays the
stack's topic from the earliest offsets with the sink paused, into the table made anew
and empty (its catalog entry dropped, as the metadata-loss fault does): the Kafka way back,
every message on the topic written again (the bench stack is discarded). Into the table
as it was, the replay's exactly-once rule would drop every message it already holds.

Needs the PostgreSQL server binaries (scripts/install-system-deps.sh) for the PostgreSQL
stacks; bounded: about 1.5 minutes per stack with the defaults.

    python bench/cdc.py [--offered 20000] [--seconds 10] [--gap 20000] [--stacks sqlite-poll,postgresql-poll,postgresql-cdc]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import bench_stack
from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.model import ReplayKafka, ResnapshotFromSource
from datadrill.platform import source_db
from datadrill.platform.catalog import ensure_orders_table
from datadrill.platform.component import read_heartbeat
from datadrill.recovery import run_step
from datadrill.recovery.replay import replay_kafka
from datadrill.stack.client import StackClient

STACKS = {
    "sqlite-poll": {"source": {"server": "sqlite"}, "relay": {"mode": "poll"}},
    "postgresql-poll": {"source": {"server": "postgresql"}, "relay": {"mode": "poll"}},
    "postgresql-cdc": {"source": {"server": "postgresql"}, "relay": {"mode": "cdc"}},
}


@dataclass(frozen=True)
class Figures:
    stack: str
    written_per_s: float
    relay_per_s: float
    sink_per_s: float
    gap_rows: int
    resnapshot_rows: int
    resnapshot_per_s: float
    resnapshot_find_s: float
    resnapshot_write_s: float
    resnapshot_s: float
    replay_rows: int
    replay_per_s: float


def _counters(stack: StackClient) -> tuple[float, int, int, int]:
    sink = read_heartbeat(stack.paths, "sink") or {}
    relay = read_heartbeat(stack.paths, "relay") or {}
    work = read_heartbeat(stack.paths, "workload") or {}
    return (
        time.monotonic(),
        int(work.get("orders_written", 0)),
        int(relay.get("marked", relay.get("published", 0))),
        int(sink.get("rows_committed", 0)),
    )


def _depth(stack: StackClient) -> int:
    with stack.source() as db:
        return source_db.outbox_depth(db)


def _drained(stack: StackClient, timeout: float = 180) -> None:
    wait_until(lambda: _depth(stack) == 0, timeout=timeout, interval=0.2, what="the outbox to drain")


def _make_gap(stack: StackClient, rows: int, rate: float) -> int:
    """Stop the relay, let about ``rows`` orders pile up in the outbox, then make sure they
    are never published. Returns the outbox depth lost."""
    cdc = stack.config.relay.mode == "cdc"
    stack.components.pause("relay")
    try:
        stack.workload.set(rate=rate)
        wait_until(lambda: _depth(stack) >= rows, timeout=300, interval=0.1, what=f"{rows} outbox events")
        stack.workload.set(rate=rate / 10)
        with stack.source() as db:
            lost = source_db.outbox_depth(db)
            if cdc:
                # The relay is stopped, so its slot is inactive and can be dropped: the new
                # one the relay makes starts after these inserts (DropReplicationSlot's effect).
                db.execute("SELECT pg_drop_replication_slot(?)", (stack.config.relay.slot,))
            else:
                db.execute("DELETE FROM outbox")
    finally:
        stack.components.resume("relay")
    return int(lost)


def _empty_table(stack: StackClient) -> None:
    """The sink's table lost (its catalog entry dropped, the files left) and made anew,
    empty: nothing in it for the replay's exactly-once rule to drop."""
    catalog = stack.catalog()
    catalog.drop_table(stack.table)
    ensure_orders_table(catalog, stack.table)


def bench(name: str, *, offered: float, seconds: float, warmup: float, gap: int, run_dir: Path) -> Figures:
    settings = {
        **STACKS[name],
        "workload": {"rate": offered, "canary_interval_s": 1.0},
    }
    with bench_stack(settings) as stack:
        time.sleep(warmup)
        t0, w0, r0, s0 = _counters(stack)
        time.sleep(seconds)
        t1, w1, r1, s1 = _counters(stack)
        elapsed = t1 - t0
        stack.workload.set(rate=500)
        _drained(stack)
        context = DrillContext(stack, run_dir, MonotonicClock())
        lost = _make_gap(stack, gap, rate=5_000)
        step = run_step(ResnapshotFromSource(workers=4, chunk_rows=5000), context)
        extra = step.extra or {}
        stack.workload.set(rate=0)
        _drained(stack)
        stack.components.pause("sink")
        try:
            _empty_table(stack)
            replay = replay_kafka(ReplayKafka(workers=4, start="earliest"), context)
        finally:
            stack.components.resume("sink")
    return Figures(
        stack=name,
        written_per_s=(w1 - w0) / elapsed,
        relay_per_s=(r1 - r0) / elapsed,
        sink_per_s=(s1 - s0) / elapsed,
        gap_rows=lost,
        resnapshot_rows=step.rows or 0,
        resnapshot_per_s=step.rate_per_s or 0.0,
        resnapshot_find_s=float(str(extra.get("find_s", 0.0))),
        resnapshot_write_s=float(str(extra.get("write_s", 0.0))),
        resnapshot_s=(step.rows or 0) / step.rate_per_s if step.rate_per_s else 0.0,
        replay_rows=replay.rows,
        replay_per_s=replay.rate_per_s,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--offered", type=float, default=20_000, help="orders/s the workload tries to write")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput window per stack")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--gap", type=int, default=20_000, help="orders lost to the relay, then re-snapshotted"
    )
    parser.add_argument("--stacks", default=",".join(STACKS), help=f"comma-separated: {', '.join(STACKS)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.stacks.split(",") if n.strip()]
    unknown = [n for n in names if n not in STACKS]
    if unknown or args.gap < 1:
        print(f"--stacks {args.stacks!r} / --gap {args.gap}: stacks are {', '.join(STACKS)}; the gap is ≥ 1")
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="datadrill-bench-cdc-") as tmp:
        for name in names:
            print(f"{name}: …", flush=True)
            run_dir = Path(tmp) / name
            run_dir.mkdir()
            results.append(
                bench(
                    name,
                    offered=args.offered,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    gap=args.gap,
                    run_dir=run_dir,
                )
            )
    print()
    print(
        f"offered {args.offered:,.0f} orders/s; throughput over {args.seconds:g} s after {args.warmup:g} s warm-up"
    )
    print(
        f"{'stack':<16} {'written/s':>10} {'relay/s':>10} {'sink/s':>10} │ {'gap':>7} {'re-snap':>8} "
        f"{'rows/s':>8} {'find s':>7} {'write s':>8} {'total s':>8} │ {'replayed':>9} {'rows/s':>8}"
    )
    for f in results:
        print(
            f"{f.stack:<16} {f.written_per_s:>10,.0f} {f.relay_per_s:>10,.0f} {f.sink_per_s:>10,.0f} │ "
            f"{f.gap_rows:>7,} {f.resnapshot_rows:>8,} {f.resnapshot_per_s:>8,.0f} {f.resnapshot_find_s:>7.1f} "
            f"{f.resnapshot_write_s:>8.2f} "
            f"{f.resnapshot_s:>8.1f} │ {f.replay_rows:>9,} {f.replay_per_s:>8,.0f}"
        )
    print()
    print("sink/s: sustained end-to-end throughput (rows committed to dwh.orders per second).")
    print("re-snap rows/s: ResnapshotFromSource(workers=4, chunk_rows=5000) over the whole step (reconcile,")
    print(
        "write into the outbox, relay → Kafka → sink until the table holds every row); find s: the reconciliation "
        "that found the gap; write s: the outbox writes; the rest is the pipeline carrying them."
    )
    print(
        "replay: ReplayKafka(workers=4, start='earliest') of the whole topic, sink paused, into the table "
        "made anew and empty (every message written again)."
    )
    print("command: python bench/cdc.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
