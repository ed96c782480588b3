"""The ``Stack`` protocol: what scenarios, probes and faults may rely on, on any backend.

Example::

    stack: Stack = EmbeddedStack.attach(Path(".datadrill"))
    stack.bootstrap_servers          # '127.0.0.1:40121,...'
    stack.query_engine().rows("SELECT count(*) FROM dwh.orders")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from datadrill.platform.query import QueryEngine
    from datadrill.probes.base import MartQueries


@runtime_checkable
class Stack(Protocol):
    """A running stack, whatever built it."""

    @property
    def bootstrap_servers(self) -> str:
        """Kafka bootstrap servers, host:port[,host:port...]."""
        ...

    @property
    def topic(self) -> str:
        """The platform's event topic (``orders.v1`` by default)."""
        ...

    @property
    def table(self) -> str:
        """The sink's table identifier (``dwh.orders`` by default)."""
        ...

    def catalog(self) -> Catalog:
        """A fresh catalog client."""
        ...

    def query_engine(self) -> QueryEngine:
        """A fresh query engine that resolves tables through the catalog."""
        ...

    def mart_queries(self, *, timeout_s: float = 2.0) -> MartQueries:
        """A client of the stack's query service over the network, as dashboards reach it."""
        ...
