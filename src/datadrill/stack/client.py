"""The one implementation of the :class:`~datadrill.stack.port.Stack` protocol for real
stacks: typed methods over the stack process's control API (httpx), whatever backend runs
behind it.

Example::

    stack = StackClient.attach(Path(".datadrill"))
    stack.kafka.broker_down(1)
    stack.components.get("sink").paused
    stack.mart_queries().rows("SELECT count(*) FROM dwh.orders")   # over the query path
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from datadrill.config import StackConfig, read_running_config
from datadrill.errors import ControlError, RunLeaseHeld, RunLeaseLost, StackNotRunning, StackProcessDied
from datadrill.interfaces.connect_client import ConnectClient
from datadrill.paths import StatePaths
from datadrill.procs import alive, pid_namespace
from datadrill.stack.port import (
    ComponentStatus,
    KafkaCapability,
    ProducerContract,
    ProxyPath,
    RunLeaseInfo,
    StackStatus,
    WorkloadSettings,
)
from datadrill.stack.state import require_state

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from datadrill.platform.query import QueryEngine
    from datadrill.platform.source_conn import SourceConnection
    from datadrill.platform.warehouse import Warehouse
    from datadrill.probes.base import MartQueries


class ControlClient:
    """JSON over HTTP to a stack process's control API (loopback only)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 15.0,
        pid: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith("http://127.0.0.1:"):
            raise ControlError(f"refusing control URL {url!r}: the stack process is loopback only")
        self.url = url
        self.pid = pid
        # ``transport``: httpx.MockTransport in unit tests; the network otherwise.
        self._http = httpx.Client(base_url=url, timeout=timeout_s, transport=transport)

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=dict(body) if body is not None else None)
        except httpx.TransportError as exc:
            if self.pid is not None and not alive(self.pid):
                raise StackProcessDied(
                    f"the stack process (pid {self.pid}) died; its log is the state directory's "
                    "logs/stack.log. Run 'datadrill stack up' to start a new one (it cleans up first)"
                ) from None
            raise StackNotRunning(f"stack control interface at {self.url} is unreachable: {exc}") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code == RunLeaseHeld.http_status:
            raise RunLeaseHeld(str(payload.get("error")), holder=payload.get("holder"))
        if response.status_code == RunLeaseLost.http_status:
            raise RunLeaseLost(str(payload.get("error")))
        if response.status_code >= 400:
            raise ControlError(f"{method} {path}: {payload.get('error', response.reason_phrase)}")
        if not isinstance(payload, dict):
            raise ControlError(f"{method} {path}: the stack answered {payload!r}, not a JSON object")
        return payload

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("POST", path, body or {})

    def delete(self, path: str) -> dict[str, Any]:
        return self.request("DELETE", path)

    def close(self) -> None:
        self._http.close()


def parse_status(data: Mapping[str, Any]) -> StackStatus:
    pid = data.get("pid")
    return StackStatus(
        healthy=bool(data["healthy"]),
        components=tuple(ComponentStatus.from_json(c) for c in data["components"]),
        pid=int(pid) if pid else None,
        backend=str(data.get("backend", "")),
        uptime_s=float(data.get("uptime_s", 0.0)),
        raw=dict(data),
    )


@dataclass(frozen=True)
class _Kafka:
    control: ControlClient
    state: Mapping[str, Any]
    topic: str

    @property
    def bootstrap_servers(self) -> str:
        return str(self.state["bootstrap_servers"])

    @property
    def _reasons(self) -> dict[str, str]:
        return dict(self.state.get("kafka_capabilities", {}))

    @property
    def capabilities(self) -> frozenset[KafkaCapability]:
        return frozenset(KafkaCapability(name) for name, why in self._reasons.items() if not why)

    def why_not(self, capability: KafkaCapability) -> str:
        return self._reasons.get(capability.value, "this stack does not say it can")

    def broker_down(self, broker: int) -> None:
        self.control.post(f"/kafka/brokers/{broker}/down")

    def broker_up(self, broker: int) -> None:
        self.control.post(f"/kafka/brokers/{broker}/up")

    def set_rtt(self, broker: int, rtt_ms: int) -> None:
        self.control.post(f"/kafka/brokers/{broker}/rtt", {"rtt_ms": rtt_ms})

    def push_request_errors(self, api_key: int, errors: Sequence[int]) -> None:
        self.control.post("/kafka/request-errors", {"api_key": api_key, "errors": list(errors)})

    def clear_request_errors(self, api_key: int) -> None:
        self.control.delete(f"/kafka/request-errors/{api_key}")

    def move_leader(self, topic: str, partition: int, broker: int) -> None:
        self.control.post(
            "/kafka/partitions/leader", {"topic": topic, "partition": partition, "broker_id": broker}
        )

    def delete_records(self, topic: str, before: Mapping[int, int]) -> dict[int, int]:
        body = {"before": {str(p): int(o) for p, o in before.items()}}
        answer = self.control.post(f"/kafka/topics/{topic}/delete-records", body)
        return {int(p): int(o) for p, o in dict(answer["low_watermarks"]).items()}

    def recreate_topic(self, topic: str) -> dict[str, int]:
        answer = self.control.post(f"/kafka/topics/{topic}/recreate")
        return {"partitions": int(answer["partitions"]), "replication_factor": int(answer["replication_factor"])}


