"""The query service: the embedded stack's query engine behind Trino's client protocol.

Dashboards and probes do not embed a query engine; they reach one over the network, as
they reach Trino, and with the same client: any Trino client (the ``trino`` Python client,
the ``trino`` CLI, JDBC, Superset, dbt-trino) can query the embedded stack. The protocol is
:mod:`datadrill.interfaces.trino_protocol`; what a statement means to DuckDB is
:mod:`.trino_statements`; the engine is :mod:`.query` (DuckDB over Iceberg tables resolved
through the catalog at query time). On the stack, clients reach the service through the
fault proxy's ``query`` path, so network faults sit between them and the engine.

Example::

    service = QueryService(catalog_uri, warehouse, table="dwh.orders")
    url = service.start()                        # http://127.0.0.1:PORT
    TrinoQueryEngine.from_url(url).rows("SELECT count(*) FROM dwh.orders")   # [(1234,)]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadrill.errors import QueryFailed
from datadrill.interfaces.trino_protocol import Statement, StatementResult, TrinoProtocolServer
from datadrill.platform.query import QueryEngine

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


# How long a cancel keeps trying: a statement handed over later than this runs.
CANCEL_WINDOW_S = 30.0


class QueryService:
    """One engine behind a lock: statements run in turn, and one long-lived engine plans a
    table's scan once per change instead of once per connection."""

    def __init__(
        self,
        catalog_uri: str,
        warehouse: Path | str,
        *,
        table: str,
        properties: dict[str, str] | None = None,
        open_catalog: Callable[[], Catalog] | None = None,
    ) -> None:
        # A catalog that is not SQL (REST, Hive, Glue) is opened by ``open_catalog`` with
        # pyiceberg's own properties; a SQL one from its URI (through the catalog proxy).
        self._open_catalog = open_catalog
        self._catalog_uri = catalog_uri
        self._warehouse = warehouse
        self._properties = properties or {}
        self._table = table
        self._engine: QueryEngine | None = None
        self._lock = threading.Lock()
        self._running: str | None = None  # the query id the engine runs now
        # Cancelled query ids, until their statement is over (or the window has passed).
        self._cancelled: set[str] = set()
        self._cancel_lock = threading.Lock()
        self._server = TrinoProtocolServer(self)
        self.queries = 0
        self.failures = 0

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    def _open(self) -> QueryEngine:
        from datadrill.platform.catalog import open_catalog

        if self._engine is None:
            catalog = (
                self._open_catalog()
                if self._open_catalog is not None
                else open_catalog(self._catalog_uri, self._warehouse, init_tables=False, properties=self._properties)
            )
            self._engine = QueryEngine(catalog, default_tables=(self._table,))
        return self._engine

    def _failed(self, exc: Exception) -> QueryFailed:
        """Count a failure; a failure that is not the query's (opening the catalog can fail
        in many ways: a locked or unreachable database) drops the engine, and the next
        statement builds a new one."""
        self.failures += 1
        if isinstance(exc, QueryFailed):
            return exc
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        return QueryFailed(f"query service: {type(exc).__name__}: {exc}", error_name="GENERIC_INTERNAL_ERROR")

    def run(self, statement: Statement) -> StatementResult:
        """A Trino client's statement (the protocol server calls this)."""
        from datadrill.platform.trino_statements import run_statement

        with self._lock:
            self.queries += 1
            if statement.query_id in self._cancelled:
                raise QueryFailed("Query was canceled", error_name="USER_CANCELED")
            self._running = statement.query_id
            try:
                return run_statement(self._open(), statement)
            except Exception as exc:
                raise self._failed(exc) from exc
            finally:
                self._running = None

    def interrupt(self, query_id: str) -> None:
        """Cancel a statement, whether it runs now, waits for the engine or has not been
        handed over yet. DuckDB drops an interrupt that comes before its statement has
        begun executing, so the cancel is repeated until the statement is over."""
        # Not under the lock: the statement to stop holds it.
        with self._cancel_lock:
            self._cancelled.add(query_id)
        threading.Thread(
            target=self._keep_interrupting, args=(query_id,), name=f"cancel-{query_id}", daemon=True
        ).start()

    def _keep_interrupting(self, query_id: str) -> None:
        seen_running = False
        deadline = time.monotonic() + CANCEL_WINDOW_S
        try:
            while time.monotonic() < deadline:
                engine = self._engine
                if self._running == query_id:
                    seen_running = True
                    if engine is not None:
                        engine.interrupt()
                elif seen_running:
                    return  # it ran and is over
                time.sleep(0.05)
        finally:
            with self._cancel_lock:
                self._cancelled.discard(query_id)

    def execute(
        self, sql: str, params: Sequence[Any] = (), tables: Sequence[str] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a statement in this process (the stack's own health check uses this)."""
        with self._lock:
            self.queries += 1
            try:
                return self._open().columns_and_rows(sql, params, tables=tables)
            except Exception as exc:
                raise self._failed(exc) from exc
