"""A typed client of Kafka Connect's REST API: the stack's own (:mod:`.connect_api`) or a
real Connect cluster's (``[connect] url``), the same calls on both.

An error document (``{"error_code": 404, "message": "Connector x not found"}``) or an
unreachable worker raises :class:`ConnectError` (a ``ControlError``) naming the URL, the
request and Connect's message.

Example::

    connect = ConnectClient("http://127.0.0.1:8083")
    connect.connectors()                          # ("relay", "sink")
    connect.status("sink").tasks[0].state         # "RUNNING"
    connect.pause("sink")                         # 202: the connector goes PAUSED
    connect.restart("sink", include_tasks=True, only_failed=True)
    connect.offsets("sink")[0].offset             # {"kafka_offset": 1234}
    connect.stop("enricher")                      # offsets move only while STOPPED
    connect.alter_offsets("enricher", [ConnectOffset({"kafka_topic": "orders.v1", "kafka_partition": 0},
                                                     {"kafka_offset": 0})])
    connect.reset_offsets("enricher")             # Connect's message, e.g. "... reset successfully ..."
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from datadrill.errors import ControlError

# A Connect worker answers an offsets request within its REST request timeout (90 s): the
# consumer group's offsets are moved while the client waits.
OFFSETS_TIMEOUT_S = 95.0


class ConnectError(ControlError):
    """Kafka Connect answered with an error document, or did not answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TaskState:
    id: int
    state: str  # RUNNING, PAUSED, FAILED, RESTARTING, UNASSIGNED
    worker_id: str = ""
    trace: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskState:
        trace = data.get("trace")
        return cls(int(data["id"]), str(data["state"]), str(data.get("worker_id", "")), trace)


@dataclass(frozen=True)
class ConnectorState:
    """``GET /connectors/{name}/status``."""

    name: str
    state: str  # the connector instance's: RUNNING, PAUSED, STOPPED, FAILED, ...
    type: str = ""
    worker_id: str = ""
    tasks: tuple[TaskState, ...] = ()
    trace: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConnectorState:
        connector = data.get("connector", {})
        return cls(
            name=str(data["name"]),
            state=str(connector.get("state", "")),
            type=str(data.get("type", "")),
            worker_id=str(connector.get("worker_id", "")),
            tasks=tuple(TaskState.from_json(t) for t in data.get("tasks", [])),
            trace=connector.get("trace"),
        )

    @property
    def running(self) -> bool:
        """The connector and every task RUNNING (a connector with no task is not)."""
        return self.state == "RUNNING" and bool(self.tasks) and all(t.state == "RUNNING" for t in self.tasks)

    @property
    def failed_tasks(self) -> tuple[TaskState, ...]:
        return tuple(t for t in self.tasks if t.state == "FAILED")

    def describe(self) -> str:
        """``sink RUNNING (task 0 FAILED)``: the connector's state and any task that differs."""
        odd = [f"task {t.id} {t.state}" for t in self.tasks if t.state != self.state]
        if self.state == "RUNNING" and not self.tasks:
            odd.append("no tasks")
        return f"{self.name} {self.state}" + (f" ({', '.join(odd)})" if odd else "")


@dataclass(frozen=True)
class ConnectOffset:
    """One entry of ``GET /connectors/{name}/offsets``."""

    partition: Mapping[str, Any] = field(default_factory=dict)
    offset: Mapping[str, Any] = field(default_factory=dict)


class ConnectClient:
    """Kafka Connect's REST API at ``url``. ``transport``: an httpx.MockTransport in tests."""

    def __init__(
        self, url: str, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)

    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        json: Any = None,
        timeout_s: float | None = None,
    ) -> Any:
        where = f"Kafka Connect at {self.url}: {method} {path}"
        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        try:
            response = self._http.request(
                method, path, params=dict(params) if params else None, json=json, **extra
            )
        except httpx.HTTPError as exc:
            raise ConnectError(f"{where} failed: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("message")
            except (ValueError, AttributeError):
                message = None
            text = message or response.text[:200] or response.reason_phrase
            raise ConnectError(f"{where} → {response.status_code}: {text}", status=response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectError(f"{where}: not JSON: {response.text[:200]!r}") from exc

    def version(self) -> dict[str, Any]:
        return dict(self._request("GET", "/"))

    def connectors(self) -> tuple[str, ...]:
        return tuple(str(n) for n in self._request("GET", "/connectors"))

    def statuses(self) -> dict[str, ConnectorState]:
        """Every connector's status in one request (``?expand=status``)."""
        data = self._request("GET", "/connectors", {"expand": "status"})
        return {name: ConnectorState.from_json(entry["status"]) for name, entry in data.items()}

    def info(self, name: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/connectors/{name}"))

    def config(self, name: str) -> dict[str, str]:
        return dict(self._request("GET", f"/connectors/{name}/config"))

    def status(self, name: str) -> ConnectorState:
        return ConnectorState.from_json(self._request("GET", f"/connectors/{name}/status"))

    def task_status(self, name: str, task: int) -> TaskState:
        return TaskState.from_json(self._request("GET", f"/connectors/{name}/tasks/{task}/status"))

    def pause(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/resume")

    def stop(self, name: str) -> None:
        self._request("PUT", f"/connectors/{name}/stop")

    def restart(
        self, name: str, *, include_tasks: bool = False, only_failed: bool = False
    ) -> ConnectorState | None:
        """The status Connect answers with (RESTARTING for what it restarts), or None for its
        204 (the connector instance alone restarted)."""
        params = {"includeTasks": str(include_tasks).lower(), "onlyFailed": str(only_failed).lower()}
        data = self._request("POST", f"/connectors/{name}/restart", params)
        return None if data is None else ConnectorState.from_json(data)

    def restart_task(self, name: str, task: int) -> None:
        self._request("POST", f"/connectors/{name}/tasks/{task}/restart")

    def offsets(self, name: str) -> tuple[ConnectOffset, ...]:
        data = self._request("GET", f"/connectors/{name}/offsets")
        return tuple(
            ConnectOffset(dict(o.get("partition") or {}), dict(o.get("offset") or {}))
            for o in data.get("offsets", [])
        )

    def alter_offsets(self, name: str, offsets: Sequence[ConnectOffset]) -> str:
        """``PATCH /connectors/{name}/offsets`` (KIP-875; the connector must be STOPPED):
        Connect's message. An offset of ``{}`` sends null (reset that partition)."""
        body = {
            "offsets": [{"partition": dict(o.partition), "offset": dict(o.offset) or None} for o in offsets]
        }
        data = self._request("PATCH", f"/connectors/{name}/offsets", json=body, timeout_s=OFFSETS_TIMEOUT_S)
        return str((data or {}).get("message", ""))

    def reset_offsets(self, name: str) -> str:
        """``DELETE /connectors/{name}/offsets`` (the connector must be STOPPED): Connect's message."""
        data = self._request("DELETE", f"/connectors/{name}/offsets", timeout_s=OFFSETS_TIMEOUT_S)
        return str((data or {}).get("message", ""))

    def close(self) -> None:
        self._http.close()
