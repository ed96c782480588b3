"""An example CI resilience suite: ordinary pytest, run by datadrill's pytest plugin.

    pytest examples/resilience_suite --junitxml=drill-junit.xml --drill-report-dir=drill-reports

Each test gets the session's stack (a throwaway embedded stack, or ``--drill-stack DIR``
for one started with ``datadrill stack up``). A drill that misses its expectations fails
with a short SLO summary; the full reports land in ``--drill-report-dir``, and the JUnit
XML carries time to detect and time to recover for each drill.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from datadrill.model import (
    SLO,
    Automatic,
    Expectations,
    NetworkFault,
    QuerySuccess,
    Scenario,
    SteadyState,
    ThresholdAlert,
)
from datadrill.pytest_plugin import Drill
from datadrill.search.machine import platform_machine
from datadrill.search.strategies import single_faults
from datadrill.stack.client import StackClient

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_detection_and_recovery_are_measured_right(drill: Drill) -> None:
    report = drill.run(SCENARIOS / "calibration.py")
    assert report.ttd_s is not None and report.ttd_s < 3
    assert report.ttr_s is not None and report.ttr_s < 8


def test_dashboards_ride_out_a_slow_query_path(drill: Drill) -> None:
    # 300 ms of extra latency, well inside the 5 s dashboards wait: nothing may alert.
    scenario = Scenario(
        name="slow-query-path",
        slos=(
            SLO(
                "dashboards answer",
                sli=QuerySuccess(timeout_s=5),
                objective=0.99,
                alert=ThresholdAlert(for_s=1),
            ),
        ),
        steady_state=SteadyState(warmup_s=1, timeout_s=60),
        schedule=(NetworkFault(at_s=1, duration_s=4, toxic="latency", attributes={"latency": 300}),),
        recovery=Automatic(),
        expectations=Expectations(recover_within_s=10),
        stabilisation_s=1,
        max_duration_s=30,
    )
    report = drill.run(scenario)
    assert report.ttd_s is None, "a 300 ms slowdown must not page anyone"


def test_no_crash_schedule_loses_an_order(drill_stack: StackClient, tmp_path: Path) -> None:
    # A small search: crashes (anywhere and mid-commit) and broker loss, a few steps each.
    machine = platform_machine(
        drill_stack,
        journal_dir=tmp_path / "search",
        faults=single_faults(include=("crash", "crash_mid_commit", "broker_loss"), max_duration_s=2),
        max_advance_s=1.0,
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=2,
            stateful_step_count=3,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
