"""The headline game day (scenarios/metadata_loss.py) end to end: its wall time and the
share of it that is harness overhead. Goal: overhead under 10%.

Overhead is the time the harness spends on its own work — probing the SLIs, evaluating
alert rules, journaling (fsync per event), measuring and rendering the reports — as a
share of the scenario's wall time. Stack start-up is reported apart: a CI suite starts
one stack for many scenarios.

    python bench/headline.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import bench_stack
from datadrill.engine.journal import read_journal
from datadrill.engine.loader import load_scenario
from datadrill.engine.runner import Runner
from datadrill.reporting import write_reports

GOAL = 0.10
SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "metadata_loss.py"


def main() -> int:
    scenario = load_scenario(SCENARIO)
    started = time.monotonic()
    with bench_stack({}) as stack:
        up_s = time.monotonic() - started
        with tempfile.TemporaryDirectory(prefix="datadrill-bench-") as tmp:
            run_dir = Path(tmp)
            runner = Runner(scenario, stack=stack, run_dir=run_dir)
            t0 = time.monotonic()
            report = runner.run()
            run_s = time.monotonic() - t0
            t1 = time.monotonic()
            write_reports(report, run_dir)
            reports_s = time.monotonic() - t1
            events = read_journal(run_dir / "journal.jsonl")
    finished = next(e for e in events if e["type"] == "run_finished")
    probe_s = float(finished["harness_probe_s"])
    wall = run_s + reports_s
    overhead = (probe_s + reports_s) / wall
    print(f"scenario {scenario.name}: verdict {report.verdict.value}")
    print(f"stack up                {up_s:8.2f} s (not counted)")
    print(f"scenario wall time      {wall:8.2f} s (run {run_s:.2f} s + reports {reports_s:.2f} s)")
    print(f"  probing + journaling  {probe_s:8.2f} s over {len(events):,} journal events")
    print(f"  reports               {reports_s:8.2f} s")
    print(f"harness overhead        {overhead * 100:8.1f} %")
    ttd = f"{report.ttd_s:.1f}" if report.ttd_s is not None else "-"
    ttr = f"{report.ttr_s:.1f}" if report.ttr_s is not None else "-"
    print(f"time to detect {ttd} s, time to recover {ttr} s, rows replayed {report.rows_replayed}")
    print(f"goal < {GOAL * 100:.0f}%: {'met' if overhead < GOAL else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
