"""Query latency through Trino's client protocol on the embedded stack.

Brings up a throwaway embedded stack, waits for rows, then times ``SELECT count(*) FROM
dwh.orders`` as dashboards and probes run it: the harness's Trino client (a fresh
connection per query, POST /v1/statement then the nextUri pages) through the fault
proxy's ``query`` path. Prints the median and p95 of ``--queries`` queries.

    python bench/query_latency.py [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from datadrill.backends.embedded import EmbeddedBackend
from datadrill.backends.stackd.manager import stack_down
from datadrill.config import parse_config
from datadrill.paths import StatePaths
from datadrill.session import start_stack

SQL = "SELECT count(*) FROM dwh.orders"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datadrill-bench-") as tmp:
        paths = StatePaths(Path(tmp) / ".datadrill")
        stack = start_stack(EmbeddedBackend(), paths, parse_config({}, source="bench"), timeout_s=90)
        try:
            client = stack.mart_queries(timeout_s=10)
            deadline = time.monotonic() + 60
            while client.rows(SQL)[0][0] == 0:
                if time.monotonic() > deadline:
                    print("no rows in dwh.orders after 60 s", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            times = []
            for _ in range(args.queries):
                began = time.monotonic()
                client.rows(SQL)
                times.append(time.monotonic() - began)
        finally:
            stack_down(paths)
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(
        f"{SQL} through the Trino protocol ({args.queries} queries, the workload running): "
        f"median {statistics.median(times) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
