"""Every scenario under scenarios/ on embedded stacks: each verdict and wall time, and the
total. The CDC scenarios run on a second stack with a PostgreSQL source and the CDC relay
(they are refused on the first). Goal: the whole set in under 5 minutes on 2 cores.

    python bench/all_scenarios.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import bench_stack
from datadrill.config import parse_config
from datadrill.engine.loader import discover, load_scenario
from datadrill.engine.preflight import check_config_source
from datadrill.engine.runner import Runner
from datadrill.errors import ConfigError
from datadrill.model.scenario import Scenario

GOAL_S = 300.0
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


CDC: dict[str, dict[str, object]] = {"source": {"server": "postgresql"}, "relay": {"mode": "cdc"}}


def _needs_cdc(scenario: Scenario) -> bool:
    try:
        check_config_source(scenario, parse_config({}, source="bench"), source=scenario.name)
    except ConfigError:
        return True
    return False


def main() -> int:
    scenarios = [load_scenario(path) for path in discover(SCENARIOS)]
    groups = [
        ("", [s for s in scenarios if not _needs_cdc(s)]),
        (" (PostgreSQL source, CDC relay)", [s for s in scenarios if _needs_cdc(s)]),
    ]
    started = time.monotonic()
    failures = 0
    for (label, group), settings in zip(groups, ({}, CDC), strict=True):
        if group:
            failures += _run_group(label, group, settings)
    total = time.monotonic() - started
    print(f"whole set: {total:.1f} s including stack start-up ({failures} not passed)")
    print(f"goal < {GOAL_S:.0f} s: {'met' if total < GOAL_S and not failures else 'NOT met'}")
    return 0 if failures == 0 else 1


def _run_group(label: str, scenarios: list[Scenario], settings: dict[str, dict[str, object]]) -> int:
    started = time.monotonic()
    failures = 0
    with bench_stack(settings) as stack, tempfile.TemporaryDirectory(prefix="datadrill-bench-") as tmp:
        up_s = time.monotonic() - started
        print(f"stack{label} up in {up_s:.1f} s; {len(scenarios)} scenarios")
        for scenario in scenarios:
            t0 = time.monotonic()
            report = Runner(scenario, stack=stack, run_dir=Path(tmp) / scenario.name).run()
            elapsed = time.monotonic() - t0
            ttd = f"{report.ttd_s:5.1f} s" if report.ttd_s is not None else "    —  "
            ttr = f"{report.ttr_s:5.1f} s" if report.ttr_s is not None else "    —  "
            print(
                f"{scenario.name:28} {report.verdict.value:14} {elapsed:6.1f} s   detect {ttd}  recover {ttr}"
            )
            failures += report.verdict.value != "passed"
    return failures


if __name__ == "__main__":
    sys.exit(main())
