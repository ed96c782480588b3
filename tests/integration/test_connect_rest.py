"""Kafka Connect's REST API on a real embedded stack, over its socket: what a Connect client
(curl, a Connect UI, an operator's script) sees and can do, and the connector faults and
steps that go through it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import new_database, run_cli
from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.faults.conformance import check_plugin
from datadrill.faults.connector import ConnectorTaskFailureFault
from datadrill.faults.ledger import FaultLedger, inject
from datadrill.faults.registry import plugin_for
from datadrill.faults.stack_state import pause_spec
from datadrill.interfaces.connect_client import ConnectClient, ConnectError
from datadrill.model.faults import ConnectorTaskFailure, KillComponent
from datadrill.model.recovery import PauseComponent, RestartConnector, ResumeComponent
from datadrill.platform.catalog import sink_state
from datadrill.platform.supervisor import EventLog
from datadrill.recovery import run_step
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration


@pytest.fixture
def connect(stack: StackClient) -> Iterator[ConnectClient]:
    client = ConnectClient(str(stack.state["connect_url"]))
    _running(client, "relay")
    _running(client, "sink")
    yield client
    # Whatever a test did, the next one starts from running connectors.
    for name in ("relay", "sink"):
        status = client.status(name)
        if status.failed_tasks:
            client.restart(name, include_tasks=True, only_failed=True)
        if status.state in ("PAUSED", "STOPPED"):
            client.resume(name)
        _running(client, name)
    client.close()


def _running(client: ConnectClient, name: str) -> None:
    seen: list[str] = []

    def running() -> bool:
        status = client.status(name)
        seen.append(status.describe())
        return status.running

    wait_until(running, timeout=60, interval=0.1, what=f"{name} RUNNING")


def _context(stack: StackClient, tmp_path: Path) -> DrillContext:
    return DrillContext(stack, tmp_path, MonotonicClock())


def test_connectors_are_listed_and_described_as_connect_does(
    stack: StackClient, connect: ConnectClient
) -> None:
    url = connect.url
    root = httpx.get(url + "/").json()
    assert set(root) == {"version", "commit", "kafka_cluster_id"}
    assert httpx.get(url + "/connectors").json() == ["relay", "sink"]
    expanded = httpx.get(url + "/connectors?expand=status&expand=info").json()
    assert set(expanded) == {"relay", "sink"}
    assert expanded["sink"]["status"]["connector"]["state"] == "RUNNING"
    assert expanded["sink"]["status"]["type"] == "sink"
    assert expanded["relay"]["info"]["type"] == "source"
    assert expanded["sink"]["info"]["config"]["topics"] == stack.topic
    info = httpx.get(url + "/connectors/sink").json()
    assert info["name"] == "sink" and info["tasks"] == [{"connector": "sink", "task": 0}]
    config = httpx.get(url + "/connectors/sink/config").json()
    assert config["connector.class"] == "datadrill.platform.sink" and config["tasks.max"] == "1"
    tasks = httpx.get(url + "/connectors/sink/tasks").json()
    assert [t["id"] for t in tasks] == [{"connector": "sink", "task": 0}]
    task = httpx.get(url + "/connectors/sink/tasks/0/status").json()
    assert task["id"] == 0 and task["state"] == "RUNNING" and task["worker_id"] == url.removeprefix("http://")

    # Errors are Connect's documents.
    missing = httpx.get(url + "/connectors/orders-jdbc/status")
    assert missing.status_code == 404
    assert missing.json() == {"error_code": 404, "message": "Connector orders-jdbc not found"}
    assert httpx.put(url + "/connectors/orders-jdbc/pause").status_code == 404
    no_task = httpx.get(url + "/connectors/sink/tasks/3/status")
    assert no_task.status_code == 404 and no_task.json()["error_code"] == 404
    wrong_method = httpx.delete(url + "/connectors/sink/pause")
    assert wrong_method.status_code == 405 and wrong_method.json()["error_code"] == 405
    assert httpx.get(url + "/no/such/route").json()["error_code"] == 404
    bad_flag = httpx.post(url + "/connectors/sink/restart?includeTasks=maybe")
    assert bad_flag.status_code == 400 and "includeTasks" in bad_flag.json()["message"]
    with pytest.raises(
        ConnectError, match=r"Kafka Connect at http://127\.0\.0\.1:\d+: GET .*404: Connector x not found"
    ):
        connect.status("x")

    status = run_cli("stack", "status", "--json", "--state-dir", str(stack.paths.root))
    assert status.returncode == 0, status.stdout + status.stderr
    entry = {c["name"]: c for c in json.loads(status.stdout)["components"]}["connect"]
    assert entry["endpoint"] == url and entry["healthy"]
    assert entry["detail"] == "relay RUNNING, sink RUNNING"


def test_pause_resume_and_stop(stack: StackClient, connect: ConnectClient) -> None:
    url = connect.url
    assert httpx.put(url + "/connectors/sink/pause").status_code == 202
    paused = connect.status("sink")
    assert paused.state == "PAUSED" and [t.state for t in paused.tasks] == ["PAUSED"]
    assert stack.components.get("sink").paused and stack.components.get("sink").pid is None
    assert httpx.put(url + "/connectors/sink/pause").status_code == 202  # idempotent
    assert httpx.put(url + "/connectors/sink/resume").status_code == 202
    _running(connect, "sink")

    stopped = httpx.put(url + "/connectors/relay/stop")
    assert stopped.status_code == 204 and stopped.content == b""
    status = connect.status("relay")
    assert status.state == "STOPPED" and status.tasks == ()  # a stopped connector has no tasks
    assert httpx.get(url + "/connectors/relay").json()["tasks"] == []
    assert stack.components.get("relay").pid is None
    connect.resume("relay")
    _running(connect, "relay")
    kinds = [e["event"] for e in EventLog(stack.paths.events_file).read() if e.get("component") == "relay"]
    assert "process_stopped" in kinds


def test_a_task_failure_stays_failed_until_restart_connector(
    stack: StackClient, connect: ConnectClient, tmp_path: Path
) -> None:
    context = _context(stack, tmp_path)
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    spec = ConnectorTaskFailure(at_s=0, component="sink")
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context).startswith("connector sink's task 0 (sink RUNNING)")
    handle = inject(spec, context, ledger=ledger)  # confirmed: Connect's status says FAILED
    assert "task 0 FAILED" in handle.landed and "task failed by datadrill fault" in handle.landed

    failed = connect.task_status("sink", 0)
    assert failed.state == "FAILED" and failed.trace is not None
    assert "ConnectException: task failed by datadrill fault connector.task_failure" in failed.trace
    assert "killed by SIGKILL" in failed.trace and "--- last lines of logs/sink.log ---" in failed.trace
    # The supervisor restarts a crashed process within backoff_max_s (1 s here): a failed
    # task outlasts several of those, looked at all along.
    stays_until = time.monotonic() + 5 * stack.config.supervisor.backoff_max_s
    while time.monotonic() < stays_until:
        assert connect.status("sink").failed_tasks, connect.status("sink").describe()
        time.sleep(0.2)
    assert connect.status("sink").failed_tasks
    assert stack.components.get("sink").pid is None

    result = run_step(RestartConnector(component="sink"), context)
    assert result.detail.startswith("connector sink: task 0 restarted (was FAILED); sink RUNNING after ")
    assert connect.status("sink").running
    assert handle.revert().startswith("nothing to revert: sink RUNNING")
    events = EventLog(stack.paths.events_file).read()
    failed_events = [e for e in events if e["event"] == "process_failed" and e["component"] == "sink"]
    assert failed_events and failed_events[-1]["cause"] == "killed by SIGKILL"
    assert [e for e in events if e["event"] == "process_restarted" and e.get("was_failed")]
    # Nothing failed now: the step says so.
    again = run_step(RestartConnector(component="sink"), context)
    assert again.detail == "nothing to restart: no task of sink was FAILED; sink RUNNING"


def test_the_task_failure_fault_conforms(stack: StackClient, connect: ConnectClient, tmp_path: Path) -> None:
    problems = check_plugin(
        ConnectorTaskFailureFault(),
        ConnectorTaskFailure(at_s=0, component="relay"),
        _context(stack, tmp_path),
    )
    assert problems == []
    assert connect.status("relay").running  # the conformance check's revert restarted it


def test_restart_answers_as_connect_does(stack: StackClient, connect: ConnectClient) -> None:
    url = connect.url
    plain = httpx.post(url + "/connectors/relay/restart")
    assert plain.status_code == 204
    accepted = httpx.post(url + "/connectors/relay/restart?includeTasks=true&onlyFailed=true")
    # Nothing failed: nothing restarts, and the answer says RUNNING.
    assert accepted.status_code == 202 and accepted.json()["tasks"][0]["state"] == "RUNNING"
    pid = stack.components.get("relay").pid
    everything = connect.restart("relay", include_tasks=True)
    assert everything is not None and everything.tasks[0].state == "RESTARTING"
    _running(connect, "relay")
    assert stack.components.get("relay").pid != pid  # a new process
    assert httpx.post(url + "/connectors/relay/tasks/0/restart").status_code == 204
    assert httpx.post(url + "/connectors/relay/tasks/1/restart").status_code == 404


def test_sink_offsets_are_its_snapshots(stack: StackClient, connect: ConnectClient) -> None:
    wait_until(
        lambda: sink_state(stack.catalog().load_table(stack.table))[0], timeout=60, what="a sink commit"
    )
    connect.pause("sink")  # no commit between the two reads
    try:
        offsets = connect.offsets("sink")
        recorded, _ = sink_state(stack.catalog().load_table(stack.table))
    finally:
        connect.resume("sink")
    assert offsets, "the sink has committed offsets"
    assert {
        (o.partition["kafka_topic"], o.partition["kafka_partition"]): o.offset["kafka_offset"]
        for o in offsets
    } == {(stack.topic, p): o for p, o in recorded.items()}
    (relay,) = connect.offsets("relay")
    assert relay.partition == {"source": "outbox"} and relay.offset["event_id"] >= 0


@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_an_external_stack_drives_a_connect_cluster_by_url(
    stack: StackClient, connect: ConnectClient, postgres_dsn: str, tmp_path: Path
) -> None:
    """``[connect] url`` names a Kafka Connect cluster: here the session stack's own Connect
    API plays it. Pauses on ``sink`` reach that cluster's connector, not the external
    stack's own sink process."""
    dsn = new_database(postgres_dsn, "catalog_connect_external")
    for topic, partitions in (("orders.connect", 3), ("orders.connect.dlq", 1)):
        stack.control.post("/kafka/topics", {"name": topic, "partitions": partitions})
    config = tmp_path / "datadrill.toml"
    config.write_text(
        '[kafka]\ntopic = "orders.connect"\npartitions = 3\n\n'
        '[sink]\ngroup_id = "datadrill-sink-connect"\n\n'
        f'[connect]\nurl = "{connect.url}"\n\n'
        "[external]\n"
        f'bootstrap_servers = "{stack.bootstrap_servers}"\n'
        f'catalog_uri = "{dsn}"\n',
        encoding="utf-8",
    )
    state_dir = tmp_path / ".datadrill"
    up = run_cli(
        "stack",
        "up",
        "--backend",
        "external",
        "--config",
        str(config),
        "--state-dir",
        str(state_dir),
        cwd=tmp_path,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        external = StackClient.attach(state_dir)
        assert external.connect.url == connect.url and not external.connect.embedded
        context = _context(external, tmp_path)
        own_sink = external.components.get("sink")

        result = run_step(PauseComponent(component="sink"), context)
        assert result.detail == "sink stopped through Kafka Connect's API"
        assert connect.status("sink").state == "PAUSED"
        # The external stack's own sink process is untouched.
        assert not external.components.get("sink").paused
        assert external.components.get("sink").pid == own_sink.pid
        resumed = run_step(ResumeComponent(component="sink"), context)
        assert resumed.detail.startswith("connector sink resumed")
        _running(connect, "sink")

        # The runner's path: through the ledger, confirmed by Connect's status.
        handle = inject(pause_spec("sink"), context, ledger=FaultLedger(tmp_path / "ledger.jsonl"))
        assert plugin_for("stack.component_paused").confirm(
            pause_spec("sink"), context, handle.data, 10.0
        ) == ("Kafka Connect reports sink PAUSED")
        assert handle.revert().startswith("connector sink resumed")
        _running(connect, "sink")

        # A kill is a restart through the REST API; a task failure cannot be made through it.
        kill = KillComponent(at_s=0, component="sink")
        assert (
            plugin_for(kill.kind)
            .target(kill, context)
            .endswith("POST /connectors/sink/restart?includeTasks=true")
        )
        with pytest.raises(ConfigError, match="cannot be made to fail a task through its REST API"):
            plugin_for("connector.task_failure").target(ConnectorTaskFailure(at_s=0), context)
    finally:
        down = run_cli("stack", "down", "--backend", "external", "--state-dir", str(state_dir), cwd=tmp_path)
        assert down.returncode == 0, down.stdout + down.stderr
