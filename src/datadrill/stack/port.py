"""The ``Stack`` protocol: everything the harness does to a stack, on any backend.

Runner, :class:`~datadrill.faults.base.DrillContext`, fault plugins, recovery steps,
probes, the search and the pytest plugin see only this protocol. Its capabilities are
typed: Kafka (brokers, RTT, leaders, request errors), components (status, kill, pause,
resume, crash points, fail), Kafka Connect's REST API over the connectors, the workload, the platform's switches (sink throttle, producer
contract), network proxies, the catalog, the query clients and the state paths.
:class:`~datadrill.stack.client.StackClient` implements it over the stack process's
control API; unit tests implement it in memory (``tests/unit/fake_stack.py``).

Example::

    stack: Stack = StackClient.attach(Path(".datadrill"))
    stack.kafka.broker_down(2)
    stack.components.get("sink").paused        # False
    stack.workload.set(rate=0)                 # pause the order generator
    stack.query_engine().rows("SELECT count(*) FROM dwh.orders")
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from datadrill.config import StackConfig
    from datadrill.interfaces.connect_client import ConnectOffset, ConnectorState
    from datadrill.paths import StatePaths
    from datadrill.platform.query import QueryEngine
    from datadrill.platform.source_conn import SourceConnection
    from datadrill.platform.warehouse import Warehouse
    from datadrill.probes.base import MartQueries


class KafkaCapability(enum.StrEnum):
    """What a backend's Kafka can be made to do. A fault needing a capability the stack
    lacks is refused before the run starts, with the backend's reason."""

    BROKER_LOSS = "broker_loss"  # take a broker down and bring it back
    BROKER_RTT = "broker_rtt"  # delay a broker's responses
    LEADER_MOVE = "leader_move"  # move a partition's leader by hand
    REQUEST_ERRORS = "request_errors"  # make the next N requests of an API fail
    DELETE_RECORDS = "delete_records"  # delete a partition's records below an offset
    TOPIC_RECREATE = "topic_recreate"  # delete a topic and create it again, empty


@dataclass(frozen=True)
class ComponentStatus:
    """One entry of the stack's status: a service (kafka, catalog, …) or a process."""

    name: str
    endpoint: str
    healthy: bool
    detail: str
    pid: int | None = None
    paused: bool = False
    restarts: int = 0
    last_exit: str | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComponentStatus:
        pid = data.get("pid")
        return cls(
            name=str(data["name"]),
            endpoint=str(data.get("endpoint", "")),
            healthy=bool(data["healthy"]),
            detail=str(data.get("detail", "")),
            pid=int(pid) if pid else None,
            paused=bool(data.get("paused", False)),
            restarts=int(data.get("restarts", 0)),
            last_exit=data.get("last_exit"),
            stats=dict(data.get("stats") or {}),
        )


@dataclass(frozen=True)
class StackStatus:
    """The whole stack's health, as ``datadrill stack status`` shows it."""

    healthy: bool
    components: tuple[ComponentStatus, ...]
    pid: int | None = None
    backend: str = ""
    uptime_s: float = 0.0
    raw: Mapping[str, Any] = field(default_factory=dict)  # the JSON document, for --json

    def component(self, name: str) -> ComponentStatus:
        for entry in self.components:
            if entry.name == name:
                return entry
        known = ", ".join(c.name for c in self.components)
        raise KeyError(f"no component {name!r} in the stack's status; it has {known}")


@dataclass(frozen=True)
class WorkloadSettings:
    """The order generator's live settings."""

    rate: float
    canary_interval_s: float


@dataclass(frozen=True)
class ProducerContract:
    """How the producer (the outbox relay) writes: ``writer`` names a drifted writer
    schema (None: the contract's own); ``enforce`` off lets contract breaches through."""

    writer: str | None = None
    enforce: bool = True


@dataclass(frozen=True)
class ProxyPath:
    """A network path the stack's fault proxy (or Toxiproxy) sits on."""

    name: str
    listen: str
    upstream: str


