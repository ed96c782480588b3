"""A handle on a running embedded stack: endpoints, catalog, query engine, control.

Example::

    stack = EmbeddedStack.attach(Path(".datadrill"))
    stack.control.post("/kafka/brokers/1/down")
    stack.query_engine().rows("SELECT count(*) FROM dwh.orders")   # in this process
    stack.mart_queries().rows("SELECT count(*) FROM dwh.orders")   # over the query path
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyiceberg.catalog.sql import SqlCatalog

from datadrill.backends.stackd.control import ControlClient
from datadrill.backends.stackd.manager import require_state
from datadrill.config import StackConfig, read_running_config
from datadrill.paths import StatePaths
from datadrill.platform import source_db
from datadrill.platform.catalog import catalog_uri, open_stack_catalog, warehouse_location
from datadrill.platform.query import QueryEngine
from datadrill.platform.query_service import RemoteQueryEngine
from datadrill.platform.warehouse import Warehouse
from datadrill.probes.base import MartQueries


@dataclass(frozen=True)
class EmbeddedStack:
    paths: StatePaths
    config: StackConfig
    state: dict[str, Any]

    @classmethod
    def attach(cls, state_dir: Path) -> EmbeddedStack:
        """Attach to the stack running in ``state_dir`` (raises StackNotRunning)."""
        paths = StatePaths(state_dir)
        state = require_state(paths)
        return cls(paths, read_running_config(paths), state)

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
    def control(self) -> ControlClient:
        return ControlClient(str(self.state["control_url"]))

    @property
    def catalog_uri(self) -> str:
        return catalog_uri(self.config, self.paths)

    def catalog(self) -> SqlCatalog:
        return open_stack_catalog(self.config, self.paths)

    def warehouse(self) -> Warehouse:
        """The table files' storage (the state directory, or an external cluster's bucket)."""
        external = self.config.external
        return Warehouse(
            warehouse_location(self.config, self.paths), external.s3_properties() if external else None
        )

    def query_engine(self) -> QueryEngine:
        return QueryEngine(self.catalog(), default_tables=(self.table,))

    @property
    def fault_proxy_url(self) -> str:
        """The Toxiproxy API of the fault proxy on the stack's network paths."""
        return str(self.state["fault_proxy_url"])

    @property
    def proxies(self) -> dict[str, dict[str, str]]:
        """Proxied network paths by name (``query``; ``catalog`` for a PostgreSQL catalog)."""
        return dict(self.state.get("proxies", {}))

    def mart_queries(self, *, timeout_s: float = 2.0) -> MartQueries:
        """A client on the dashboards' query path: the query service through the ``query``
        proxy, or an external cluster's Trino."""
        if self.state.get("query_engine") == "trino":
            from datadrill.backends.compose.trino_engine import TrinoQueryEngine

            return TrinoQueryEngine.from_url(str(self.state["query_url"]), timeout_s=timeout_s)
        return RemoteQueryEngine(str(self.state["query_url"]), timeout_s=timeout_s)

    def source(self) -> sqlite3.Connection:
        """A connection to the source database (orders, outbox, canaries)."""
        return source_db.connect(self.paths.source_db)

    def status(self) -> dict[str, Any]:
        return self.control.get("/status")

    def set_workload(self, **settings: float) -> dict[str, Any]:
        """Change the running workload, e.g. ``set_workload(rate=0)`` to pause it."""
        return self.control.post("/workload", dict(settings))

    def pause(self, component: str) -> None:
        """Stop a component and keep it stopped (the supervisor does not restart it)."""
        self.control.post(f"/components/{component}/pause")

    def resume(self, component: str) -> int:
        return int(self.control.post(f"/components/{component}/resume")["pid"])

    def kill(self, component: str, signal: str = "SIGKILL") -> int:
        """Signal a supervised component; returns the pid signalled."""
        return int(self.control.post(f"/components/{component}/signal", {"signal": signal})["pid"])
