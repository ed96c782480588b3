"""An in-memory :class:`~datadrill.stack.port.Stack` for unit tests: no process, no socket.

It records what the harness did to it (``calls``) and lets a test break and heal a
pretend table (``table_ok``), kill the pretend stack process (``die``), and give the
network port a real fault proxy's API. For faults that are confirmed from the outside it
can also hold a real Iceberg catalog in its state directory (``with_catalog``: SQLite and
local files, in process) and a real mock Kafka cluster (``kafka.cluster``: librdkafka, in
process); it writes what the stack process writes for a pushed request error (its event
log) and a sink throttle (the file the sink reads).

Example::

    stack = FakeStack(tmp_path)
    stack.components.pause("sink")
    stack.components.get("sink").paused   # True
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datadrill.config import StackConfig
from datadrill.errors import ControlError
from datadrill.interfaces.connect_client import ConnectOffset, ConnectorState, TaskState
from datadrill.paths import StatePaths
from datadrill.stack.port import (
    ComponentStatus,
    KafkaCapability,
    ProducerContract,
    ProxyPath,
    RunLeaseInfo,
    StackStatus,
    WorkloadSettings,
)


@dataclass
class FakeKafka:
    calls: list[tuple[Any, ...]]
    capabilities: frozenset[KafkaCapability] = frozenset(KafkaCapability)
    bootstrap_servers: str = "127.0.0.1:9"
    topic: str = "orders.v1"
    # A real in-process mock cluster (datadrill.backends.kafka.mock.MockCluster): broker
    # faults reach it, and bootstrap_servers points at it. None: calls are only recorded.
    cluster: Any = None
    # Where pushed request errors are logged, as the stack process logs them (None: nowhere).
    events_file: Path | None = None
    # (partitions, replication factor) recreate_topic gives a topic on the cluster.
    topic_layout: tuple[int, int] = (3, 3)

    def use_cluster(self, cluster: Any) -> None:
        self.cluster = cluster
        self.bootstrap_servers = cluster.bootstrap_servers

    def why_not(self, capability: KafkaCapability) -> str:
        return "" if capability in self.capabilities else "the fake stack was built without it"

    def broker_down(self, broker: int) -> None:
        self.calls.append(("broker_down", broker))
        if self.cluster is not None:
            self.cluster.broker_down(broker)

    def broker_up(self, broker: int) -> None:
        self.calls.append(("broker_up", broker))
        if self.cluster is not None:
            self.cluster.broker_up(broker)

    def set_rtt(self, broker: int, rtt_ms: int) -> None:
        self.calls.append(("set_rtt", broker, rtt_ms))
        if self.cluster is not None:
            self.cluster.set_broker_rtt(broker, rtt_ms)

    def push_request_errors(self, api_key: int, errors: Sequence[int]) -> None:
        self.calls.append(("push_request_errors", api_key, tuple(errors)))
        if self.cluster is not None:
            self.cluster.push_request_errors(api_key, list(errors))
        if self.events_file is not None:
            from datadrill.platform.supervisor import EventLog

            EventLog(self.events_file).append(
                {"event": "request_errors_pushed", "api_key": api_key, "errors": list(errors), "broker": None}
            )

    def clear_request_errors(self, api_key: int) -> None:
        self.calls.append(("clear_request_errors", api_key))

    def move_leader(self, topic: str, partition: int, broker: int) -> None:
        self.calls.append(("move_leader", topic, partition, broker))

    def delete_records(self, topic: str, before: Mapping[int, int]) -> dict[int, int]:
        self.calls.append(("delete_records", topic, dict(before)))
        if self.cluster is not None:
            for partition, offset in before.items():
                self.cluster.delete_records(topic, partition, offset)
        return dict(before)

    def recreate_topic(self, topic: str) -> dict[str, int]:
        """On the cluster: deleted (if there) and created with ``topic_layout``."""
        self.calls.append(("recreate_topic", topic))
        if self.cluster is None:
            return {"partitions": 0, "replication_factor": 0}
        partitions, rf = self.topic_layout
        self.cluster.delete_topic(topic, missing_ok=True)
        self.cluster.create_topic(topic, partitions=partitions, replication_factor=rf)
        return {"partitions": partitions, "replication_factor": rf}


@dataclass
class _Process:
    pid: int
    paused: bool = False
    restarts: int = 0
    stopped: bool = False  # Kafka Connect's STOPPED
    failed: str | None = None  # the trace while FAILED (not restarted until a restart)


@dataclass
class FakeComponents:
    calls: list[tuple[Any, ...]]
    procs: dict[str, _Process] = field(
        default_factory=lambda: {"workload": _Process(101), "relay": _Process(102), "sink": _Process(103)}
    )
    crash_points: dict[str, str] = field(default_factory=dict)
    # False: an armed crash point is never reached (a pipeline with no data flowing).
    crash_points_fire: bool = False

    def _proc(self, name: str) -> _Process:
        if name not in self.procs:
            raise ControlError(f"unknown component {name!r}")
        return self.procs[name]

    def _status(self, name: str) -> ComponentStatus:
        proc = self._proc(name)
        held = proc.paused or proc.stopped or proc.failed is not None
        detail = "FAILED" if proc.failed is not None else "PAUSED" if proc.paused else "running"
        return ComponentStatus(
            name=name,
            endpoint=f"pid {proc.pid}",
            healthy=not held,
            detail="STOPPED" if proc.stopped and proc.failed is None else detail,
            pid=None if held else proc.pid,
            paused=proc.paused,
            restarts=proc.restarts,
        )

    def list(self) -> tuple[ComponentStatus, ...]:
        return tuple(self._status(name) for name in self.procs)

    def get(self, name: str) -> ComponentStatus:
        return self._status(name)

    def kill(self, name: str, signal: str = "SIGKILL") -> int:
        proc = self._proc(name)
        self.calls.append(("kill", name, signal))
        pid = proc.pid
        proc.pid += 1000  # the supervisor's restart
        proc.restarts += 1
        return pid

    def pause(self, name: str) -> None:
        self.calls.append(("pause", name))
        self._proc(name).paused = True

    def resume(self, name: str) -> int:
        self.calls.append(("resume", name))
        proc = self._proc(name)
        if not proc.paused:
            raise ControlError(f"component {name!r} is not paused")
        proc.paused = False
        return proc.pid

    def arm_crash_point(self, name: str, point: str) -> None:
        self.crash_points[name] = point

    def crash_point_armed(self, name: str) -> bool:
        if name in self.crash_points and self.crash_points_fire:
            # The pretend process reaches its crash point as soon as anyone looks.
            del self.crash_points[name]
            self.kill(name)
        return name in self.crash_points

    def disarm_crash_point(self, name: str) -> None:
        self.crash_points.pop(name, None)

    def fail(self, name: str, reason: str) -> str:
        proc = self._proc(name)
        self.calls.append(("fail", name))
        proc.failed = f"{reason}\n{name} (pid {proc.pid}): killed by SIGKILL"
        return proc.failed


@dataclass
class FakeConnect:
    """Kafka Connect's REST API in memory, over the fake components ``relay`` and ``sink``
    (``embedded`` False plays a real Connect cluster named by ``[connect] url``)."""

    components: FakeComponents
    calls: list[tuple[Any, ...]]
    embedded: bool = True
    url: str = "http://127.0.0.1:8083"
    connector_types: dict[str, str] = field(default_factory=lambda: {"relay": "source", "sink": "sink"})

    def connectors(self) -> tuple[str, ...]:
        return tuple(self.connector_types)

    def _proc(self, name: str) -> _Process:
        from datadrill.interfaces.connect_client import ConnectError

        if name not in self.connector_types:
            raise ConnectError(f"Kafka Connect at {self.url}: 404: Connector {name} not found", status=404)
        return self.components._proc(name)

    def status(self, name: str) -> ConnectorState:
        proc = self._proc(name)
        if proc.stopped:
            return ConnectorState(name, "STOPPED", self.connector_types[name])
        state = "PAUSED" if proc.paused else "RUNNING"
        task = TaskState(0, "FAILED", trace=proc.failed) if proc.failed is not None else TaskState(0, state)
        return ConnectorState(name, state, self.connector_types[name], tasks=(task,))

    def pause(self, name: str) -> None:
        self.calls.append(("connect.pause", name))
        self._proc(name).paused = True

    def resume(self, name: str) -> None:
        self.calls.append(("connect.resume", name))
        proc = self._proc(name)
        proc.paused = proc.stopped = False

    def stop(self, name: str) -> None:
        self.calls.append(("connect.stop", name))
        self._proc(name).stopped = True

    def restart(self, name: str, *, include_tasks: bool = False, only_failed: bool = False) -> ConnectorState | None:
        self.calls.append(("connect.restart", name, include_tasks, only_failed))
        proc = self._proc(name)
        if not include_tasks and not only_failed:
            return None
        status = self.status(name)
        if include_tasks and (not only_failed or proc.failed is not None) and status.tasks:
            proc.failed = None
            proc.restarts += 1
            proc.pid += 1000
            return replace(status, tasks=(TaskState(0, "RESTARTING"),))
        return status

    def restart_task(self, name: str, task: int) -> None:
        self.restart(name, include_tasks=True)

    def offsets(self, name: str) -> tuple[ConnectOffset, ...]:
        self._proc(name)
        return ()


@dataclass
class FakeWorkload:
    calls: list[tuple[Any, ...]]
    settings: WorkloadSettings = field(default_factory=lambda: WorkloadSettings(200.0, 1.0))

    def get(self) -> WorkloadSettings:
        return self.settings

    def set(self, *, rate: float | None = None, canary_interval_s: float | None = None) -> WorkloadSettings:
        self.calls.append(("workload", rate, canary_interval_s))
        self.settings = WorkloadSettings(
            self.settings.rate if rate is None else rate,
            self.settings.canary_interval_s if canary_interval_s is None else canary_interval_s,
        )
        return self.settings


@dataclass
class FakePlatform:
    throttle: float | None = None
    contract: ProducerContract = field(default_factory=ProducerContract)
    # Where the throttle goes, as the stack process writes it for the sink (None: nowhere).
    paths: StatePaths | None = None

    def throttle_sink(self, rows_per_s: float | None) -> None:
        self.throttle = rows_per_s
        if self.paths is not None:
            if rows_per_s is None:
                self.paths.sink_throttle.unlink(missing_ok=True)
            else:
                self.paths.sink_throttle.write_text(str(float(rows_per_s)), encoding="utf-8")

    def producer_contract(self) -> ProducerContract:
        return self.contract

    def set_producer_contract(self, contract: ProducerContract) -> None:
        self.contract = contract


@dataclass
class FakeNetwork:
    api_url: str = ""
    proxies: dict[str, ProxyPath] = field(default_factory=dict)

    def paths(self) -> Mapping[str, ProxyPath]:
        return dict(self.proxies)


class FakeRunLeases:
    """The stack process's own lease logic (backends/stackd/leases.py) in memory, on the
    test's clock; an expired lease is "reaped" by recording it in ``reaped``."""

    def __init__(self, clock: Any | None = None) -> None:
        from datadrill.backends.stackd.leases import ReapResult, RunLease, RunLeases
        from datadrill.clock import MonotonicClock

        self.reaped: list[str] = []

        def reaper(lease: RunLease) -> ReapResult:
            self.reaped.append(lease.run_id)
            return ReapResult()

        self.leases = RunLeases(clock or MonotonicClock(), reaper=reaper)

    def acquire(self, *, run_id: str, scenario: str, pid: int, run_dir: str, lease_s: float) -> RunLeaseInfo:
        body = {"run_id": run_id, "scenario": scenario, "pid": pid, "run_dir": run_dir, "lease_s": lease_s}
        return RunLeaseInfo.from_json(self.leases.acquire(body)["lease"])

    def renew(self, run_id: str) -> RunLeaseInfo:
        return RunLeaseInfo.from_json(self.leases.renew(run_id)["lease"])

    def release(self, run_id: str) -> None:
        self.leases.release(run_id)

    def holder(self) -> RunLeaseInfo | None:
        lease = self.leases.current()["lease"]
        return None if lease is None else RunLeaseInfo.from_json(lease)


