"""A throwaway Prometheus server for a drill, from the system's ``prometheus`` binary
(Debian package ``prometheus``), and the check of a rules file before it is loaded.

The server listens on 127.0.0.1 (a free port), keeps its TSDB in a temporary directory,
scrapes the stack's metrics URL every second and evaluates the user's rules every second;
:meth:`ThrowawayPrometheus.stop` ends it and removes the directory, whatever happened.

Example::

    alerts = check_rules_file(Path("drill-rules.yml"))      # ConfigError if not rules
    with ThrowawayPrometheus(find_prometheus(), Path("drill-rules.yml"),
                             targets=["http://127.0.0.1:40123/metrics"]) as server:
        server.url          # 'http://127.0.0.1:40555'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from datadrill.errors import ConfigError, StackStartFailed

DEFAULT_PROMETHEUS_BIN = "/usr/bin/prometheus"
PACKAGE = "prometheus"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PROMTOOL_TIMEOUT_S = 60.0
RULE_KEYS = frozenset({"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"})
GROUP_KEYS = frozenset({"name", "interval", "rules", "limit", "query_offset"})


def find_prometheus(binary: str | None = None) -> Path:
    """The Prometheus server binary: ``binary``, ``$PROMETHEUS_BIN``, or the Debian
    package's path; a :class:`ConfigError` naming the package when it is absent."""
    path = Path(binary or os.environ.get("PROMETHEUS_BIN") or DEFAULT_PROMETHEUS_BIN)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ConfigError(
            "--alert-rules",
            "prometheus",
            str(path),
            f"a Prometheus server binary to evaluate the rules; install the Debian package "
            f"'{PACKAGE}' (apt-get install {PACKAGE}), or give [prometheus] url of a server "
            "that scrapes the stack",
        )
    return path


def find_promtool(prometheus: Path | None = None) -> Path | None:
    """promtool beside the server binary, or on PATH; None when neither exists."""
    if prometheus is not None:
        beside = prometheus.with_name("promtool")
        if beside.is_file() and os.access(beside, os.X_OK):
            return beside
    found = shutil.which("promtool")
    return Path(found) if found else None


