"""An in-memory :class:`~datadrill.stack.port.Stack` for unit tests: no process, no socket.

It records what the harness did to it (``calls``) and lets a test break and heal a
pretend table (``table_ok``), kill the pretend stack process (``die``), and give the
network port a real fault proxy's API.

Example::

    stack = FakeStack(tmp_path)
    stack.components.pause("sink")
    stack.components.get("sink").paused   # True
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datadrill.config import StackConfig
from datadrill.errors import ControlError
from datadrill.paths import StatePaths
from datadrill.stack.port import (
    ComponentStatus,
    KafkaCapability,
    ProducerContract,
    ProxyPath,
    StackStatus,
    WorkloadSettings,
)


@dataclass
class FakeKafka:
    calls: list[tuple[Any, ...]]
    capabilities: frozenset[KafkaCapability] = frozenset(KafkaCapability)
    bootstrap_servers: str = "127.0.0.1:9"
    topic: str = "orders.v1"

    def why_not(self, capability: KafkaCapability) -> str:
        return "" if capability in self.capabilities else "the fake stack was built without it"

    def broker_down(self, broker: int) -> None:
        self.calls.append(("broker_down", broker))

    def broker_up(self, broker: int) -> None:
        self.calls.append(("broker_up", broker))

    def set_rtt(self, broker: int, rtt_ms: int) -> None:
        self.calls.append(("set_rtt", broker, rtt_ms))

    def push_request_errors(self, api_key: int, errors: Sequence[int]) -> None:
        self.calls.append(("push_request_errors", api_key, tuple(errors)))

    def clear_request_errors(self, api_key: int) -> None:
        self.calls.append(("clear_request_errors", api_key))

    def move_leader(self, topic: str, partition: int, broker: int) -> None:
        self.calls.append(("move_leader", topic, partition, broker))


@dataclass
class _Process:
    pid: int
    paused: bool = False
    restarts: int = 0


@dataclass
class FakeComponents:
    calls: list[tuple[Any, ...]]
    procs: dict[str, _Process] = field(
        default_factory=lambda: {"workload": _Process(101), "relay": _Process(102), "sink": _Process(103)}
    )
    crash_points: dict[str, str] = field(default_factory=dict)

    def _proc(self, name: str) -> _Process:
        if name not in self.procs:
            raise ControlError(f"unknown component {name!r}")
        return self.procs[name]

    def _status(self, name: str) -> ComponentStatus:
        proc = self._proc(name)
        return ComponentStatus(
            name=name,
            endpoint=f"pid {proc.pid}",
            healthy=not proc.paused,
            detail="PAUSED" if proc.paused else "running",
            pid=None if proc.paused else proc.pid,
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
        return name in self.crash_points

    def disarm_crash_point(self, name: str) -> None:
        self.crash_points.pop(name, None)


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

    def throttle_sink(self, rows_per_s: float | None) -> None:
        self.throttle = rows_per_s

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
        self.kafka = FakeKafka(self.calls, capabilities=capabilities)
        self.components = FakeComponents(self.calls)
        self.workload = FakeWorkload(self.calls)
        self.platform = FakePlatform()
        self.network = FakeNetwork()
        self.table_ok = True
        self._alive = True

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
        components = self.components.list()
        return StackStatus(healthy=all(c.healthy for c in components), components=components, backend="fake")

    def _no(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"the fake stack has no {what}; give the test a real stack")

    def catalog(self) -> Any:
        raise self._no("catalog")

    def warehouse(self) -> Any:
        raise self._no("warehouse")

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