@dataclass(frozen=True)
class _Components:
    control: ControlClient

    def list(self) -> tuple[ComponentStatus, ...]:
        data = self.control.get("/components")
        return tuple(ComponentStatus.from_json(c) for c in data["components"])

    def get(self, name: str) -> ComponentStatus:
        return ComponentStatus.from_json(self.control.get(f"/components/{name}"))

    def kill(self, name: str, signal: str = "SIGKILL") -> int:
        return int(self.control.post(f"/components/{name}/signal", {"signal": signal})["pid"])

    def pause(self, name: str) -> None:
        self.control.post(f"/components/{name}/pause")

    def resume(self, name: str) -> int:
        return int(self.control.post(f"/components/{name}/resume")["pid"])

    def arm_crash_point(self, name: str, point: str) -> None:
        self.control.post(f"/components/{name}/crash-point", {"point": point})

    def crash_point_armed(self, name: str) -> bool:
        return bool(self.control.get(f"/components/{name}/crash-point")["armed"])

    def disarm_crash_point(self, name: str) -> None:
        self.control.delete(f"/components/{name}/crash-point")

    def fail(self, name: str, reason: str) -> str:
        return str(self.control.post(f"/components/{name}/fail", {"reason": reason})["trace"])


class _Connect(ConnectClient):
    """Kafka Connect's REST API: the stack's own (stack.json's ``connect_url``) or the
    cluster's named by ``[connect] url`` (external and compose backends)."""

    def __init__(self, url: str, *, embedded: bool, transport: httpx.BaseTransport | None) -> None:
        # A stack process from before the Connect API has no URL: every call says so.
        super().__init__(url or "http://127.0.0.1:0", transport=transport)
        self._missing = not url
        self._embedded = embedded

    def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        json: Any = None,
        timeout_s: float | None = None,
    ) -> Any:
        if self._missing:
            raise ControlError(
                "this stack serves no Kafka Connect REST API; name a Connect cluster with "
                '[connect] url = "http://HOST:8083" in datadrill.toml'
            )
        return super()._request(method, path, params, json=json, timeout_s=timeout_s)

    @property
    def embedded(self) -> bool:
        return self._embedded


@dataclass(frozen=True)
class _Workload:
    control: ControlClient

    def get(self) -> WorkloadSettings:
        data = self.control.get("/workload")
        return WorkloadSettings(rate=float(data["rate"]), canary_interval_s=float(data["canary_interval_s"]))

    def set(self, *, rate: float | None = None, canary_interval_s: float | None = None) -> WorkloadSettings:
        body = {
            k: v for k, v in {"rate": rate, "canary_interval_s": canary_interval_s}.items() if v is not None
        }
        data = self.control.post("/workload", body)
        return WorkloadSettings(rate=float(data["rate"]), canary_interval_s=float(data["canary_interval_s"]))


@dataclass(frozen=True)
class _Platform:
    control: ControlClient

    def throttle_sink(self, rows_per_s: float | None) -> None:
        self.control.post("/platform/sink-throttle", {"rows_per_s": rows_per_s})

    def producer_contract(self) -> ProducerContract:
        data = self.control.get("/platform/producer-contract")
        return ProducerContract(writer=data.get("writer"), enforce=bool(data["enforce"]))

    def set_producer_contract(self, contract: ProducerContract) -> None:
        self.control.post(
            "/platform/producer-contract", {"writer": contract.writer, "enforce": contract.enforce}
        )


@dataclass(frozen=True)
class _Network:
    state: Mapping[str, Any]

    @property
    def api_url(self) -> str:
        return str(self.state.get("fault_proxy_url") or "")

    def paths(self) -> Mapping[str, ProxyPath]:
        return {
            name: ProxyPath(name, str(info["listen"]), str(info["upstream"]))
            for name, info in dict(self.state.get("proxies", {})).items()
        }


