"""The probe protocol and what probes may use.

Example::

    env = ProbeEnv.from_stack(stack, clock)       # nothing starts until a probe asks
    probe = build_probe(Freshness(max_age_s=30), env)
    probe.measure()                               # Sample(value=1.8, good=True, error=None)
    probe.close()
    env.close()                                   # the shared query engine, if one was made
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from datadrill.clock import Clock

if TYPE_CHECKING:
    from datadrill.interfaces.connect_client import ConnectorState
    from datadrill.paths import StatePaths
    from datadrill.platform.query import QueryEngine
    from datadrill.platform.source_conn import SourceConnection


@dataclass(frozen=True)
class Sample:
    """One measurement. ``value`` None means the SLI could not be measured (a failed
    query, an unreachable broker); such a sample is bad."""

    value: float | None
    good: bool
    error: str | None = None


class MartQueries(Protocol):
    """A client on the dashboards' query path: datadrill's query service or Trino."""

    dialect: str  # "duckdb" or "trino": the few functions that differ (see probes.sli)

    def rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class Probe(Protocol):
    def measure(self) -> Sample: ...

    def close(self) -> None: ...


class ProbeStack(Protocol):
    """The part of :class:`~datadrill.stack.port.Stack` probes reach. Any ``Stack`` is one;
    it is spelled out here (not imported) because the stack's port names this module."""

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def paths(self) -> StatePaths: ...

    def query_engine(self) -> QueryEngine: ...

    def mart_queries(self, *, timeout_s: float = 2.0) -> MartQueries: ...

    def source(self) -> SourceConnection: ...


class SharedQueryEngine:
    """One in-process query engine for every probe that asks, made on first use. Probes run
    in turn on the runner's thread; a shared engine plans the table's scan once per change
    instead of once per probe. Calling it after :meth:`close` is a bug and raises."""

    def __init__(self, make: Callable[[], QueryEngine]) -> None:
        self._make = make
        self._engine: QueryEngine | None = None
        self._closed = False
        self._lock = threading.Lock()

    def __call__(self) -> QueryEngine:
        with self._lock:
            if self._closed:
                raise RuntimeError("the probes' shared query engine is closed: the run's probes have ended")
            if self._engine is None:
                self._engine = self._make()
            return self._engine

    def close(self) -> None:
        with self._lock:
            self._closed = True
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()


class ConnectStatus(Protocol):
    """What probes read of Kafka Connect's REST API (the stack's ``connect`` port)."""

    def status(self, name: str) -> ConnectorState: ...


@dataclass(frozen=True)
class ProbeEnv:
    """What probes reach. :meth:`from_stack` builds it from a stack; tests may build one
    field by field."""

    clock: Clock
    bootstrap_servers: str
    query_engine: Callable[[], QueryEngine]  # in-process, for heavy work (reconciliation)
    # Over the network through the stack's query path, as dashboards query: (timeout_s) -> client.
    mart_queries: Callable[[float], MartQueries]
    source_db: Callable[[], SourceConnection]
    heartbeat_dir: Path  # where platform processes write <name>.heartbeat.json
    events_file: Path  # supervisor events (process exits)
    closers: tuple[Callable[[], None], ...] = field(default=(), repr=False, compare=False)
    # Kafka Connect's REST API over the stack's connectors (ConnectorHealth); None: none.
    connect: Callable[[], ConnectStatus] | None = field(default=None, repr=False, compare=False)
    # Declared components that are a real Connect cluster's connectors: name -> connector.
    connector_names: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    # The CDC relay's replication slot ([relay] slot): ReplicationLag's when it names none.
    relay_slot: str = "datadrill_relay"

    @classmethod
    def from_stack(cls, stack: ProbeStack, clock: Clock) -> ProbeEnv:
        """The probes' view of ``stack``. Nothing is opened here: the shared query engine
        is made when a probe first asks for it, and :meth:`close` closes it."""
        engine = SharedQueryEngine(stack.query_engine)
        config = getattr(stack, "config", None)
        components = getattr(config, "components", {}) or {}
        return cls(
            clock=clock,
            bootstrap_servers=stack.bootstrap_servers,
            query_engine=engine,
            mart_queries=lambda timeout_s: stack.mart_queries(timeout_s=timeout_s),
            source_db=stack.source,
            heartbeat_dir=stack.paths.run,
            events_file=stack.paths.events_file,
            closers=(engine.close,),
            connect=(lambda: stack.connect) if hasattr(stack, "connect") else None,
            connector_names={name: c.connector for name, c in components.items() if c.connector},
            relay_slot=str(getattr(getattr(config, "relay", None), "slot", "datadrill_relay")),
        )

    def close(self) -> None:
        """Close what this environment opened for its probes; idempotent. Close the probes
        first."""
        for close in self.closers:
            close()
