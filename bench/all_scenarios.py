"""Every scenario under scenarios/ on one embedded stack: each verdict and wall time, and
the total. Goal: the whole set in under 5 minutes on 2 cores.

    python bench/all_scenarios.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import bench_stack
from datadrill.engine.loader import discover, load_scenario
from datadrill.engine.runner import Runner

GOAL_S = 300.0
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def main() -> int:
    paths = discover(SCENARIOS)
    started = time.monotonic()
    failures = 0
    with bench_stack({}) as stack, tempfile.TemporaryDirectory(prefix="datadrill-bench-") as tmp:
        up_s = time.monotonic() - started
        print(f"stack up in {up_s:.1f} s; {len(paths)} scenarios")
        for path in paths:
            scenario = load_scenario(path)
            t0 = time.monotonic()
            report = Runner(scenario, stack=stack, run_dir=Path(tmp) / scenario.name).run()
            elapsed = time.monotonic() - t0
            ttd = f"{report.ttd_s:5.1f} s" if report.ttd_s is not None else "    —  "
            ttr = f"{report.ttr_s:5.1f} s" if report.ttr_s is not None else "    —  "
            print(
                f"{scenario.name:28} {report.verdict.value:14} {elapsed:6.1f} s   detect {ttd}  recover {ttr}"
            )
            failures += report.verdict.value != "passed"
    total = time.monotonic() - started
    print(f"whole set: {total:.1f} s including stack start-up ({failures} not passed)")
    print(f"goal < {GOAL_S:.0f} s: {'met' if total < GOAL_S and not failures else 'NOT met'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