@dataclass(frozen=True)
class _RunLeases:
    control: ControlClient

    def acquire(self, *, run_id: str, scenario: str, pid: int, run_dir: str, lease_s: float) -> RunLeaseInfo:
        body = {
            "run_id": run_id,
            "scenario": scenario,
            "pid": pid,
            "run_dir": run_dir,
            "lease_s": lease_s,
            "pid_ns": pid_namespace() if pid == os.getpid() else None,
        }
        return RunLeaseInfo.from_json(self.control.post("/runs/lease", body)["lease"])

    def renew(self, run_id: str) -> RunLeaseInfo:
        return RunLeaseInfo.from_json(self.control.post(f"/runs/lease/{run_id}/renew")["lease"])

    def release(self, run_id: str) -> None:
        self.control.delete(f"/runs/lease/{run_id}")

    def holder(self) -> RunLeaseInfo | None:
        lease = self.control.get("/runs/lease").get("lease")
        return None if lease is None else RunLeaseInfo.from_json(lease)


@dataclass(frozen=True)
class StackClient:
    """A running stack, reached through its state directory and control API."""

    paths: StatePaths
    config: StackConfig
    state: Mapping[str, Any]
    transport: httpx.BaseTransport | None = None  # a test's httpx.MockTransport

    @classmethod
    def attach(cls, state_dir: Path) -> StackClient:
        """Attach to the stack running in ``state_dir`` (raises StackNotRunning, or
        StackProcessDied when its process is gone)."""
        paths = StatePaths(state_dir)
        state = require_state(paths)
        return cls(paths, read_running_config(paths), state)

    @cached_property
    def control(self) -> ControlClient:
        return ControlClient(str(self.state["control_url"]), pid=self.pid, transport=self.transport)

    @property
    def backend(self) -> str:
        return str(self.state.get("backend", "embedded"))

    @property
    def pid(self) -> int | None:
        pid = self.state.get("pid")
        return int(pid) if pid else None

    @property
    def kafka(self) -> _Kafka:
        return _Kafka(self.control, self.state, self.config.kafka.topic)

    @property
    def components(self) -> _Components:
        return _Components(self.control)

    @property
    def workload(self) -> _Workload:
        return _Workload(self.control)

    @property
    def platform(self) -> _Platform:
        return _Platform(self.control)

    @property
    def network(self) -> _Network:
        return _Network(self.state)

    @property
    def runs(self) -> _RunLeases:
        return _RunLeases(self.control)

    @cached_property
    def connect(self) -> _Connect:
        """``[connect] url`` when the config names a Connect cluster, else the stack's own."""
        configured = self.config.connect.url
        if configured:
            return _Connect(configured, embedded=False, transport=self.transport)
        return _Connect(str(self.state.get("connect_url") or ""), embedded=True, transport=self.transport)

    @property
    def bootstrap_servers(self) -> str:
        return str(self.state["bootstrap_servers"])

    @property
    def topic(self) -> str:
        return self.config.kafka.topic

    @property
    def table(self) -> str:
        return self.config.catalog.table

    @property
    def catalog_uri(self) -> str:
        from datadrill.platform.catalog import catalog_uri

        return catalog_uri(self.config, self.paths)

    def alive(self) -> bool:
        return self.pid is not None and alive(self.pid)

    def status(self) -> StackStatus:
        return parse_status(self.control.get("/status"))

    def catalog(self) -> Catalog:
        from datadrill.platform.catalog import open_stack_catalog

        return open_stack_catalog(self.config, self.paths)

    def warehouse(self) -> Warehouse:
        from datadrill.platform.catalog import file_io_properties, warehouse_location
        from datadrill.platform.warehouse import Warehouse

        return Warehouse(warehouse_location(self.config, self.paths), file_io_properties(self.config))

    def query_engine(self) -> QueryEngine:
        from datadrill.platform.query import QueryEngine

        return QueryEngine(self.catalog(), default_tables=(self.table,))

    def mart_queries(self, *, timeout_s: float = 2.0) -> MartQueries:
        """A Trino client on the dashboards' query path: the embedded query service (Trino's
        protocol over DuckDB) through the ``query`` proxy, or a cluster's Trino."""
        from datadrill.interfaces.trino_client import TrinoQueryEngine

        engine = TrinoQueryEngine.from_url(str(self.state["query_url"]), timeout_s=timeout_s)
        # The SQL dialect behind the protocol, for the few functions that differ.
        engine.dialect = str(self.state.get("query_engine") or "duckdb")
        return engine

    def source(self) -> SourceConnection:
        from datadrill.platform import source_db

        return source_db.connect(self.source_uri)

    @property
    def source_uri(self) -> str:
        """The harness's way to the source database: a ``postgresql://`` URI or the SQLite
        file's path (a stack started before sources could be PostgreSQL has no key)."""
        return str(self.state.get("source_uri") or self.paths.source_db)


# The name the first releases exported; the client is not embedded-only any more.
EmbeddedStack = StackClient
