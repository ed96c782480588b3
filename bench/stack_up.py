"""Stack-up time: from `datadrill stack up` until every component is healthy.

Runs the real CLI (a fresh interpreter each time, as a user would) several times in fresh
directories and prints each run and the median. Goal: under 2 s on 2 cores.

    python bench/stack_up.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 2.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "datadrill.cli"]
    times = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="datadrill-bench-") as tmp:
            state = str(Path(tmp) / ".datadrill")
            start = time.monotonic()
            subprocess.run([*cli, "stack", "up", "--state-dir", state], check=True, capture_output=True)
            up = time.monotonic() - start
            status = subprocess.run([*cli, "stack", "status", "--state-dir", state], capture_output=True)
            subprocess.run([*cli, "stack", "down", "--state-dir", state], check=True, capture_output=True)
        healthy = "healthy" if status.returncode == 0 else "NOT healthy"
        print(f"run {run}: stack up returned in {up:.2f}s, status {healthy}")
        times.append(up)
    median = statistics.median(times)
    spread = f"min {min(times):.2f}s, max {max(times):.2f}s"
    print(f"stack up (all components healthy): median {median:.2f}s, {spread}")
    print(f"goal < {GOAL_S:g}s: {'met' if median < GOAL_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
