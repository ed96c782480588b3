"""Declared components (``[components.NAME]``) on the embedded stack: tiny Python scripts
started by the stack's supervisor with the stack's endpoints in their environment, their
output in logs/NAME.log, restarted with backoff, listed by `stack status` and by Kafka
Connect's REST API, gating `stack up` on their readiness, and dying with the stack."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import TEST_CONFIG, events, run_cli, stop_stack, wait_for_event
from datadrill.backends.embedded import EmbeddedBackend
from datadrill.backends.stackd.manager import stack_down
from datadrill.config import parse_config
from datadrill.engine.wait import wait_until
from datadrill.errors import StackStartFailed
from datadrill.paths import StatePaths
from datadrill.procs import alive
from datadrill.session import start_stack
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

SCRIPT = r'''
import json, os, signal, socket, sys, time

mode, out = sys.argv[1], sys.argv[2]

def term(signum, frame):
    print("terminated", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, term)
print(f"{mode} starting", flush=True)
if mode == "fail":
    print("boom: cannot reach anything")
    sys.exit(1)
if out != "-":
    keys = ("BOOTSTRAP", "CATALOG_URI", "CATALOG_NAME", "WAREHOUSE", "QUERY", "CONNECT", "METRICS", "STATE", "PYTHONUNBUFFERED")
    record = {k: os.environ.get(k) for k in keys}
    record.update(argv=sys.argv[1:], cwd=os.getcwd(), pid=os.getpid())
    with open(out + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(out + ".tmp", out)
if mode == "port":
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(sys.argv[3])))
    server.listen()
    print("listening")
if mode == "log":
    # no flush: the stack sets PYTHONUNBUFFERED for its components
    print("service is ready to enrich")
while True:
    time.sleep(0.05)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(tmp: Path) -> str:
    path = tmp / "component.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return str(path)


def _start(state_dir: Path, data: dict[str, Any], *, timeout_s: float = 90) -> StackClient:
    config = parse_config({**TEST_CONFIG, **data}, source="test")
    return start_stack(EmbeddedBackend(), StatePaths(state_dir), config, timeout_s=timeout_s)


def _status(stack: StackClient) -> dict[str, Any]:
    from datadrill.stack.client import ControlClient

    status: dict[str, Any] = ControlClient(stack.state["control_url"]).get("/status")
    return status


def _entry(stack: StackClient, name: str) -> dict[str, Any]:
    return next(c for c in _status(stack)["components"] if c["name"] == name)


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackClient, Path, int]]:
    """One stack with the reference platform and two declared components: ``enricher``
    (ready on a log line, consumes with a group) and ``api`` (ready on a port)."""
    tmp = tmp_path_factory.mktemp("declared")
    script = _script(tmp)
    port = _free_port()
    components = {
        "enricher": {
            "command": ["{python}", script, "log", "{state_dir}/enricher-env.json"],
            "cwd": str(tmp),
            "env": {
                "BOOTSTRAP": "{kafka.bootstrap_servers}",
                "CATALOG_URI": "{catalog.uri}",
                "CATALOG_NAME": "{catalog.name}",
                "WAREHOUSE": "{catalog.warehouse}",
                "QUERY": "{query.url}",
                "CONNECT": "{connect.url}",
                "METRICS": "{metrics.url}",
                "STATE": "{state_dir}",
            },
            "ready": {"log": "ready to enrich"},
            "group": "enricher-group",
        },
        "api": {
            "command": [sys.executable, script, "port", "-", str(port)],
            "cwd": str(tmp),
            "ready": {"port": port},
        },
    }
    stack = _start(tmp / ".datadrill", {"components": components})
    try:
        yield stack, tmp, port
    finally:
        stop_stack(stack)


def test_declared_components_start_ready_and_log(declared: tuple[StackClient, Path, int]) -> None:
    stack, _, port = declared
    enricher, api = _entry(stack, "enricher"), _entry(stack, "api")
    assert enricher["declared"] and enricher["health"] == "ready" and enricher["healthy"]
    assert api["health"] == "ready" and api["running"] and api["pid"]
    # The reference platform runs beside them.
    names = [c["name"] for c in _status(stack)["components"]]
    assert {"workload", "relay", "sink"} <= set(names)
    log = stack.paths.log("enricher").read_text(encoding="utf-8")
    assert "log starting" in log and "service is ready to enrich" in log
    assert "listening" in stack.paths.log("api").read_text(encoding="utf-8")
    ready = {e["component"]: e for e in events(stack) if e["event"] == "component_ready"}
    assert ready["enricher"]["waited_for"] == "a line containing 'ready to enrich' in logs/enricher.log"
    assert ready["api"]["waited_for"] == f"127.0.0.1:{port} to accept connections"
    assert ready["enricher"]["took_s"] >= 0 and ready["api"]["pid"] == api["pid"]


def test_placeholders_arrive_expanded_as_real_endpoints(declared: tuple[StackClient, Path, int]) -> None:
    stack, tmp, _ = declared
    state = stack.state
    env = json.loads((stack.paths.root / "enricher-env.json").read_text(encoding="utf-8"))
    state_dir = str(stack.paths.root.resolve())
    assert env["argv"] == ["log", f"{state_dir}/enricher-env.json"]
    assert env["cwd"] == str(tmp)
    assert env["BOOTSTRAP"] == state["bootstrap_servers"]
    assert env["QUERY"] == state["query_url"]
    assert env["CONNECT"] == state["connect_url"]
    assert env["METRICS"] == state["metrics_url"]
    assert env["STATE"] == state_dir
    assert env["WAREHOUSE"] == state["warehouse"]
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["CATALOG_URI"] == f"sqlite:///{stack.paths.catalog_db.resolve()}"
    # Real values: pyiceberg opens the stack's table with them.
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(env["CATALOG_NAME"], uri=env["CATALOG_URI"], warehouse=env["WAREHOUSE"])
    assert catalog.load_table(stack.table).schema().find_field("order_id")
    # Trino's protocol answers at the query URL.
    assert httpx.get(env["QUERY"] + "/v1/info", timeout=10).status_code == 200


def test_stack_status_lists_declared_components(declared: tuple[StackClient, Path, int]) -> None:
    stack, tmp, _ = declared
    done = run_cli("stack", "status", "--state-dir", str(stack.paths.root), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    components = {c["name"]: c for c in json.loads(done.stdout)["components"]}
    enricher = components["enricher"]
    # As declared (placeholders unexpanded: a catalog URI's password stays out of status).
    assert enricher["command"] == ["{python}", str(tmp / "component.py"), "log", "{state_dir}/enricher-env.json"]
    assert enricher["restarts"] == 0 and enricher["last_exit"] is None and enricher["pid"] > 0
    table = run_cli("stack", "status", "--state-dir", str(stack.paths.root))
    assert table.returncode == 0, table.stdout + table.stderr
    assert "your components" in table.stdout and "enricher" in table.stdout and "ready" in table.stdout


def test_connect_lists_declared_components_as_connectors(declared: tuple[StackClient, Path, int]) -> None:
    stack, _, _ = declared
    url = stack.state["connect_url"]
    with httpx.Client(base_url=url, timeout=10) as connect:
        listed = connect.get("/connectors", params={"expand": "status"}).json()
        assert {"relay", "sink", "enricher", "api"} <= set(listed)
        enricher = listed["enricher"]["status"]
        assert enricher["type"] == "sink" and enricher["tasks"][0]["state"] == "RUNNING"
        assert listed["api"]["status"]["type"] == "source"
        config = connect.get("/connectors/enricher/config").json()
        assert config["connector.class"] == "datadrill.process"
        assert config["consumer.group.id"] == "enricher-group"
        # Offsets: its group's, in Connect's sink shape (never the reference sink's).
        offsets = connect.get("/connectors/enricher/offsets")
        assert offsets.status_code == 200, offsets.text
        assert all(o["partition"]["kafka_topic"] != stack.state["topic"] for o in offsets.json()["offsets"])
        # Pause through Connect while the process is hung (SIGSTOP): SIGTERM then SIGCONT lets it
        # run its SIGTERM handler instead of waiting to be SIGKILLed.
        pid = _entry(stack, "api")["pid"]
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: _entry(stack, "api")["health"] == "hung", timeout=30, what="api to show as hung")
        assert connect.put("/connectors/api/pause").status_code == 202
        assert connect.get("/connectors/api/status").json()["tasks"][0]["state"] == "PAUSED"
        assert _entry(stack, "api")["health"] == "paused"
        assert stack.paths.log("api").read_text(encoding="utf-8").rstrip().endswith("terminated")
        assert connect.put("/connectors/api/resume").status_code == 202
        wait_until(lambda: _entry(stack, "api")["health"] == "ready", timeout=30, what="api ready again")


def test_a_killed_component_restarts_with_backoff_and_gets_ready_again(
    declared: tuple[StackClient, Path, int],
) -> None:
    stack, _, _ = declared
    before = len(events(stack))
    pid = _entry(stack, "enricher")["pid"]
    os.kill(pid, signal.SIGKILL)
    exited = wait_for_event(
        stack, lambda e: e["event"] == "process_exited" and e["component"] == "enricher", after=before
    )
    assert exited["cause"] == "killed by SIGKILL" and exited["pid"] == pid
    assert exited["restart_in_s"] == TEST_CONFIG["supervisor"]["backoff_initial_s"]
    ready = wait_for_event(
        stack, lambda e: e["event"] == "component_ready" and e["component"] == "enricher", after=before
    )
    assert ready["pid"] != pid and ready["restarts"] == 1
    entry = _entry(stack, "enricher")
    assert entry["health"] == "ready" and entry["restarts"] == 1 and entry["last_exit"] == "killed by SIGKILL"


def test_without_the_reference_platform_only_declared_components_run_and_die_with_the_stack(
    tmp_path: Path,
) -> None:
    script = _script(tmp_path)
    components = {"solo": {"command": [sys.executable, script, "log", "-"], "ready": {"log": "ready"}}}
    stack = _start(tmp_path / ".datadrill", {"platform": {"reference": False}, "components": components})
    try:
        status = _status(stack)
        names = {c["name"] for c in status["components"]}
        assert "solo" in names and not names & {"workload", "relay", "sink"}
        assert status["healthy"], status
        started = {e["component"] for e in events(stack) if e["event"] == "process_started"}
        assert started == {"solo"}
        listed = httpx.get(stack.state["connect_url"] + "/connectors", timeout=10).json()
        assert listed == ["solo"]
        assert httpx.get(stack.state["metrics_url"], timeout=10).status_code == 200
        pid = _entry(stack, "solo")["pid"]
        # The stack process dies without a chance to stop anything: its component goes too.
        os.kill(int(stack.state["pid"]), signal.SIGKILL)
        wait_until(lambda: not alive(pid), timeout=30, what=f"component pid {pid} to die with the stack")
    finally:
        stack_down(stack.paths)


def test_a_component_that_keeps_exiting_fails_stack_up_naming_it(tmp_path: Path) -> None:
    script = _script(tmp_path)
    components = {"flaky": {"command": [sys.executable, script, "fail", "-"], "ready": {"log": "ready"}}}
    with pytest.raises(StackStartFailed) as raised:
        _start(tmp_path / ".datadrill", {"platform": {"reference": False}, "components": components})
    message = str(raised.value)
    assert message.startswith("component flaky exited 3 times before it was ready (last: exit code 1)")
    assert "a line containing 'ready'" in message and "\n" not in message
    assert "boom: cannot reach anything" in "\n".join(raised.value.__notes__)
    assert not (tmp_path / ".datadrill" / "stack.json").exists()


def test_a_component_never_ready_fails_stack_up_in_one_line(tmp_path: Path) -> None:
    script = _script(tmp_path)
    config = tmp_path / "datadrill.toml"
    config.write_text(
        f"""
[platform]
reference = false

[components.stuck]
command = [{json.dumps(sys.executable)}, {json.dumps(script)}, "never", "-"]
ready = {{ log = "accepting orders", timeout_s = 3 }}
""",
        encoding="utf-8",
    )
    done = run_cli("stack", "up", "--state-dir", str(tmp_path / ".datadrill"), "--config", str(config))
    assert done.returncode == 1, done.stdout + done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert "component stuck was not ready after 3s" in first
    assert "waited for a line containing 'accepting orders' in logs/stuck.log" in first
    assert "never starting" in done.stderr  # the last lines of its log
    assert not (tmp_path / ".datadrill" / "stack.json").exists()
