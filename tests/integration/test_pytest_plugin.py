"""The pytest plugin, run for real with pytester: scenario modules collected as tests, an
SLO miss failing with a short summary, JUnit properties, the drill fixture, bad options.

Each inner pytest attaches to the session's stack (``--drill-stack DIR``), so no second
stack is started."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

pytest_plugins = ["pytester"]

SCENARIO = textwrap.dedent(
    """
    from datadrill.model import (
        SLO, Automatic, Expectations, HideTable, QuerySuccess, Scenario, SteadyState, ThresholdAlert, Workload,
    )

    SCENARIO = Scenario(
        name="{name}",
        description="dwh.orders hidden for 2 s",
        workload=Workload(rate=200, canary_interval_s=1.0),
        slos=(SLO("mart queries succeed", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=0.5)),),
        steady_state=SteadyState(warmup_s=1, timeout_s=60),
        schedule=(HideTable(at_s=1, duration_s=2, table="dwh.orders"),),
        recovery=Automatic(),
        expectations=Expectations(detect_within_s=5, recover_within_s={recover_within_s}),
        probe_interval_s=0.25,
        stabilisation_s=1,
        max_duration_s=30,
    )
    """
)


def _properties(xml_path: str) -> dict[str, dict[str, str]]:
    root = ET.parse(xml_path).getroot()
    found: dict[str, dict[str, str]] = {}
    for case in root.iter("testcase"):
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        found[case.get("name", "")] = props
    return found


def test_scenario_modules_run_as_tests(pytester: pytest.Pytester, stack: StackClient) -> None:
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "hide_ok.py").write_text(SCENARIO.format(name="hide-ok", recover_within_s=20))
    # Recovery takes 2 s at least; expecting it within 0.5 s must fail.
    (scenarios / "hide_too_strict.py").write_text(
        SCENARIO.format(name="hide-too-strict", recover_within_s=0.5)
    )
    (scenarios / "helpers.py").write_text("VALUE = 1\n")  # not a scenario: not collected
    result = pytester.runpytest_subprocess(
        "scenarios",
        "--drill-stack",
        str(stack.paths.root),
        "--drill-report-dir",
        "reports",
        "--junitxml",
        "junit.xml",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "drill 'hide-too-strict' SLO VIOLATED" in out
    assert "expected within 0.5 s" in out
    assert "mart queries succeed:" in out and "good during the drill (objective 99%)" in out
    assert "budget burned" in out and "MISSED" not in out
    assert "report: reports" in out
    assert "Traceback" not in out
    props = _properties(str(pytester.path / "junit.xml"))
    assert set(props) == {"hide_ok", "hide_too_strict"}
    for name in props:
        assert float(props[name]["time_to_detect_s"]) > 0
        assert float(props[name]["time_to_recover_s"]) >= 2.0
    assert props["hide_ok"]["drill_verdict"] == "passed"
    assert props["hide_too_strict"]["drill_verdict"] == "SLO violated"
    assert (pytester.path / props["hide_ok"]["drill_report"]).is_file()


def test_the_drill_fixture_runs_inline_scenarios(pytester: pytest.Pytester, stack: StackClient) -> None:
    pytester.makepyfile(
        test_suite=textwrap.dedent(
            """
            import pytest
            from datadrill.model import (
                SLO, Automatic, Expectations, HideTable, QuerySuccess, Scenario, SteadyState, ThresholdAlert,
            )

            def test_hidden_table_is_detected(drill):
                scenario = Scenario(
                    name="inline",
                    slos=(SLO("q", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=0.5)),),
                    steady_state=SteadyState(warmup_s=1, timeout_s=60),
                    schedule=(HideTable(at_s=1, duration_s=1.5),),
                    recovery=Automatic(),
                    probe_interval_s=0.25,
                    stabilisation_s=1,
                    max_duration_s=30,
                )
                report = drill.run(scenario)
                assert report.ttd_s is not None and report.ttr_s is not None
                assert report.ttr_s >= 1.5

            def test_not_a_drill():
                assert True
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-m", "drill", "--drill-stack", str(stack.paths.root), "--drill-seed", "7", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, deselected=1)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--drill-seed", "soon"), "--drill-seed soon"),
        (("--drill-seed", "-3"), "--drill-seed -3"),
        (("--drill-stack", "no/such/dir"), "--drill-stack no/such/dir"),
        (("--drill-stack", "compose"), "--drill-stack compose"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, ...], named: str) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert named in err and "Traceback" not in err


def test_the_example_resilience_suite_passes(pytester: pytest.Pytester, stack: StackClient) -> None:
    repo = Path(__file__).resolve().parents[2]
    suite = repo / "examples" / "resilience_suite" / "test_resilience.py"
    result = pytester.runpytest_subprocess(
        str(suite),
        "--drill-stack",
        str(stack.paths.root),
        "--drill-report-dir",
        "reports",
        "--junitxml",
        "junit.xml",
        "-p",
        "no:cacheprovider",
        f"--rootdir={repo}",
    )
    result.assert_outcomes(passed=3)
    props = _properties(str(pytester.path / "junit.xml"))
    assert float(props["test_detection_and_recovery_are_measured_right"]["time_to_recover_s"]) > 0


def test_two_sessions_on_one_stack_take_turns(pytester: pytest.Pytester, stack: StackClient) -> None:
    """Two test sessions (two CI jobs, two xdist workers) drilling the same stack at once:
    the stack's run lease makes the second wait, so neither measures the other's fault."""
    import json
    import subprocess
    import sys

    sessions = []
    for name in ("turn-a", "turn-b"):
        folder = pytester.mkdir(name)
        (folder / f"{name.replace('-', '_')}.py").write_text(SCENARIO.format(name=name, recover_within_s=20))
        sessions.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    str(folder),
                    "--drill-stack",
                    str(stack.paths.root),
                    "--drill-report-dir",
                    str(folder / "reports"),
                    "-p",
                    "no:cacheprovider",
                    "-q",
                ],
                cwd=pytester.path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    spans = []
    for process in sessions:
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, out
    for name in ("turn-a", "turn-b"):
        (journal,) = (pytester.path / name / "reports").rglob("journal.jsonl")
        lines = [json.loads(line) for line in journal.read_text().splitlines()]
        spans.append((lines[0]["mono"], lines[-1]["mono"]))
    first, second = sorted(spans)
    assert first[1] <= second[0], spans  # one after the other, never overlapping
