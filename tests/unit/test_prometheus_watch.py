"""Detection as Prometheus sees it, without a server: the alerts API parser, the watcher's
journal (httpx.MockTransport playing Prometheus's API, a fake clock), what the report makes
of it, and the bad input of --alert-rules / [prometheus] url."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from datadrill import events as ev
from datadrill.backends.prometheus_server import ThrowawayPrometheus, check_rules_file, find_prometheus
from datadrill.cli.main import main
from datadrill.engine.journal import Journal
from datadrill.engine.measure import measure
from datadrill.engine.prometheus_watch import (
    PrometheusClient,
    PrometheusWatcher,
    open_prometheus,
    parse_alerting_rules,
    parse_alerts,
)
from datadrill.errors import ConfigError
from datadrill.events import read_events
from datadrill.reporting._content import build_content

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = ROOT / "scenarios" / "metadata_loss.py"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _alert(
    name: str, state: str, *, slo: str = "q", scenario: str = "s1", at: str = "2026-11-30T00:00:01Z"
) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "slo": slo, "severity": "page", "scenario": scenario},
        "annotations": {},
        "state": state,
        "activeAt": at,
        "value": "0e+00",
    }


RULES = {
    "status": "success",
    "data": {
        "groups": [
            {
                "name": "datadrill.s1",
                "rules": [
                    {"type": "recording", "name": "slo:x:ratio_rate5s", "query": "1"},
                    {
                        "type": "alerting",
                        "name": "QBad",
                        "labels": {"slo": "q", "severity": "page", "scenario": "s1"},
                    },
                    {
                        "type": "alerting",
                        "name": "QSlow",
                        "labels": {"slo": "q", "severity": "ticket", "scenario": "s1"},
                    },
                    {"type": "alerting", "name": "Other", "labels": {"scenario": "another"}},
                    {"type": "alerting", "name": "TeamRule", "labels": {}},
                ],
            }
        ]
    },
}


def test_parse_alerts_and_rules() -> None:
    body = {
        "status": "success",
        "data": {"alerts": [_alert("QBad", "pending"), _alert("QBad", "firing", slo="r")]},
    }
    alerts = parse_alerts(body)
    assert [(a.name, a.state, a.labels["slo"]) for a in alerts] == [
        ("QBad", "pending", "q"),
        ("QBad", "firing", "r"),
    ]
    assert alerts[0].key != alerts[1].key  # one rule, two label sets: two alerts
    assert [r.name for r in parse_alerting_rules(RULES)] == ["QBad", "QSlow", "Other", "TeamRule"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "JSON object"),
        ({"status": "error", "errorType": "bad_data", "error": "x"}, "bad_data"),
        ({"status": "success", "data": {}}, "data.alerts"),
        ({"status": "success", "data": {"alerts": [{"labels": {}}]}}, "alertname"),
        ({"status": "success", "data": {"alerts": [{**_alert("A", "firing"), "state": "odd"}]}}, "state"),
    ],
)
def test_parse_alerts_refuses_what_is_not_an_alerts_answer(body: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_alerts(body)


class FakePrometheus:
    """Prometheus's alerts and rules API, answering what the test sets."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.fail = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            return httpx.Response(503, text="down")
        if request.url.path == "/api/v1/alerts":
            return httpx.Response(200, json={"status": "success", "data": {"alerts": self.alerts}})
        if request.url.path == "/api/v1/rules":
            return httpx.Response(200, json=RULES)
        if request.url.path == "/api/v1/status/buildinfo":
            return httpx.Response(200, json={"status": "success", "data": {"version": "2.42.0"}})
        return httpx.Response(404, json={"status": "error", "error": "not found"})


