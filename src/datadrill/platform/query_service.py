"""The query service: the embedded stack's query engine, served over HTTP on 127.0.0.1.

Dashboards and probes do not embed a query engine; they reach one over the network, as
they reach Trino. The embedded stack serves its DuckDB engine (see :mod:`query`) this way
so the query path is a real TCP path that a network fault can sit on: probes talk to the
service through the stack's fault proxy, never to the service directly.

Protocol: ``POST /v1/statement`` with ``{"sql", "params", "tables"}`` answers
``{"columns", "rows"}`` (values the engine cannot put into JSON are sent as text), or an
HTTP 400 with ``{"error"}`` naming why the query failed.

Example::

    service = QueryService(catalog_uri, warehouse, table="dwh.orders")
    url = service.start()
    RemoteQueryEngine(url).rows("SELECT count(*) FROM dwh.orders")   # [(1234,)]
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from datadrill.errors import QueryFailed
from datadrill.interfaces.http_server import ControlServer
from datadrill.platform.query import QueryEngine

STATEMENT_PATH = "/v1/statement"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)  # decimals, UUIDs, intervals: their text


class QueryService:
    """One engine behind a lock: probes query in turn, and one long-lived engine plans a
    table's scan once per change instead of once per connection."""

    def __init__(
        self, catalog_uri: str, warehouse: Path | str, *, table: str, properties: dict[str, str] | None = None
    ) -> None:
        self._catalog_uri = catalog_uri
        self._warehouse = warehouse
        self._properties = properties or {}
        self._table = table
        self._engine: QueryEngine | None = None
        self._lock = threading.Lock()
        self._server = ControlServer([("POST", STATEMENT_PATH, self._h_statement)])
        self.queries = 0
        self.failures = 0

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> str:
        self._server.start()
        return self.url

    def stop(self) -> None:
        self._server.stop()
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    def execute(
        self, sql: str, params: Sequence[Any] = (), tables: Sequence[str] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a statement in this process (the stack's own health check uses this)."""
        from datadrill.platform.catalog import open_catalog

        with self._lock:
            self.queries += 1
            try:
                if self._engine is None:
                    catalog = open_catalog(
                        self._catalog_uri, self._warehouse, init_tables=False, properties=self._properties
                    )
                    self._engine = QueryEngine(catalog, default_tables=(self._table,))
                return self._engine.columns_and_rows(sql, params, tables=tables)
            except QueryFailed:
                self.failures += 1
                raise
            except Exception as exc:
                # Opening the catalog can fail in many ways (a locked or unreachable database);
                # a new engine is built on the next query.
                self.failures += 1
                if self._engine is not None:
                    self._engine.close()
                    self._engine = None
                raise QueryFailed(f"query service: {type(exc).__name__}: {exc}") from exc

    def _h_statement(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        sql = body.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise QueryFailed("the request has no 'sql' text")
        tables = body.get("tables")
        columns, rows = self.execute(sql, list(body.get("params", [])), tables)
        return {"columns": columns, "rows": [[_jsonable(v) for v in row] for row in rows]}


class RemoteQueryEngine:
    """A client of the query service with the engine's ``rows`` call. Every failure (an
    error from the engine, a refused or reset connection, a timeout) is a QueryFailed that
    says which it was, since that is what a probe reports."""

    dialect = "duckdb"

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"query service URL must be http://HOST:PORT, got {url!r}")
        self.url = url
        self.host, self.port = parts.hostname, parts.port
        self.timeout_s = timeout_s

    def rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        payload = json.dumps({"sql": sql, "params": list(params), "tables": tables}).encode()
        # A fresh connection per query: a network fault then hits every query the same way,
        # and no half-broken keep-alive connection outlives the fault.
        con = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        # The socket timeout bounds each read; a trickling answer (a slow link) could take
        # many times that in total, so the whole exchange has a deadline too.
        deadline = time.monotonic() + self.timeout_s
        try:
            con.request("POST", STATEMENT_PATH, body=payload, headers={"Content-Type": "application/json"})
            response = con.getresponse()
            chunks = []
            while chunk := response.read(65536):
                chunks.append(chunk)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                if con.sock is not None:
                    con.sock.settimeout(remaining)
            raw = b"".join(chunks)
        except TimeoutError as exc:
            raise QueryFailed(f"query path: no answer from {self.url} within {self.timeout_s:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise QueryFailed(f"query path: {self.url}: {type(exc).__name__}: {exc}") from exc
        finally:
            con.close()
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise QueryFailed(
                f"query path: {self.url} sent {len(raw)} bytes that are not a whole JSON answer"
            ) from exc
        if response.status != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise QueryFailed(str(error or f"query service answered HTTP {response.status}"))
        return [tuple(row) for row in answer["rows"]]

    def close(self) -> None:
        return  # no connection is kept between queries
