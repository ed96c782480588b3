"""What the stack needs to run a declared component, without a stack: the placeholder
values, the expanded launch, readiness probes, the start-up watch, the health word of
`stack status` and the component as a Kafka Connect connector."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from datadrill.backends.stackd.status import declared_health
from datadrill.config import parse_config
from datadrill.errors import ConfigError
from datadrill.interfaces.connect_api import ConnectServer, declared_connectors
from datadrill.paths import StatePaths
from datadrill.platform.declared import (
    Endpoints,
    LogReady,
    PortReady,
    RunningReady,
    StartupWatch,
    check_placeholders,
    launch,
    ready_probe,
)
from datadrill.platform.placeholders import NAMES
from datadrill.platform.supervisor import ProcessStatus

ENDPOINTS = Endpoints(
    bootstrap_servers="127.0.0.1:9092",
    catalog_uri="sqlite:////state/catalog.db",
    catalog_warehouse="file:///state/warehouse",
    query_url="http://127.0.0.1:8080",
    connect_url="http://127.0.0.1:8083",
    metrics_url="http://127.0.0.1:9100/metrics",
    state_dir="/state",
    catalog_name="datadrill",
    python="/venv/bin/python",
)

COMPONENT = {
    "command": ["{python}", "-m", "enricher", "--bootstrap={kafka.bootstrap_servers}"],
    "cwd": "{state_dir}/work",
    "env": {"CATALOG_URI": "{catalog.uri}", "QUERY": "{query.url}", "PLAIN": "x"},
}


def test_every_placeholder_has_a_value_and_only_the_registry_may_be_missing() -> None:
    values = ENDPOINTS.values()
    assert set(values) == set(NAMES)
    assert [n for n, v in values.items() if not v] == ["schema_registry.url"]
    registry = replace(ENDPOINTS, schema_registry_url="http://127.0.0.1:8081").values()
    assert registry["schema_registry.url"] == "http://127.0.0.1:8081"


def test_launch_expands_command_env_and_cwd() -> None:
    config = parse_config({"components": {"enricher": COMPONENT}}, source="t.toml")
    run = launch("enricher", config.components["enricher"], ENDPOINTS.values(), source="t.toml")
    assert run.argv == ("/venv/bin/python", "-m", "enricher", "--bootstrap=127.0.0.1:9092")
    assert run.cwd == "/state/work"
    assert run.env["CATALOG_URI"] == "sqlite:////state/catalog.db"
    assert run.env["QUERY"] == "http://127.0.0.1:8080" and run.env["PLAIN"] == "x"
    assert run.env["PYTHONUNBUFFERED"] == os.environ.get("PYTHONUNBUFFERED", "1")


def test_a_registry_placeholder_on_the_embedded_stack_is_refused_before_start() -> None:
    data = {"components": {"e": {"command": ["run"], "env": {"SR": "{schema_registry.url}"}}}}
    with pytest.raises(ConfigError) as raised:
        check_placeholders(parse_config(data, source="t.toml"), source="t.toml")
    message = str(raised.value)
    assert "components.e.env.SR" in message and "{schema_registry.url}" in message
    assert "a placeholder this stack has a value for" in message
    external = {
        "bootstrap_servers": "127.0.0.1:9092",
        "catalog_uri": "postgresql://u:p@127.0.0.1:5432/c",
        "schema_registry_url": "http://127.0.0.1:8081",
    }
    check_placeholders(parse_config({**data, "external": external}, source="t.toml"), source="t.toml")


def test_log_probe_sees_only_lines_written_since_this_start(tmp_path: Path) -> None:
    log = tmp_path / "enricher.log"
    log.write_bytes(b"ready to go (the previous run)\n")
    probe = LogReady("ready to go", log)
    probe.begin()
    assert probe.waiting_for == "a line containing 'ready to go' in logs/enricher.log"
    assert not probe.check()
    with log.open("ab") as f:
        f.write(b"starting\nready ")  # a line in two writes
    assert not probe.check()
    with log.open("ab") as f:
        f.write(b"to go\n")
    assert probe.check()
    probe.begin()  # a restart: the line above belongs to the previous start
    assert not probe.check()
    log.write_bytes(b"ready to go")  # truncated and rewritten, no newline yet
    assert probe.check()


def test_log_probe_of_a_missing_log_is_not_ready(tmp_path: Path) -> None:
    probe = LogReady("ready", tmp_path / "none.log")
    probe.begin()
    assert not probe.check()


def test_port_probe_connects_to_loopback() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    probe = PortReady(port)
    assert probe.check() and probe.waiting_for == f"127.0.0.1:{port} to accept connections"
    server.close()
    assert not probe.check()


def test_ready_probe_follows_the_config(tmp_path: Path) -> None:
    config = parse_config(
        {
            "components": {
                "a": {"command": ["a"], "ready": {"log": "up"}},
                "b": {"command": ["b"], "ready": {"port": 9999}},
                "c": {"command": ["c"]},
            }
        },
        source="t",
    )
    kinds = [type(ready_probe(c.ready, tmp_path / "x.log")) for c in config.components.values()]
    assert kinds == [LogReady, PortReady, RunningReady]


def _proc(name: str = "e", **changes: object) -> ProcessStatus:
    base = ProcessStatus(name, 10, True, False, 0, None, 1.0, ready=False, waiting_for="a line containing 'x'")
    return replace(base, **changes)  # type: ignore[arg-type]


def test_startup_watch_forgets_the_ready_and_names_the_late() -> None:
    watch = StartupWatch({"e": 5.0, "f": 5.0}, now=100.0)
    assert watch.update([_proc("e"), _proc("f")], now=101.0) is None
    assert watch.update([_proc("e", ready=True), _proc("f")], now=102.0) is None
    assert watch.pending == ("f",)
    failure = watch.update([_proc("f", pid=42)], now=105.0)
    assert failure is not None and failure.component == "f"
    assert failure.message == (
        "component f was not ready after 5s: waited for a line containing 'x'; it is running as pid 42"
    )
    assert watch.done


def test_startup_watch_fails_a_component_that_keeps_exiting() -> None:
    watch = StartupWatch({"e": 60.0}, now=0.0)
    exited_twice = _proc(running=False, pid=None, restarts=1, last_exit="exit code 1")
    assert watch.update([exited_twice], now=1.0) is None
    failure = watch.update([replace(exited_twice, restarts=2)], now=2.0)
    assert failure is not None
    assert failure.message.startswith("component e exited 3 times before it was ready (last: exit code 1)")


def test_startup_watch_is_done_once_all_were_ready() -> None:
    watch = StartupWatch({"e": 1.0}, now=0.0)
    assert watch.update([_proc(ready=True)], now=0.5) is None and watch.done


@pytest.mark.parametrize(
    ("changes", "has_check", "hung", "health"),
    [
        ({}, True, False, "starting"),
        ({"ready": True}, True, False, "ready"),
        ({"ready": True}, False, False, "running"),
        ({"ready": True}, True, True, "hung"),
        ({"paused": True, "running": False}, True, False, "paused"),
        ({"stopped": True, "running": False}, True, False, "stopped"),
        ({"running": False, "last_exit": "exit code 1"}, True, False, "restarting"),
        ({"failed_trace": "boom", "running": False}, True, False, "failed"),
    ],
)
def test_health_words(changes: dict[str, object], has_check: bool, hung: bool, health: str) -> None:
    assert declared_health(_proc("e", **changes), hung=hung, has_check=has_check) == health


def test_declared_process_components_are_connectors() -> None:
    config = parse_config(
        {
            "connect": {"url": "http://127.0.0.1:8083"},
            "components": {
                "enricher": {"command": ["python", "-m", "enricher"], "group": "enrich"},
                "api": {"command": ["api"]},
                "iceberg": {"connector": "iceberg-sink"},
            },
        },
        source="t",
    )
    connectors = declared_connectors(config)
    assert list(connectors) == ["enricher", "api"]  # a real cluster's connector is listed there
    assert connectors["enricher"].type == "sink" and connectors["api"].type == "source"
    assert connectors["enricher"].config == {
        "name": "enricher",
        "connector.class": "datadrill.process",
        "tasks.max": "1",
        "command": "python -m enricher",
        "consumer.group.id": "enrich",
    }
    assert "consumer.group.id" not in connectors["api"].config


class _Supervisor:
    """The supervisor as Connect's API sees it; components join late, as on the stack."""

    def __init__(self) -> None:
        self.procs: dict[str, ProcessStatus] = {}

    @property
    def names(self) -> list[str]:
        return list(self.procs)

    def status(self) -> list[ProcessStatus]:
        return list(self.procs.values())

    def pause(self, name: str) -> None:
        self.procs[name] = replace(self.procs[name], paused=True, running=False)

    def resume(self, name: str) -> int:
        self.procs[name] = replace(self.procs[name], paused=False, running=True)
        return 1

    def release(self, name: str) -> None:
        pass

    def stop(self, name: str) -> None:
        pass

    def restart(self, name: str) -> int | None:
        return 1