class FakeStack:
    """A stack in memory. ``table_ok`` is the pretend table's health, which test faults
    break and test runbook steps repair."""

    backend = "fake"
    pid: int | None = None

    def __init__(self, root: Path, *, capabilities: frozenset[KafkaCapability] = frozenset(KafkaCapability)) -> None:
        self.paths = StatePaths(root)
        self.paths.make()
        self.config = StackConfig()
        self.calls: list[tuple[Any, ...]] = []
        self.kafka = FakeKafka(self.calls, capabilities=capabilities, events_file=self.paths.events_file)
        self.components = FakeComponents(self.calls)
        self.workload = FakeWorkload(self.calls)
        self.platform = FakePlatform(paths=self.paths)
        self.network = FakeNetwork()
        self.runs = FakeRunLeases()
        self.connect = FakeConnect(self.components, self.calls)
        self.broken: set[str] = set()  # components the status reports unhealthy
        self.table_ok = True
        self._alive = True
        self._catalog = False

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def topic(self) -> str:
        return self.kafka.topic

    @property
    def table(self) -> str:
        return self.config.catalog.table

    @property
    def catalog_uri(self) -> str:
        return f"sqlite:///{self.paths.catalog_db}"

    def die(self) -> None:
        self._alive = False

    def alive(self) -> bool:
        return self._alive

    def status(self) -> StackStatus:
        components = tuple(
            replace(c, healthy=False, detail="broken by the test") if c.name in self.broken else c
            for c in self.components.list()
        )
        return StackStatus(healthy=all(c.healthy for c in components), components=components, backend="fake")

    def _no(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"the fake stack has no {what}; give the test a real stack")

    def with_catalog(self, *, commits: int = 2) -> FakeStack:
        """Give the stack a real catalog: SQLite in its state directory, the table's files
        under its warehouse directory, the sink's table with ``commits`` metadata commits
        after its creation (each writes a ``*.metadata.json``)."""
        from datadrill.platform.catalog import ensure_orders_table, open_catalog

        catalog = open_catalog(self.catalog_uri, self.paths.warehouse, init_tables=True)
        table = ensure_orders_table(catalog, self.table)
        for number in range(commits):
            table.transaction().set_properties({"datadrill.test.commit": str(number)}).commit_transaction()
        self._catalog = True
        return self

    def catalog(self) -> Any:
        if not self._catalog:
            raise self._no("catalog (FakeStack.with_catalog() gives it one)")
        from datadrill.platform.catalog import open_catalog

        return open_catalog(self.catalog_uri, self.paths.warehouse, init_tables=False)

    def warehouse(self) -> Any:
        if not self._catalog:
            raise self._no("warehouse (FakeStack.with_catalog() gives it one)")
        from datadrill.platform.warehouse import Warehouse

        return Warehouse(f"file://{self.paths.warehouse.resolve()}")

    def query_engine(self) -> Any:
        raise self._no("query engine")

    def mart_queries(self, *, timeout_s: float = 2.0) -> Any:
        return FakeMart(self)

    def source(self) -> sqlite3.Connection:
        return sqlite3.connect(":memory:")


class FakeMart:
    """The dashboards' query path of a :class:`FakeStack`: mart queries fail, as Trino's do
    when a table is unreadable, while the producer writes with a drifted schema and the
    contract is not enforced (the bad records reached the table)."""

    dialect = "duckdb"

    def __init__(self, stack: FakeStack) -> None:
        self.stack = stack
        self.queries = 0

    def rows(self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
        from datadrill.errors import QueryFailed

        self.queries += 1
        contract = self.stack.platform.contract
        if contract.writer is not None and not contract.enforce:
            raise QueryFailed(f"cannot read {self.stack.table}: column amount_cents has records of another type")
        return [(1,)]

    def close(self) -> None:
        pass