def test_watcher_journals_each_change_and_the_report_compares(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "journal.jsonl"
    journal = Journal.create(path, clock=clock)
    journal.record(
        ev.RunStarted(
            scenario="s1",
            slos=(
                ev.SLOInfo(
                    name="q",
                    statement="q ok",
                    kind="query_success",
                    unit="ok",
                    objective=0.99,
                    alert="bad for 2 s",
                ),
            ),
        )
    )
    server = FakePrometheus()
    client = PrometheusClient("http://127.0.0.1:9", transport=httpx.MockTransport(server.handle))
    watcher = PrometheusWatcher(client, journal, scenario="s1")
    # The thread is not started: the test polls by hand, as the thread would.
    journal.record(
        ev.PrometheusWatchStarted(
            url=client.url, rules=tuple(r for r in client.alerting_rules() if r.scenario in ("", "s1"))
        )
    )
    clock.now += 5
    journal.record(ev.FaultInjected(fault_id=1, kind="k", description="d"))  # t = 5
    clock.now += 1
    server.alerts = [_alert("QBad", "pending"), _alert("Other", "firing", scenario="another")]
    watcher.poll()  # t = 6: pending (Other is another scenario's)
    watcher.poll()  # no change, nothing journaled
    clock.now += 1.5
    journal.record(ev.AlertFired(slo="q", rule="bad for 2 s"))  # t = 7.5: datadrill detects
    clock.now += 0.5
    server.fail = True
    watcher.poll()  # t = 8: an error is counted, never fatal
    assert watcher.errors == 1
    server.fail = False
    server.alerts = [_alert("QBad", "firing")]
    watcher.poll()  # t = 8: firing
    clock.now += 10
    server.alerts = []
    watcher.poll()  # t = 18: gone
    journal.record(ev.RunFinished(verdict="passed"))
    journal.close()

    events = read_events(path)
    changes = [(e.rule, e.state, e.t) for e in events if isinstance(e, ev.PrometheusAlert)]
    assert changes == [("QBad", "pending", 6.0), ("QBad", "firing", 8.0), ("QBad", "inactive", 18.0)]

    report = measure(events)
    assert report.prometheus_url == "http://127.0.0.1:9"
    rules = {r.rule: r for r in report.prometheus_rules}
    assert set(rules) == {"QBad", "QSlow", "TeamRule"}
    assert rules["QBad"].time_to_fire_s == pytest.approx(3.0)
    assert rules["QBad"].datadrill_ttd_s == pytest.approx(2.5)
    assert rules["QBad"].pending_s == pytest.approx(6.0)
    assert not rules["QSlow"].fired and not rules["TeamRule"].fired
    assert report.prometheus_rules[0].rule == "QBad"  # fired first

    content = build_content(report)
    detection = next(s for s in content.sections if s.title == "Detection")
    texts = [getattr(b, "text", "") for b in detection.blocks]
    assert "Detection as Prometheus saw it" in texts
    table = [b for b in detection.blocks if getattr(b, "kind", "") == "table"][-1]
    assert table.rows[0].cells[0] == "QBad" and table.rows[0].cells[-1] == "+0.5 s"
    bullets = [b for b in detection.blocks if getattr(b, "kind", "") == "bullets"][-1]
    assert any(item.startswith("QSlow") for item in bullets.items)


def test_a_report_without_prometheus_says_nothing_of_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal.create(path, clock=FakeClock())
    journal.record(ev.RunStarted(scenario="s1"))
    journal.close()
    report = measure(read_events(path))
    assert report.prometheus_url is None and report.prometheus_rules == ()
    detection = next(s for s in build_content(report).sections if s.title == "Detection")
    assert all(getattr(b, "text", "") != "Detection as Prometheus saw it" for b in detection.blocks)


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("groups: [\n", "not valid YAML"),
        ("- just\n- a list\n", "a mapping with a list 'groups'"),
        ("groups:\n- rules: []\n", "string 'name'"),
        ("groups:\n- name: g\n  rules:\n  - expr: up\n", "exactly one of alert or record"),
        ("groups:\n- name: g\n  rules:\n  - alert: A\n", "PromQL expression"),
        ("groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n", "no alerting rule"),
        (
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    severity: page\n",
            "unknown rule fields",
        ),
    ],
)
def test_rules_file_structure_is_checked(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=says) as caught:
        check_rules_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_rules_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        check_rules_file(tmp_path / "nope.yml")


def test_no_prometheus_binary_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Debian package 'prometheus'"):
        find_prometheus(str(tmp_path / "prometheus"))


def test_url_that_does_not_answer(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = PrometheusClient("http://127.0.0.1:9", transport=httpx.MockTransport(refuse))
    with pytest.raises(ConfigError, match="a Prometheus server that answers; connection refused"):
        client.check(what="[prometheus]")
    not_prometheus = PrometheusClient(
        "http://127.0.0.1:9", transport=httpx.MockTransport(lambda r: httpx.Response(200, text="hello"))
    )
    with pytest.raises(ConfigError, match="a Prometheus server that answers"):
        not_prometheus.check(what="[prometheus]")


def test_open_prometheus_refuses_both_a_url_and_a_rules_file(tmp_path: Path) -> None:
    with (
        pytest.raises(ConfigError, match="give one of the two"),
        open_prometheus(url="http://127.0.0.1:9", rules_file=tmp_path / "r.yml", metrics_url=None),
    ):
        pass


def test_throwaway_config_scrapes_every_second(tmp_path: Path) -> None:
    server = ThrowawayPrometheus(
        tmp_path / "prometheus", tmp_path / "r.yml", targets=["http://127.0.0.1:4000/metrics"]
    )
    config = server._config()
    assert config["global"] == {
        "scrape_interval": "1000ms",
        "scrape_timeout": "1000ms",
        "evaluation_interval": "1000ms",
    }
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:4000"]}] and job["metrics_path"] == "/metrics"
    assert config["rule_files"] == [str((tmp_path / "r.yml").resolve())]


def _run_cli(*argv: str) -> tuple[int, str]:
    stderr = io.StringIO()
    code: Any = 0
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(stderr),
        mock.patch.object(sys, "argv", ["datadrill", *argv]),
        mock.patch("datadrill.session.start_stack", side_effect=AssertionError("no stack may start")),
    ):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    return int(code or 0), stderr.getvalue()


def test_cli_bad_rules_file_exit_2_before_a_stack_starts(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yml"
    bad.write_text("groups: {oops\n")
    code, stderr = _run_cli(
        "run", str(HEADLINE), "--alert-rules", str(bad), "--state-dir", str(tmp_path / "s")
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "rules.yml" in lines[0] and "not valid YAML" in lines[0], stderr


def test_cli_no_binary_exit_2_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n")
    monkeypatch.setenv("PROMETHEUS_BIN", str(tmp_path / "no-prometheus"))
    code, stderr = _run_cli(
        "run", str(HEADLINE), "--alert-rules", str(rules), "--state-dir", str(tmp_path / "s")
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Debian package 'prometheus'" in lines[0], stderr


def test_cli_prometheus_url_and_rules_file_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "datadrill.toml"
    config.write_text('[prometheus]\nurl = "http://127.0.0.1:9"\n')
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: []\n")
    code, stderr = _run_cli(
        "run",
        str(HEADLINE),
        "--config",
        str(config),
        "--alert-rules",
        str(rules),
        "--state-dir",
        str(tmp_path / "s"),
    )
    assert code == 2 and "give one of the two" in stderr
