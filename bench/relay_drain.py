"""The relay alone: how fast it drains a full outbox into Kafka, with the sink paused.

The workload fills the outbox while the relay and the sink are paused; then the workload
stops and the relay is resumed, and we time it until the outbox is empty. No other
platform process competes for the two cores, so this is the relay's own ceiling (the
throughput bench measures it beside the workload and the sink). Goal: ≥ 100,000 events/s.

    python bench/relay_drain.py [--events 400000] [--fill-rate 60000]
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import bench_stack
from datadrill.engine.wait import wait_until
from datadrill.stack.client import StackClient

GOAL_PER_S = 100_000


def _depth(stack: StackClient) -> int:
    with stack.source() as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400_000, help="outbox events to drain")
    parser.add_argument("--fill-rate", type=float, default=60_000, help="orders/s while filling")
    args = parser.parse_args()
    with bench_stack({"workload": {"rate": args.fill_rate, "canary_interval_s": 1.0}}) as stack:
        stack.components.pause("relay")
        stack.components.pause("sink")
        wait_until(lambda: _depth(stack) >= args.events, timeout=600, interval=0.5, what="the outbox to fill")
        stack.workload.set(rate=0)
        time.sleep(1)
        events = _depth(stack)
        started = time.monotonic()
        stack.components.resume("relay")
        wait_until(lambda: _depth(stack) == 0, timeout=600, interval=0.1, what="the outbox to drain")
        elapsed = time.monotonic() - started
    rate = events / elapsed
    print(f"relay drained {events:,} events in {elapsed:.2f} s (from its resume) = {rate:,.0f} events/s")
    print(f"goal ≥ {GOAL_PER_S:,} events/s: {'met' if rate >= GOAL_PER_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
