"""Kafka Connect's REST API (interfaces.connect_api) over an in-memory supervisor: the
states it maps, the codes and bodies it answers, and what it asks the supervisor to do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest

from datadrill.config import StackConfig
from datadrill.interfaces.connect_api import ConnectServer
from datadrill.paths import StatePaths
from datadrill.platform.supervisor import ProcessStatus


@dataclass
class MemorySupervisor:
    """The supervisor's calls the API makes, on pretend processes."""

    procs: dict[str, ProcessStatus] = field(
        default_factory=lambda: {
            n: ProcessStatus(n, pid, True, False, 0, None, 1.0)
            for n, pid in (("workload", 11), ("relay", 12), ("sink", 13))
        }
    )
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.procs)

    def status(self) -> list[ProcessStatus]:
        return list(self.procs.values())

    def set(self, name: str, **changes: object) -> None:
        self.procs[name] = replace(self.procs[name], **changes)  # type: ignore[arg-type]

    def pause(self, name: str) -> None:
        self.calls.append(("pause", name))
        self.set(name, paused=True, running=False, pid=None)

    def resume(self, name: str) -> int:
        self.calls.append(("resume", name))
        self.set(name, paused=False, stopped=False, running=True, pid=99)
        return 99

    def release(self, name: str) -> None:
        self.calls.append(("release", name))
        self.set(name, paused=False, stopped=False)

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        self.set(name, stopped=True, running=False, pid=None)

    def restart(self, name: str) -> int | None:
        self.calls.append(("restart", name))
        self.set(name, failed_trace=None, running=True, pid=100)
        return 100


@pytest.fixture
def supervisor() -> MemorySupervisor:
    return MemorySupervisor()


@pytest.fixture
def api(supervisor: MemorySupervisor, tmp_path: Path) -> Iterator[httpx.Client]:
    paths = StatePaths(tmp_path)
    paths.make()
    server = ConnectServer(supervisor, paths, StackConfig(), bootstrap_servers="127.0.0.1:9")
    server.start()
    try:
        with httpx.Client(base_url=server.url) as client:
            yield client
    finally:
        server.stop()


def test_the_workload_is_not_a_connector(api: httpx.Client) -> None:
    assert api.get("/connectors").json() == ["relay", "sink"]
    missing = api.get("/connectors/workload/status")
    assert missing.status_code == 404
    assert missing.json() == {"error_code": 404, "message": "Connector workload not found"}


def test_states_map_onto_the_supervisor(api: httpx.Client, supervisor: MemorySupervisor) -> None:
    def states(name: str) -> tuple[str, list[str]]:
        doc = api.get(f"/connectors/{name}/status").json()
        return doc["connector"]["state"], [t["state"] for t in doc["tasks"]]

    assert states("sink") == ("RUNNING", ["RUNNING"])
    supervisor.set("sink", running=False, pid=None, last_exit="killed by SIGKILL")
    assert states("sink") == ("RUNNING", ["RESTARTING"])  # the supervisor restarts it
    supervisor.set("sink", paused=True)
    assert states("sink") == ("PAUSED", ["PAUSED"])
    supervisor.set("sink", paused=False, stopped=True)
    assert states("sink") == ("STOPPED", [])
    supervisor.set("sink", stopped=False, failed_trace="task failed\nsink (pid 13): killed by SIGKILL")
    doc = api.get("/connectors/sink/status").json()
    assert doc["connector"]["state"] == "RUNNING" and doc["type"] == "sink"
    assert doc["tasks"][0]["state"] == "FAILED"
    assert doc["tasks"][0]["trace"] == "task failed\nsink (pid 13): killed by SIGKILL"
    assert "trace" not in api.get("/connectors/relay/status").json()["tasks"][0]


def test_pause_resume_stop_answer_connects_codes(api: httpx.Client, supervisor: MemorySupervisor) -> None:
    paused = api.put("/connectors/sink/pause")
    assert paused.status_code == 202 and paused.content == b""
    assert api.put("/connectors/sink/pause").status_code == 202  # already paused: nothing more asked
    assert api.put("/connectors/sink/resume").status_code == 202
    assert api.put("/connectors/sink/resume").status_code == 202  # running: a no-op
    stopped = api.put("/connectors/relay/stop")
    assert stopped.status_code == 204 and stopped.content == b""
    assert supervisor.calls == [("pause", "sink"), ("resume", "sink"), ("stop", "relay")]


