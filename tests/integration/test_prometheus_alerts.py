"""The stack's Prometheus metrics and the headline scenario under a real Prometheus server
(Debian package prometheus): the rules generated from its SLOs fire, and each threshold
rule fires within two evaluation intervals plus a scrape interval of datadrill's own
detection of the same SLO (plus one poll of the alerts API: the runner sees an alert when
it polls). Burn-rate rules are reported side by side, not bounded (see the test)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from datadrill.engine.loader import load_scenario
from datadrill.engine.prometheus_watch import DEFAULT_POLL_S, open_prometheus
from datadrill.engine.runner import Runner
from datadrill.engine.wait import wait_until
from datadrill.model.report import RunReport, Verdict
from datadrill.reporting.prom_rules import rules_yaml
from datadrill.stack.client import StackClient
from datadrill.stack.state import read_state

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

HEADLINE = Path(__file__).resolve().parents[2] / "scenarios" / "metadata_loss.py"
SCRAPE_S = 1.0  # the throwaway server's scrape and evaluation intervals
EVALUATION_S = 1.0


def _metrics_url(stack: StackClient) -> str:
    state = read_state(stack.paths)
    assert state is not None and state.get("metrics_url"), state
    return str(state["metrics_url"])


def _samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_stack_serves_metrics_and_lists_the_endpoint(stack: StackClient) -> None:
    url = _metrics_url(stack)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    listed = {c.name: c for c in stack.status().components}
    assert listed["metrics"].endpoint == url and listed["metrics"].healthy
    samples = _samples(url)
    up = {labels["component"]: value for labels, value in samples["datadrill_component_up"]}
    assert {name: up.get(name) for name in ("workload", "relay", "sink")} == {
        "workload": 1.0,
        "relay": 1.0,
        "sink": 1.0,
    }
    # Connect's view of the connectors: one series per state, 1 for the current one.
    tasks = {
        (labels["connector"], labels["state"]): value
        for labels, value in samples["datadrill_connector_task_state"]
    }
    assert tasks[("sink", "RUNNING")] == 1.0 and tasks[("sink", "FAILED")] == 0.0
    assert tasks[("relay", "RUNNING")] == 1.0
    # Lag is read in the background (a scrape never waits on Kafka): it shows up by the
    # next scrape, one series per partition of the topic.
    lag = wait_until(
        lambda: _samples(url).get("datadrill_kafka_consumer_group_lag_messages"),
        timeout=30,
        what="the consumer-group lag metric",
    )
    assert {labels["partition"] for labels, _ in lag} == {str(p) for p in range(6)}
    assert all(labels["group"] == "datadrill-sink" and labels["topic"] == "orders.v1" for labels, _ in lag)


def test_headline_rules_fire_as_datadrill_detects(stack: StackClient, tmp_path: Path) -> None:
    scenario = load_scenario(HEADLINE)
    rules = tmp_path / "rules.yml"
    rules.write_text(rules_yaml([scenario]))
    with open_prometheus(url=None, rules_file=rules, metrics_url=_metrics_url(stack)) as prometheus:
        report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", prometheus=prometheus).run()
    assert isinstance(report, RunReport)
    assert report.verdict is Verdict.PASSED, report.reasons
    assert report.prometheus_url is not None and report.prometheus_url.startswith("http://127.0.0.1:")
    by_rule = {r.rule: r for r in report.prometheus_rules}
    # Every alerting rule of the file was watched (the report lists those that never fired).
    assert len(by_rule) == rules.read_text().count("  - alert: ")

    detected = {s.name: s for s in report.slos if s.first_alert_s is not None}
    assert "mart queries succeed" in detected
    bound = 2 * EVALUATION_S + SCRAPE_S + DEFAULT_POLL_S
    compared = []
    for slo in detected:
        # The rules that state datadrill's own alert rule in PromQL: the threshold rule
        # ("...Bad") or the scenario's burn-rate rule ("...BurnRate").
        own = [r for r in report.prometheus_rules if r.slo == slo and r.rule.endswith(("Bad", "BurnRate"))]
        assert len(own) == 1, (slo, own)
        rule = own[0]
        if rule.rule.endswith("BurnRate"):
            # A burn rate is a ratio over windows: Prometheus's is rate() over counters it
            # scraped once a second, datadrill's counts its own samples. When the ratio creeps
            # up to the threshold, a second's shift of the window moves the crossing by more
            # than a second, and a marginal crossing may not happen in one of them at all:
            # the report compares them, the test does not bound them.
            continue
        assert rule.fired, f"{rule.rule} never fired; datadrill detected {slo}"
        assert rule.time_to_fire_s is not None and rule.datadrill_ttd_s is not None
        assert abs(rule.time_to_fire_s - rule.datadrill_ttd_s) <= bound, (
            rule.rule,
            rule.time_to_fire_s,
            rule.datadrill_ttd_s,
        )
        compared.append(rule.rule)
    assert "MetadataLossMartQueriesSucceedBad" in compared
    assert any(r.rule.endswith("BurnRate") for r in report.prometheus_rules)  # watched and reported
    # A rule fires after it was pending (or at once, without `for`).
    for rule in report.prometheus_rules:
        if rule.fired:
            assert (
                rule.pending_s is not None and rule.firing_s is not None and rule.pending_s <= rule.firing_s
            )
    # The report says it, in Markdown too.
    from datadrill.reporting import write_reports

    written = write_reports(report, tmp_path / "run")
    markdown = Path(written["md"]).read_text()
    assert "Detection as Prometheus saw it" in markdown and "MetadataLossMartQueriesSucceedBad" in markdown