@dataclass(frozen=True)
class RunLeaseInfo:
    """The run that holds a stack: one drill at a time. ``state`` is ``held``, or
    ``reverting`` once its lease expired and the stack is reverting its faults."""

    run_id: str
    scenario: str
    pid: int
    run_dir: str
    lease_s: float
    since_wall: float
    state: str = "held"
    expires_in_s: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunLeaseInfo:
        expires = data.get("expires_in_s")
        return cls(
            run_id=str(data["run_id"]),
            scenario=str(data.get("scenario", "")),
            pid=int(data.get("pid", 0)),
            run_dir=str(data.get("run_dir", "")),
            lease_s=float(data.get("lease_s", 0.0)),
            since_wall=float(data.get("since_wall", 0.0)),
            state=str(data.get("state", "held")),
            expires_in_s=None if expires is None else float(expires),
        )


class RunLeasePort(Protocol):
    """The stack's run lease. A run acquires it before touching the stack and renews it
    while it lives; when renewals stop for ``lease_s`` the stack reverts the run's faults
    from the ledger by itself."""

    def acquire(self, *, run_id: str, scenario: str, pid: int, run_dir: str, lease_s: float) -> RunLeaseInfo:
        """Raises RunLeaseHeld naming the holder when another run holds the stack. ``pid``
        is the runner's: a stack on the same machine reverts at once when it is gone."""
        ...

    def renew(self, run_id: str) -> RunLeaseInfo:
        """Raises RunLeaseLost when the lease expired (the stack reverted the run's faults)."""
        ...

    def release(self, run_id: str) -> None: ...

    def holder(self) -> RunLeaseInfo | None: ...


class KafkaPort(Protocol):
    """The stack's Kafka cluster."""

    @property
    def bootstrap_servers(self) -> str:
        """host:port[,host:port...]"""
        ...

    @property
    def topic(self) -> str:
        """The platform's event topic (``orders.v1`` by default)."""
        ...

    @property
    def capabilities(self) -> frozenset[KafkaCapability]: ...

    def why_not(self, capability: KafkaCapability) -> str:
        """Why this backend cannot do ``capability`` (empty when it can)."""
        ...

    def broker_down(self, broker: int) -> None: ...

    def broker_up(self, broker: int) -> None: ...

    def set_rtt(self, broker: int, rtt_ms: int) -> None:
        """Delay broker ``broker``'s responses (-1: every broker; 0: no delay)."""
        ...

    def push_request_errors(self, api_key: int, errors: Sequence[int]) -> None: ...

    def clear_request_errors(self, api_key: int) -> None: ...

    def move_leader(self, topic: str, partition: int, broker: int) -> None: ...

    def delete_records(self, topic: str, before: Mapping[int, int]) -> dict[int, int]:
        """Delete each partition's records below its offset in ``before`` (``retention.ms``
        or the admin API's DeleteRecords would); returns each partition's low watermark as
        the cluster reports it afterwards."""
        ...

    def recreate_topic(self, topic: str) -> dict[str, int]:
        """Delete ``topic`` and create it again, empty, with the same partitions; returns
        ``{"partitions": n, "replication_factor": r}``."""
        ...


class ComponentsPort(Protocol):
    """The platform's supervised processes (workload, relay, sink, …)."""

    def list(self) -> tuple[ComponentStatus, ...]: ...

    def get(self, name: str) -> ComponentStatus: ...

    def kill(self, name: str, signal: str = "SIGKILL") -> int:
        """Signal a component; returns the pid signalled."""
        ...

    def pause(self, name: str) -> None:
        """Stop a component and keep it stopped (the supervisor does not restart it)."""
        ...

    def resume(self, name: str) -> int:
        """Start a paused component again; returns its new pid."""
        ...

    def arm_crash_point(self, name: str, point: str) -> None:
        """Make ``name`` kill itself the next time it reaches ``point``."""
        ...

    def crash_point_armed(self, name: str) -> bool: ...

    def disarm_crash_point(self, name: str) -> None: ...

    def fail(self, name: str, reason: str) -> str:
        """Kill a component and keep it FAILED (not restarted) until a restart request
        (Kafka Connect's ``POST /connectors/{name}/restart``); returns the failure's trace."""
        ...