def test_resuming_a_failed_connector_leaves_its_task_failed(
    api: httpx.Client, supervisor: MemorySupervisor
) -> None:
    supervisor.set("sink", paused=True, running=False, pid=None, failed_trace="boom")
    assert api.put("/connectors/sink/resume").status_code == 202
    assert supervisor.calls == [("release", "sink")]
    assert api.get("/connectors/sink/tasks/0/status").json()["state"] == "FAILED"


def test_restart_codes_and_what_it_restarts(api: httpx.Client, supervisor: MemorySupervisor) -> None:
    plain = api.post("/connectors/sink/restart")
    assert plain.status_code == 204 and supervisor.calls == []  # the connector instance alone
    only_failed = api.post("/connectors/sink/restart", params={"includeTasks": "true", "onlyFailed": "true"})
    assert only_failed.status_code == 202
    assert only_failed.json()["tasks"][0]["state"] == "RUNNING" and supervisor.calls == []
    supervisor.set("sink", failed_trace="boom", running=False, pid=None)
    again = api.post("/connectors/sink/restart?includeTasks=true&onlyFailed=true")
    assert again.status_code == 202
    task = again.json()["tasks"][0]
    assert task["state"] == "RESTARTING" and "trace" not in task
    assert supervisor.calls == [("restart", "sink")]
    assert api.post("/connectors/relay/tasks/0/restart").status_code == 204
    assert supervisor.calls[-1] == ("restart", "relay")
    unknown_task = api.post("/connectors/relay/tasks/7/restart")
    assert unknown_task.status_code == 404 and unknown_task.json()["message"] == "Task relay-7 not found"
    bad = api.post("/connectors/sink/restart?includeTasks=yes")
    assert bad.status_code == 400 and "includeTasks must be true or false" in bad.json()["message"]


def test_documents_and_errors(api: httpx.Client) -> None:
    info = api.get("/connectors/relay").json()
    assert info["type"] == "source" and info["tasks"] == [{"connector": "relay", "task": 0}]
    assert info["config"]["connector.class"] == "datadrill.platform.relay"
    assert all(isinstance(v, str) for v in api.get("/connectors/sink/config").json().values())
    both = api.get("/connectors?expand=status&expand=info").json()
    assert set(both["sink"]) == {"status", "info"}
    assert set(api.get("/connectors", params={"expand": "status"}).json()["relay"]) == {"status"}
    tasks = api.get("/connectors/sink/tasks").json()
    assert tasks[0]["id"] == {"connector": "sink", "task": 0} and tasks[0]["config"]["task.id"] == "0"
    wrong = api.post("/connectors/sink/pause")
    assert wrong.status_code == 405 and wrong.json()["error_code"] == 405
    assert api.get("/nothing").json()["error_code"] == 404


def test_relay_offsets_are_its_outbox_position(api: httpx.Client, tmp_path: Path) -> None:
    """The last outbox event id the relay marked: below the oldest one still waiting, or the
    newest ever handed out when none waits."""
    from datadrill.platform import source_db

    def position() -> object:
        (entry,) = api.get("/connectors/relay/offsets").json()["offsets"]
        assert entry["partition"] == {"source": "outbox"}
        return entry["offset"]

    assert position() == {"event_id": 0}
    db = source_db.connect(StatePaths(tmp_path).source_db)
    try:
        source_db.insert_orders(db, [(n, 7, 100 * n, "EUR", "new", 1_000_000 + n, 0) for n in range(1, 6)])
        assert position() == {"event_id": 0}  # five waiting, none marked
        source_db.mark_published(db, up_to_event_id=3)
        assert position() == {"event_id": 3}
        source_db.mark_published(db, up_to_event_id=5)
        assert position() == {"event_id": 5}  # none waiting: the newest handed out
    finally:
        db.close()
