"""The probe protocol and what probes may use."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from datadrill.engine.clock import Clock

if TYPE_CHECKING:
    from datadrill.model.slo import SLI
    from datadrill.platform.query import QueryEngine


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


@dataclass(frozen=True)
class ProbeEnv:
    """What probes reach: built by the runner from the stack."""

    clock: Clock
    bootstrap_servers: str
    query_engine: Callable[[], QueryEngine]  # in-process, for heavy work (reconciliation)
    # Over the network through the stack's query path, as dashboards query: (timeout_s) -> client.
    mart_queries: Callable[[float], MartQueries]
    source_db: Callable[[], sqlite3.Connection]
    heartbeat_dir: Path  # where platform processes write <name>.heartbeat.json
    events_file: Path  # supervisor events (process exits)


def build_probe(sli: SLI, env: ProbeEnv) -> Probe:
    """The probe for an SLI spec. Every SLI kind has exactly one probe."""
    from datadrill.model import slo
    from datadrill.probes import sli as probes

    if isinstance(sli, slo.Freshness):
        return probes.FreshnessProbe(sli, env)
    elif isinstance(sli, slo.QuerySuccess):
        return probes.QuerySuccessProbe(sli, env)
    elif isinstance(sli, slo.CanaryLatency):
        return probes.CanaryLatencyProbe(sli, env)
    elif isinstance(sli, slo.ConsumerLag):
        return probes.ConsumerLagProbe(sli, env)
    elif isinstance(sli, slo.ConnectorErrorRate):
        return probes.ConnectorErrorRateProbe(sli, env)
    elif isinstance(sli, slo.RestartRate):
        return probes.RestartRateProbe(sli, env)
    elif isinstance(sli, slo.DataIntegrity):
        return probes.DataIntegrityProbe(sli, env)
    else:
        raise TypeError(f"no probe for SLI {sli!r}")