def check_rules_file(path: Path, *, promtool: Path | None = None) -> tuple[str, ...]:
    """The alert names of a Prometheus rules file; a :class:`ConfigError` naming the file,
    the field and what is wrong when it is not one: not readable, not YAML, not of the
    rules file's shape, or refused by ``promtool check rules`` (when promtool is here)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            source, "(file)", source, f"a Prometheus rules file; cannot be read: {why}"
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(syntax)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(source, where, path.name, f"not valid YAML: {problem}") from None
    alerts = _check_shape(source, doc)
    if promtool is not None:
        done = subprocess.run(
            [str(promtool), "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            lines = [
                line.strip()
                for line in (done.stdout + done.stderr).splitlines()
                if line.strip() and not line.startswith("Checking ")
            ]
            detail = "; ".join(lines[:3])
            raise ConfigError(source, "(rules)", path.name, f"refused by promtool check rules: {detail}")
    return alerts


def _check_shape(source: str, doc: Any) -> tuple[str, ...]:
    """Prometheus's rule file format (``groups: [{name, rules: [{alert|record, expr, ...}]}]``)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        shown = type(doc).__name__ if not isinstance(doc, dict) else sorted(doc)
        raise ConfigError(source, "groups", shown, "a Prometheus rules file: a mapping with a list 'groups'")
    alerts: list[str] = []
    for g, group in enumerate(doc["groups"]):
        where = f"groups[{g}]"
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            raise ConfigError(source, f"{where}.name", group, "each group is a mapping with a string 'name'")
        unknown = set(group) - GROUP_KEYS
        if unknown:
            raise ConfigError(
                source, where, sorted(unknown), f"unknown group fields; allowed: {sorted(GROUP_KEYS)}"
            )
        if not isinstance(group.get("rules"), list):
            raise ConfigError(source, f"{where}.rules", group.get("rules"), "a list of rules")
        for r, rule in enumerate(group["rules"]):
            at = f"{where}.rules[{r}]"
            if not isinstance(rule, dict):
                raise ConfigError(source, at, rule, "a rule is a mapping (alert or record, and expr)")
            unknown = set(rule) - RULE_KEYS
            if unknown:
                raise ConfigError(
                    source, at, sorted(unknown), f"unknown rule fields; allowed: {sorted(RULE_KEYS)}"
                )
            kinds = [key for key in ("alert", "record") if key in rule]
            if len(kinds) != 1 or not isinstance(rule[kinds[0]], str) or not rule[kinds[0]]:
                raise ConfigError(
                    source,
                    at,
                    rule.get("alert", rule.get("record")),
                    "exactly one of alert or record, a name",
                )
            if not isinstance(rule.get("expr"), str | int | float) or rule.get("expr") == "":
                raise ConfigError(source, f"{at}.expr", rule.get("expr"), "a PromQL expression")
            if "alert" in rule:
                alerts.append(rule["alert"])
    if not alerts:
        raise ConfigError(
            source, "groups", len(doc["groups"]), "no alerting rule: nothing would detect anything"
        )
    return tuple(alerts)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPrometheus:
    """A Prometheus server for one drill: started by :meth:`start`, gone after :meth:`stop`."""

    def __init__(
        self,
        binary: Path,
        rules_file: Path,
        *,
        targets: Sequence[str],
        scrape_interval_s: float = 1.0,
        evaluation_interval_s: float = 1.0,
    ) -> None:
        self.binary = binary
        self.rules_file = rules_file.resolve()
        self.targets = list(targets)
        self.scrape_interval_s = scrape_interval_s
        self.evaluation_interval_s = evaluation_interval_s
        self.url = ""
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ThrowawayPrometheus:
        try:
            self.start()
        except BaseException:
            self.stop()  # a half-started server is torn down
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _config(self) -> dict[str, Any]:
        jobs = []
        for n, target in enumerate(self.targets):
            parts = urlsplit(target)
            jobs.append(
                {
                    "job_name": "datadrill" if n == 0 else f"datadrill-{n}",
                    "metrics_path": parts.path or "/metrics",
                    "scheme": parts.scheme or "http",
                    "static_configs": [{"targets": [parts.netloc]}],
                }
            )
        interval = f"{round(self.scrape_interval_s * 1000)}ms"
        return {
            "global": {
                "scrape_interval": interval,
                # A scrape may take the whole interval, no more (Prometheus's own rule).
                "scrape_timeout": interval,
                "evaluation_interval": f"{round(self.evaluation_interval_s * 1000)}ms",
            },
            "rule_files": [str(self.rules_file)],
            "scrape_configs": jobs,
        }

    def start(self) -> str:
        self.directory = Path(tempfile.mkdtemp(prefix="datadrill-prometheus-"))
        config = self.directory / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config(), sort_keys=False), encoding="utf-8")
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = (self.directory / "prometheus.log").open("wb")
        with log:
            self._process = subprocess.Popen(
                [
                    str(self.binary),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal is the runner's to handle
            )
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise StackStartFailed(
                        f"prometheus exited with {self._process.returncode} while starting; "
                        f"its last lines: {self.last_log_lines()}"
                    )
                try:
                    answer = client.get(f"{self.url}/-/ready")
                    if answer.status_code == 200:
                        return
                    last = f"HTTP {answer.status_code}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
        raise StackStartFailed(
            f"prometheus at {self.url} not ready within {READY_TIMEOUT_S:g} s (last: {last}); "
            f"its last lines: {self.last_log_lines()}"
        )

    def last_log_lines(self, count: int = 5) -> str:
        if self.directory is None:
            return ""
        with contextlib.suppress(OSError):
            lines = (self.directory / "prometheus.log").read_text(errors="replace").strip().splitlines()
            return " | ".join(lines[-count:]) or "(empty log)"
        return "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        directory, self.directory = self.directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