def test_connect_api_lists_components_that_join_after_it_started(tmp_path: Path) -> None:
    config = parse_config(
        {"platform": {"reference": False}, "components": {"enricher": {"command": ["e"], "group": "g"}}},
        source="t",
    )
    supervisor = _Supervisor()
    paths = StatePaths(tmp_path)
    paths.make()
    server = ConnectServer(supervisor, paths, config, bootstrap_servers="127.0.0.1:9")
    server.start()
    try:
        with httpx.Client(base_url=server.url) as api:
            assert api.get("/connectors").json() == []
            supervisor.procs["enricher"] = _proc("enricher", ready=True)
            status = api.get("/connectors", params={"expand": "status"}).json()["enricher"]["status"]
            assert status["type"] == "sink" and status["tasks"][0]["state"] == "RUNNING"
            assert api.put("/connectors/enricher/pause").status_code == 202
            assert api.get("/connectors/enricher/status").json()["connector"]["state"] == "PAUSED"
            # Its offsets are its group's committed offsets: with no Kafka behind this API,
            # Connect's 500 naming the connector and the cluster that did not answer.
            offsets = api.get("/connectors/enricher/offsets", timeout=60)
            assert offsets.status_code == 500
            message = offsets.json()["message"]
            assert "Failed to retrieve offsets for connector enricher" in message and "127.0.0.1:9" in message
    finally:
        server.stop()