class ConnectPort(Protocol):
    """Kafka Connect's REST API over the stack's connectors: the stack's own (``relay``,
    ``sink``; ``embedded`` True), or a real Connect cluster's named by ``[connect] url``
    (``embedded`` False: its tasks cannot be failed or SIGKILLed from here). Errors raise
    :class:`~datadrill.interfaces.connect_client.ConnectError` (a ControlError)."""

    @property
    def url(self) -> str: ...

    @property
    def embedded(self) -> bool:
        """Is this the stack's own Connect API, over processes the stack supervises?"""
        ...

    def connectors(self) -> tuple[str, ...]: ...

    def status(self, name: str) -> ConnectorState: ...

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> None: ...

    def stop(self, name: str) -> None: ...

    def restart(self, name: str, *, include_tasks: bool = False, only_failed: bool = False) -> ConnectorState | None:
        """Connect's answer: the status with RESTARTING for what it restarts (202), or None (204)."""
        ...

    def restart_task(self, name: str, task: int) -> None: ...

    def offsets(self, name: str) -> tuple[ConnectOffset, ...]: ...

    def alter_offsets(self, name: str, offsets: Sequence[ConnectOffset]) -> str:
        """``PATCH /connectors/{name}/offsets`` of a STOPPED connector (KIP-875): Connect's message."""
        ...

    def reset_offsets(self, name: str) -> str:
        """``DELETE /connectors/{name}/offsets`` of a STOPPED connector: Connect's message."""
        ...


class WorkloadPort(Protocol):
    """The order generator."""

    def get(self) -> WorkloadSettings: ...

    def set(self, *, rate: float | None = None, canary_interval_s: float | None = None) -> WorkloadSettings: ...


class PlatformPort(Protocol):
    """Switches of the reference platform that faults flip."""

    def throttle_sink(self, rows_per_s: float | None) -> None:
        """Let the sink consume at most ``rows_per_s`` messages/s (None: no limit)."""
        ...

    def producer_contract(self) -> ProducerContract: ...

    def set_producer_contract(self, contract: ProducerContract) -> None: ...


class NetworkPort(Protocol):
    """The Toxiproxy API in front of the stack's network paths."""

    @property
    def api_url(self) -> str:
        """Toxiproxy's HTTP API (datadrill's fault proxy, or a real Toxiproxy)."""
        ...

    def paths(self) -> Mapping[str, ProxyPath]:
        """Proxied paths by name (``query``; ``catalog`` for a PostgreSQL catalog)."""
        ...


@runtime_checkable
class Stack(Protocol):
    """A running stack, whatever backend built it."""

    @property
    def backend(self) -> str:
        """The backend that really runs: ``embedded``, ``external`` or ``compose``."""
        ...

    @property
    def pid(self) -> int | None:
        """The stack process's pid (None for a stack with no process, like a fake)."""
        ...

    @property
    def paths(self) -> StatePaths:
        """The stack's state directory (ledger, run files, logs)."""
        ...

    @property
    def config(self) -> StackConfig: ...

    @property
    def kafka(self) -> KafkaPort: ...

    @property
    def components(self) -> ComponentsPort: ...

    @property
    def workload(self) -> WorkloadPort: ...

    @property
    def platform(self) -> PlatformPort: ...

    @property
    def network(self) -> NetworkPort: ...

    @property
    def runs(self) -> RunLeasePort: ...

    @property
    def connect(self) -> ConnectPort:
        """Kafka Connect's REST API over the stack's connectors."""
        ...

    @property
    def bootstrap_servers(self) -> str:
        """Shorthand for ``kafka.bootstrap_servers``."""
        ...

    @property
    def topic(self) -> str:
        """Shorthand for ``kafka.topic``."""
        ...

    @property
    def table(self) -> str:
        """The sink's table identifier (``dwh.orders`` by default)."""
        ...

    @property
    def catalog_uri(self) -> str:
        """The harness's own way to the catalog database (no proxy in between)."""
        ...

    def alive(self) -> bool:
        """Does the stack process still run? Cheap: called every probe round."""
        ...

    def status(self) -> StackStatus: ...

    def catalog(self) -> Catalog:
        """A fresh catalog client."""
        ...

    def warehouse(self) -> Warehouse:
        """The table files' storage."""
        ...

    def query_engine(self) -> QueryEngine:
        """A fresh in-process query engine resolving tables through the catalog."""
        ...

    def mart_queries(self, *, timeout_s: float = 2.0) -> MartQueries:
        """A client on the dashboards' query path, over the network."""
        ...

    def source(self) -> SourceConnection:
        """A connection to the source database (orders, outbox, canaries): SQLite or
        PostgreSQL behind one interface (``?`` placeholders on both); closes when its
        ``with`` block ends."""
        ...
