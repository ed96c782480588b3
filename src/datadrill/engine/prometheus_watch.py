"""Detection as Prometheus sees it: during a run, poll a Prometheus server's alerts API
(``GET /api/v1/alerts``) and journal, per alerting rule, when it went pending and firing.

The server is either a team's own (``[prometheus] url`` in datadrill.toml: it must
already scrape the stack's metrics URL and hold the rules) or a throwaway one started
from the system's ``prometheus`` binary with the rules file given by ``--alert-rules``
(:mod:`datadrill.backends.prometheus_server`). Times are the runner's monotonic clock at
the poll that saw the change; Prometheus's ``activeAt`` is kept as a label only.

Example::

    with open_prometheus(url=None, rules_file=Path("rules.yml"), metrics_url=url) as prom:
        watcher = PrometheusWatcher(prom, journal, scenario="metadata-loss")
        watcher.start()
        ...
        watcher.stop()
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from datadrill import events as ev
from datadrill.engine.journal import Journal
from datadrill.errors import ConfigError, WaitTimeout

log = logging.getLogger("datadrill.prometheus")

DEFAULT_POLL_S = 0.25
HTTP_TIMEOUT_S = 2.0
# How long a throwaway server may take to scrape the stack once and load the rules.
FIRST_SCRAPE_TIMEOUT_S = 30.0
STATES = ("pending", "firing")


@dataclass(frozen=True)
class PromAlert:
    """One active alert as ``/api/v1/alerts`` lists it."""

    name: str
    state: str  # "pending" or "firing"
    active_at: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """An alert is its rule plus its label set (one rule can yield several alerts)."""
        return self.name, tuple(sorted(self.labels.items()))


def parse_alerts(body: Any) -> list[PromAlert]:
    """The alerts of an ``/api/v1/alerts`` answer; ``ValueError`` naming what is wrong
    when it is not one (``{"status": "success", "data": {"alerts": [...]}}``)."""
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    if body.get("status") != "success":
        raise ValueError(
            f"status {body.get('status')!r}: {body.get('errorType', '')} {body.get('error', '')}".strip()
        )
    data = body.get("data")
    alerts = data.get("alerts") if isinstance(data, dict) else None
    if not isinstance(alerts, list):
        raise ValueError("no data.alerts list")
    out = []
    for n, alert in enumerate(alerts):
        labels = alert.get("labels") if isinstance(alert, dict) else None
        if not isinstance(labels, dict) or not isinstance(labels.get("alertname"), str):
            raise ValueError(f"data.alerts[{n}] has no labels.alertname")
        state = alert.get("state")
        if state not in STATES:
            raise ValueError(f"data.alerts[{n}].state = {state!r}, expected one of {STATES}")
        out.append(
            PromAlert(
                name=labels["alertname"],
                state=state,
                active_at=str(alert.get("activeAt", "")),
                labels={str(k): str(v) for k, v in labels.items()},
            )
        )
    return out


def parse_alerting_rules(body: Any) -> list[ev.PrometheusRuleInfo]:
    """The alerting rules of an ``/api/v1/rules`` answer."""
    if not isinstance(body, dict) or body.get("status") != "success":
        raise ValueError("not a successful /api/v1/rules answer")
    groups = body.get("data", {}).get("groups")
    if not isinstance(groups, list):
        raise ValueError("no data.groups list")
    rules = []
    for group in groups:
        for rule in group.get("rules", []) if isinstance(group, dict) else []:
            if not isinstance(rule, dict) or rule.get("type") != "alerting":
                continue
            labels = rule.get("labels") or {}
            rules.append(
                ev.PrometheusRuleInfo(
                    name=str(rule.get("name", "")),
                    slo=str(labels.get("slo", "")),
                    severity=str(labels.get("severity", "")),
                    scenario=str(labels.get("scenario", "")),
                )
            )
    return rules


class PrometheusClient:
    """The few calls of Prometheus's HTTP API the watcher needs (httpx; a test passes a
    ``transport``)."""

    def __init__(
        self, url: str, *, throwaway: bool = False, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.throwaway = throwaway
        self._http = httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT_S, transport=transport)

    def _get(self, path: str, **params: str) -> Any:
        answer = self._http.get(path, params=params)
        try:
            return answer.json()
        except ValueError:
            answer.raise_for_status()
            raise ValueError(f"{path}: HTTP {answer.status_code}, not JSON") from None

    def check(self, *, what: str) -> None:
        """A :class:`ConfigError` (one line) when the server does not answer as Prometheus."""
        try:
            body = self._get("/api/v1/status/buildinfo")
            if not isinstance(body, dict) or body.get("status") != "success":
                raise ValueError(f"answered {str(body)[:80]!r}, not Prometheus's API")
        except (httpx.HTTPError, ValueError) as exc:
            raise ConfigError(what, "url", self.url, f"a Prometheus server that answers; {exc}") from None

    def alerts(self) -> list[PromAlert]:
        return parse_alerts(self._get("/api/v1/alerts"))

    def alerting_rules(self) -> list[ev.PrometheusRuleInfo]:
        return parse_alerting_rules(self._get("/api/v1/rules", type="alert"))

    def target_scraped(self) -> bool:
        """True once every active target has been scraped successfully."""
        body = self._get("/api/v1/targets", state="active")
        targets = body.get("data", {}).get("activeTargets", []) if isinstance(body, dict) else []
        return bool(targets) and all(t.get("health") == "up" for t in targets)

    def close(self) -> None:
        self._http.close()


class PrometheusWatcher:
    """Polls the alerts every ``poll_s`` on its own thread and journals each change of
    state; polling errors are counted and logged, never fatal to the run."""

    def __init__(
        self, client: PrometheusClient, journal: Journal, *, scenario: str, poll_s: float = DEFAULT_POLL_S
    ) -> None:
        self.client = client
        self.journal = journal
        self.scenario = scenario
        self.poll_s = poll_s
        self.errors = 0
        self.last_error: str | None = None
        self._states: dict[tuple[str, tuple[tuple[str, str], ...]], PromAlert] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _concerns(self, labels: Mapping[str, str]) -> bool:
        """A rule of another scenario (its ``scenario`` label) is not this run's business."""
        scenario = labels.get("scenario", "")
        return not scenario or scenario == self.scenario

    def start(self) -> None:
        try:
            rules = [r for r in self.client.alerting_rules() if self._concerns({"scenario": r.scenario})]
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("cannot list Prometheus's rules: %s", exc)
            rules = []
        self.journal.record(
            ev.PrometheusWatchStarted(
                url=self.client.url, throwaway=self.client.throwaway, rules=tuple(rules)
            )
        )
        self._thread = threading.Thread(target=self._loop, name="prometheus-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.poll_s)

    def poll(self) -> None:
        try:
            alerts = [a for a in self.client.alerts() if self._concerns(a.labels)]
        except (httpx.HTTPError, ValueError) as exc:
            self.errors += 1
            if str(exc) != self.last_error:
                log.warning("Prometheus alerts unavailable: %s", exc)
            self.last_error = str(exc)
            return
        seen = {alert.key: alert for alert in alerts}
        for key, alert in seen.items():
            before = self._states.get(key)
            if before is None or before.state != alert.state:
                self._record(alert, alert.state)
        for key, alert in self._states.items():
            if key not in seen:
                self._record(alert, "inactive")
        self._states = seen

    def _record(self, alert: PromAlert, state: str) -> None:
        self.journal.record(
            ev.PrometheusAlert(
                rule=alert.name,
                state=state,
                active_at=alert.active_at,
                slo=alert.labels.get("slo", ""),
                severity=alert.labels.get("severity", ""),
            )
        )

    def stop(self) -> None:
        """Stop polling, after one last poll (what fired at the very end counts too)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HTTP_TIMEOUT_S * 3)
            self._thread = None
            self.poll()


@contextlib.contextmanager
def open_prometheus(
    *,
    url: str | None,
    rules_file: Path | None,
    metrics_url: str | None,
    binary: str | None = None,
) -> Iterator[PrometheusClient]:
    """The Prometheus a run watches: the server at ``url`` (checked to answer), or a
    throwaway one loading ``rules_file`` and scraping ``metrics_url``, stopped on exit.
    Bad input (both or neither given, a rules file that is not one, no binary, a URL that
    does not answer) is a :class:`ConfigError`."""
    from datadrill.backends.prometheus_server import (
        ThrowawayPrometheus,
        check_rules_file,
        find_prometheus,
        find_promtool,
    )

    if url and rules_file is not None:
        raise ConfigError(
            "--alert-rules",
            "--alert-rules",
            str(rules_file),
            f"not with [prometheus] url = {url!r}: that server loads its own rules; give one of the two",
        )
    if url:
        client = PrometheusClient(url)
        try:
            client.check(what="[prometheus]")
            yield client
        finally:
            client.close()
        return
    if rules_file is None:
        raise ConfigError("--alert-rules", "--alert-rules", None, "a rules file or [prometheus] url")
    binary_path = find_prometheus(binary)
    check_rules_file(rules_file, promtool=find_promtool(binary_path))
    if not metrics_url:
        raise ConfigError(
            "--alert-rules",
            "metrics_url",
            None,
            "the stack serves no metrics URL (stack.json); restart the stack",
        )
    with ThrowawayPrometheus(binary_path, rules_file, targets=[metrics_url]) as server:
        client = PrometheusClient(server.url, throwaway=True)
        try:
            _wait_first_scrape(client, server.last_log_lines)
            yield client
        finally:
            client.close()


def _wait_first_scrape(client: PrometheusClient, last_lines: Any) -> None:
    from datadrill.engine.wait import wait_until

    def scraped() -> bool:
        try:
            return client.target_scraped()
        except (httpx.HTTPError, ValueError):
            return False

    try:
        wait_until(
            scraped,
            timeout=FIRST_SCRAPE_TIMEOUT_S,
            interval=0.2,
            max_interval=0.2,
            what="Prometheus's first scrape of the stack's metrics",
            hint="is the stack's metrics URL reachable from Prometheus?",
        )
    except WaitTimeout as exc:
        exc.add_note(f"prometheus log: {last_lines()}")
        raise
