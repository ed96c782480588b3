"""The headline game day (scenarios/metadata_loss.py) end to end: its wall time and the
share of it that is harness overhead, and the rates of its two data-moving recovery steps.
Goals: overhead under 10%, the Kafka replay at least 150,000 rows/s, the reconciliation at
least 5 M rows/s (compared rows).

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
REPLAY_GOAL = 150_000
RECONCILE_GOAL = 5_000_000
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
    print(f"goal overhead < {GOAL * 100:.0f}%: {'met' if overhead < GOAL else 'NOT met'}")
    steps = {p.name: p for p in report.phases if p.kind == "recovery_step"}
    for label, prefix, goal in (
        ("Kafka replay", "replay Kafka", REPLAY_GOAL),
        ("reconciliation", "reconcile", RECONCILE_GOAL),
    ):
        phase = next((p for name, p in steps.items() if name.startswith(prefix)), None)
        if phase is None or not phase.rate_per_s:
            print(f"{label}: no rate in this run")
            continue
        met = "met" if phase.rate_per_s >= goal else "NOT met"
        print(f"{label:<23} {phase.rate_per_s:>10,.0f} rows/s over {phase.rows or 0:,} rows; goal ≥ {goal:,}: {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
