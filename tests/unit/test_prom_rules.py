"""Prometheus rules from SLOs (datadrill.reporting.prom_rules) and ``datadrill slo rules``:
structure, burn-rate factors from the objective, promtool's own checks and unit tests."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from datadrill.cli.main import main
from datadrill.engine.loader import discover, load_scenario
from datadrill.model import SLO, BurnRateAlert, QuerySuccess, ThresholdAlert
from datadrill.reporting.prom_rules import WORKBOOK_TIERS, duration, rule_groups, rules_yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
HEADLINE = SCENARIOS / "metadata_loss.py"
# What Prometheus accepts as an alert name and a recording rule's name.
ALERT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RECORD_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _alerts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _promtool(prometheus_bin: Path) -> str:
    return str(prometheus_bin.with_name("promtool"))


def test_duration_is_prometheus_syntax() -> None:
    assert [duration(s) for s in (30, 3600, 150, 2160, 2.5, 86_400 * 3)] == [
        "30s",
        "1h",
        "2m30s",
        "36m",
        "2500ms",
        "3d",
    ]


def test_workbook_factors_come_from_budget_share_and_window() -> None:
    # 2% of a 30-day budget in 1 h, 5% in 6 h, 10% in 1 d, 10% in 3 d (SRE Workbook).
    assert [round(t.factor, 6) for t in WORKBOOK_TIERS] == [14.4, 6.0, 3.0, 1.0]
    assert [t.short_window_s for t in WORKBOOK_TIERS] == [300, 1800, 7200, 21600]
    assert [t.severity for t in WORKBOOK_TIERS] == ["page", "page", "ticket", "ticket"]


def test_headline_rules_structure() -> None:
    scenario = load_scenario(HEADLINE)
    doc = rule_groups([scenario])
    (group,) = doc["groups"]
    assert group["name"] == "datadrill.metadata-loss"
    rules = group["rules"]
    first_alert = next(i for i, r in enumerate(rules) if "alert" in r)
    # Recording rules first: alerts read them within the same evaluation.
    assert all("record" in r for r in rules[:first_alert])
    assert all("alert" in r for r in rules[first_alert:])
    for rule in rules[:first_alert]:
        assert RECORD_NAME.match(rule["record"]), rule
    alerts = {r["alert"]: r for r in _alerts(doc)}
    assert all(ALERT_NAME.match(name) for name in alerts)
    statements = {s.name: s.statement() for s in scenario.slos}
    for rule in alerts.values():
        labels = rule["labels"]
        assert labels["scenario"] == "metadata-loss"
        assert labels["severity"] in ("page", "ticket")
        assert statements[labels["slo"]] in rule["annotations"]["description"]

    threshold = alerts["MetadataLossMartQueriesSucceedBad"]
    assert threshold["for"] == "2s"
    assert 'datadrill_sli_good{scenario="metadata-loss",slo="mart queries succeed"}' in threshold["expr"]

    # The scenario's own burn-rate rule: factor 10 of a 99% objective over 30 s and 5 s.
    own = alerts["MetadataLossConsumerLagBurnRate"]
    assert own["labels"]["severity"] == "page"
    assert own["expr"] == (
        '(slo:datadrill_sli_errors:ratio_rate30s{scenario="metadata-loss",slo="consumer lag"} > 0.1) and '
        '(slo:datadrill_sli_errors:ratio_rate5s{scenario="metadata-loss",slo="consumer lag"} > 0.1)'
    )
    # The Workbook's tiers, windows scaled so that its 1 h is the scenario's 30 s (1/120),
    # none shorter than 4 s; thresholds = factor x (1 - 0.99).
    expected = {
        "PageFast": ("0.144", "30s", "4s", "page"),
        "PageSlow": ("0.06", "3m", "15s", "page"),
        "TicketFast": ("0.03", "12m", "1m", "ticket"),
        "TicketSlow": ("0.01", "36m", "3m", "ticket"),
    }
    for tier, (threshold_text, long_w, short_w, severity) in expected.items():
        rule = alerts[f"MetadataLossConsumerLagErrorBudgetBurn{tier}"]
        assert rule["labels"]["severity"] == severity
        assert (rule["labels"]["long_window"], rule["labels"]["short_window"]) == (long_w, short_w)
        assert f"ratio_rate{long_w}{{" in rule["expr"] and f"ratio_rate{short_w}{{" in rule["expr"]
        assert rule["expr"].count(f"> {threshold_text})") == 2
    records = {r["record"] for r in group["rules"] if "record" in r}
    for window in ("4s", "5s", "15s", "30s", "1m", "3m", "12m", "36m"):
        assert f"slo:datadrill_sli_errors:ratio_rate{window}" in records


def test_burn_thresholds_follow_the_objective() -> None:
    from dataclasses import replace

    scenario = load_scenario(HEADLINE)
    slo = SLO("q", sli=QuerySuccess(), objective=0.999, alert=BurnRateAlert(3600, 300, 14.4))
    strict = replace(scenario, slos=(slo,))
    alerts = {r["alert"]: r for r in _alerts(rule_groups([strict]))}
    # 14.4 x 0.001; and with the declared long window at 1 h the Workbook's windows stand.
    fast = alerts["MetadataLossQErrorBudgetBurnPageFast"]
    assert "> 0.0144)" in fast["expr"]
    assert (fast["labels"]["long_window"], fast["labels"]["short_window"]) == ("1h", "5m")
    assert alerts["MetadataLossQErrorBudgetBurnTicketSlow"]["labels"]["long_window"] == "3d"


def test_names_unique_across_scenarios_with_clashing_names() -> None:
    from dataclasses import replace

    scenario = load_scenario(HEADLINE)
    slos = (
        SLO("b c", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=0)),
        SLO("b-c", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=1)),
    )
    # "a" + "b c" and "a-b" + "c" are both ABC...; the same scenario twice clashes whole.
    clashing = [
        replace(scenario, name="a", slos=slos),
        replace(scenario, name="a-b", slos=(replace(slos[1], name="c"),)),
        scenario,
        scenario,
    ]
    doc = rule_groups(clashing)
    names = [r["alert"] for r in _alerts(doc)]
    assert len(names) == len(set(names))
    assert "ABCBad" in names and "ABCBad2" in names and "ABCBad3" in names
    assert len({g["name"] for g in doc["groups"]}) == 4
    no_for = next(r for r in _alerts(doc) if r["labels"]["slo"] == "b c")
    assert "for" not in no_for  # for: 0 is no for at all


def _run_cli(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code: Any = 0
    with (
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        mock.patch.object(sys, "argv", ["datadrill", *argv]),
    ):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    return int(code or 0), stdout.getvalue(), stderr.getvalue()


def test_cli_stdout_and_output_file(tmp_path: Path) -> None:
    code, stdout, _ = _run_cli("slo", "rules", str(HEADLINE))
    assert code == 0
    assert yaml.safe_load(stdout) == rule_groups([load_scenario(HEADLINE)])
    target = tmp_path / "rules.yml"
    code, stdout, stderr = _run_cli(
        "slo", "rules", str(HEADLINE), str(SCENARIOS / "lag_spike.py"), "-o", str(target)
    )
    assert code == 0 and stdout == ""
    assert "2 scenario(s)" in stderr
    assert len(yaml.safe_load(target.read_text())["groups"]) == 2


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (("slo", "rules", "missing.py"), "missing.py"),
        (("slo", "rules", str(HEADLINE), "--min-window", "0"), "--min-window"),
        (("slo", "rules", str(HEADLINE), "-o", "."), "--output"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(argv: tuple[str, ...], names: str) -> None:
    code, stdout, stderr = _run_cli(*argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and names in lines[0], stderr
    assert stdout == ""


@pytest.mark.prometheus
def test_every_shipped_scenario_passes_promtool_check(prometheus_bin: Path, tmp_path: Path) -> None:
    scenarios = [load_scenario(path) for path in discover(SCENARIOS)]
    assert len(scenarios) >= 10
    for scenario in scenarios:
        path = tmp_path / f"{scenario.name}.yml"
        path.write_text(rules_yaml([scenario]))
        done = subprocess.run(
            [_promtool(prometheus_bin), "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{scenario.name}:\n{done.stdout}{done.stderr}"
    # All of them in one file too: names stay unique, groups distinct, lint clean.
    every = tmp_path / "all.yml"
    every.write_text(rules_yaml(scenarios))
    done = subprocess.run(
        [_promtool(prometheus_bin), "check", "rules", str(every)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.prometheus
def test_promtool_unit_tests_of_a_threshold_and_a_burn_rate_rule(
    prometheus_bin: Path, tmp_path: Path
) -> None:
    """tests/unit/promtool/headline_rules_test.yml against the rules generated now: a
    generator change that breaks the rules' behaviour fails here."""
    rules = tmp_path / "headline_rules.yml"
    rules.write_text(rules_yaml([load_scenario(HEADLINE)]))
    test_file = tmp_path / "headline_rules_test.yml"
    source = (Path(__file__).parent / "promtool" / "headline_rules_test.yml").read_text()
    test_file.write_text(source)
    done = subprocess.run(
        [_promtool(prometheus_bin), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.prometheus
def test_promtool_check_refuses_what_is_not_rules(prometheus_bin: Path, tmp_path: Path) -> None:
    # The same promtool the run uses to validate --alert-rules says no to a broken file.
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - alert: X\n    expr: 'sum(('\n")
    done = subprocess.run(
        [_promtool(prometheus_bin), "check", "rules", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
