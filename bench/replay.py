"""ReplayKafka alone: rows per second re-ingested from Kafka into the table.

The sink is paused while the workload and the relay put ``--messages`` orders into Kafka;
then the workload stops and ``ReplayKafka(workers=4)`` replays them from the table's
offsets: first measured (consumed and decoded, nothing committed), then applied (the
Iceberg commit included). The headline run replays ~21,000 rows, where a replay's fixed
part (consumers joining, the commit) weighs more; this is the per-row rate. Goal:
≥ 150,000 rows/s.

    python bench/replay.py [--messages 60000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import bench_stack
from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.model.recovery import ReplayKafka
from datadrill.platform.component import read_heartbeat
from datadrill.recovery.replay import replay_kafka
from datadrill.stack.client import StackClient

GOAL_ROWS_PER_S = 150_000


def _published(stack: StackClient) -> int:
    beat = read_heartbeat(stack.paths, "relay") or {}
    return int(beat.get("marked", beat.get("published", 0)))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=60_000, help="orders to put into Kafka first")
    args = parser.parse_args()
    with bench_stack({"workload": {"rate": 20_000, "canary_interval_s": 1.0}}) as stack:
        stack.components.pause("sink")
        wait_until(
            lambda: _published(stack) >= args.messages, timeout=600, interval=0.2, what="the orders to reach Kafka"
        )
        stack.workload.set(rate=0)
        time.sleep(3)  # the relay publishes what is left in the outbox
        with tempfile.TemporaryDirectory(prefix="datadrill-bench-") as tmp:
            context = DrillContext(stack, Path(tmp), MonotonicClock())
            for apply in (False, True):
                result = replay_kafka(ReplayKafka(workers=4), context, apply=apply)
                what = "applied " if apply else "measured"
                print(
                    f"{what}: {result.rows:,} rows from {result.messages:,} messages, {result.commits} commit(s), "
                    f"{result.elapsed_s:.2f} s = {result.rate_per_s:,.0f} rows/s"
                )
    print(f"goal ≥ {GOAL_ROWS_PER_S:,} rows/s (applied): {'met' if result.rate_per_s >= GOAL_ROWS_PER_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
