"""Trino's client REST protocol, served on 127.0.0.1 over any statement runner.

Any Trino client (the ``trino`` Python client and its SQLAlchemy dialect, the ``trino``
CLI, JDBC, Superset, dbt-trino) speaks this protocol: ``POST /v1/statement`` with the SQL
as the body and ``X-Trino-User``/``-Catalog``/``-Schema`` headers answers a QUEUED query
with a ``nextUri``; ``GET nextUri`` pages through the columns (Trino type names and
signatures) and data until a page has no ``nextUri``; ``DELETE nextUri`` cancels (204);
``HEAD nextUri`` is the client's heartbeat. Failures come back as Trino's error document
(``errorName``, ``errorCode``, ``errorType``, ``errorLocation``, ``failureInfo``), so a
client raises the same exception it would against Trino (``TrinoUserError`` with
``TABLE_NOT_FOUND`` for a table the catalog lost).

The runner (:class:`StatementRunner`) does the work; this module is only the protocol.

Example::

    server = TrinoProtocolServer(runner)
    url = server.start()                       # http://127.0.0.1:PORT
    trino.dbapi.connect(host="127.0.0.1", port=server.port, user="me", catalog="iceberg")
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import quote, unquote

from datadrill.errors import QueryFailed
from datadrill.interfaces.trino_types import TrinoType, encode_value

STATEMENT_PATH = "/v1/statement"
SERVER_VERSION = "datadrill-duckdb"

# Trino's error codes (io.trino.spi.StandardErrorCode and the Iceberg connector's
# IcebergErrorCode, which start at 0x0504_0000): name -> (code, type).
ERROR_CODES: dict[str, tuple[int, str]] = {
    "GENERIC_USER_ERROR": (0, "USER_ERROR"),
    "SYNTAX_ERROR": (1, "USER_ERROR"),
    "USER_CANCELED": (3, "USER_ERROR"),
    "NOT_FOUND": (5, "USER_ERROR"),
    "FUNCTION_NOT_FOUND": (6, "USER_ERROR"),
    "INVALID_FUNCTION_ARGUMENT": (7, "USER_ERROR"),
    "DIVISION_BY_ZERO": (8, "USER_ERROR"),
    "INVALID_CAST_ARGUMENT": (9, "USER_ERROR"),
    "NOT_SUPPORTED": (13, "USER_ERROR"),
    "CATALOG_NOT_FOUND": (44, "USER_ERROR"),
    "SCHEMA_NOT_FOUND": (45, "USER_ERROR"),
    "TABLE_NOT_FOUND": (46, "USER_ERROR"),
    "COLUMN_NOT_FOUND": (47, "USER_ERROR"),
    "MISSING_SCHEMA_NAME": (57, "USER_ERROR"),
    "TYPE_MISMATCH": (58, "USER_ERROR"),
    "INVALID_LITERAL": (59, "USER_ERROR"),
    "GENERIC_INTERNAL_ERROR": (65536, "INTERNAL_ERROR"),
    "ICEBERG_INVALID_METADATA": (0x0504_0000 + 1, "EXTERNAL"),
    "ICEBERG_FILESYSTEM_ERROR": (0x0504_0000 + 8, "EXTERNAL"),
    "ICEBERG_CATALOG_ERROR": (0x0504_0000 + 13, "EXTERNAL"),
    "ICEBERG_MISSING_METADATA": (0x0504_0000 + 15, "EXTERNAL"),
}

# A page holds at most this many rows: a larger result is paged through nextUri.
PAGE_ROWS = 4096
# A GET waits this long for a running query before answering RUNNING with the same nextUri.
MAX_WAIT_S = 1.0
# A query nobody asked about for this long is forgotten (a client that went away).
ABANDONED_AFTER_S = 120.0


@dataclass(frozen=True)
class Statement:
    """One query as the client sent it."""

    sql: str
    user: str
    catalog: str | None
    schema: str | None
    prepared: Mapping[str, str]  # X-Trino-Prepared-Statement: name -> SQL
    query_id: str


@dataclass
class StatementResult:
    columns: list[tuple[str, TrinoType]]
    rows: list[tuple[Any, ...]]
    update_type: str | None = None
    # Response headers that change the client's session (X-Trino-Set-Schema...).
    headers: dict[str, str] = field(default_factory=dict)


class StatementRunner(Protocol):
    def run(self, statement: Statement) -> StatementResult:
        """Run a statement; raise QueryFailed (with a Trino error name) on failure."""
        ...

    def interrupt(self, query_id: str) -> None:
        """Stop ``query_id`` if it is running now."""
        ...


class _Query:
    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self.slug = secrets.token_hex(8)
        self.state = "QUEUED"
        self.result: StatementResult | None = None
        self.error: dict[str, Any] | None = None
        self.done = threading.Event()
        self.token = 0  # the page the next nextUri asks for
        self.offset = 0  # rows already sent
        self.columns_sent = False
        self.cancelled = False
        self.started = time.monotonic()
        self.touched = self.started
        self.elapsed_s = 0.0


def error_document(exc: BaseException) -> dict[str, Any]:
    """Trino's error document for a failure."""
    name = getattr(exc, "error_name", "GENERIC_INTERNAL_ERROR")
    code, kind = ERROR_CODES.get(name, ERROR_CODES["GENERIC_INTERNAL_ERROR"])
    message = str(exc)
    document: dict[str, Any] = {
        "message": message,
        "errorCode": code,
        "errorName": name,
        "errorType": kind,
        "failureInfo": {
            "type": type(exc).__name__,
            "message": message,
            "suppressed": [],
            "stack": traceback.format_exception_only(type(exc), exc)[-1:],
        },
    }
    location = getattr(exc, "location", None)
    if location is not None:
        document["errorLocation"] = {"lineNumber": location[0], "columnNumber": location[1]}
        document["failureInfo"]["errorLocation"] = document["errorLocation"]
    return document


def _prepared(header: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (header or "").split(","):
        if "=" in item:
            name, sql = item.split("=", 1)
            out[unquote(name.strip())] = unquote(sql.strip().replace("+", " "))
    return out


class TrinoProtocolServer:
    def __init__(self, runner: StatementRunner, *, page_rows: int = PAGE_ROWS) -> None:
        self._runner = runner
        self._page_rows = page_rows
        self._queries: dict[str, _Query] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._started = time.monotonic()
        self.statements = 0
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Trino clients expect
            # Headers and body go out as separate writes: with Nagle's algorithm on, the body
            # waits for the client's delayed ACK (~40 ms a request on Linux).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: bytes = b"", ctype: str = "application/json", **headers: str) -> None:
                self.send_response(code)
                if code != 204:
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, code: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
                self._send(code, json.dumps(payload).encode(), **dict(headers or {}))

            def _base(self) -> str:
                # The address the client used (a proxy's, when one sits in between), as
                # Trino builds nextUri from the request.
                host = self.headers.get("Host") or f"127.0.0.1:{server.port}"
                return f"http://{host}"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sql = self.rfile.read(length).decode("utf-8") if length else ""
                path = self.path.split("?", 1)[0]
                if path != STATEMENT_PATH:
                    self._send(404, f"no route for POST {path}".encode(), "text/plain")
                    return
                user = self.headers.get("X-Trino-User")
                if not user:
                    # What Trino answers when no user is given (and no authentication).
                    self._send(400, b"Error 400 Bad Request: User must be set", "text/plain")
                    return
                if not sql.strip():
                    self._send(400, b"Error 400 Bad Request: SQL statement is empty", "text/plain")
                    return
                query = server._submit(
                    sql,
                    user=user,
                    catalog=self.headers.get("X-Trino-Catalog") or None,
                    schema=self.headers.get("X-Trino-Schema") or None,
                    prepared=_prepared(self.headers.get("X-Trino-Prepared-Statement")),
                )
                self._json(200, server._document(query, self._base(), data=False))

            def _query(self) -> tuple[_Query, int] | None:
                parts = self.path.split("?", 1)[0].strip("/").split("/")
                # v1/statement/{queued|executing}/{id}/{slug}/{token}
                if len(parts) != 6 or parts[:2] != ["v1", "statement"] or parts[2] not in ("queued", "executing"):
                    self._send(404, f"no route for {self.command} {self.path}".encode(), "text/plain")
                    return None
                with server._lock:
                    query = server._queries.get(parts[3])
                if query is None or query.slug != parts[4] or not parts[5].isdigit():
                    self._send(404, b"Query not found", "text/plain")
                    return None
                query.touched = time.monotonic()
                return query, int(parts[5])

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] == "/v1/info":
                    self._json(200, server.info())
                    return
                found = self._query()
                if found is None:
                    return
                query, token = found
                if query.cancelled:
                    self._send(410, b"Query was canceled", "text/plain")
                    return
                served = query.result is not None and query.offset > 0 and not query.result.rows
                if token != query.token or served:
                    # A repeated request for a page already sent: Trino answers 410 Gone.
                    self._send(410, b"Page already acknowledged", "text/plain")
                    return
                query.done.wait(MAX_WAIT_S)
                self._json(200, server._document(query, self._base(), data=True), server._headers(query))

            def do_HEAD(self) -> None:  # the client's heartbeat
                if self._query() is not None:
                    self._send(200)

            def do_DELETE(self) -> None:
                found = self._query()
                if found is not None:
                    server._cancel(found[0])
                    self._send(204)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="trino-protocol", daemon=True)

    # -- life ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def info(self) -> dict[str, Any]:
        """``GET /v1/info``, as Trino's coordinator answers it."""
        return {
            "nodeVersion": {"version": SERVER_VERSION},
            "environment": "datadrill",
            "coordinator": True,
            "starting": False,
            "uptime": f"{time.monotonic() - self._started:.2f}s",
        }

    # -- queries ---------------------------------------------------------------------------
    def _submit(
        self, sql: str, *, user: str, catalog: str | None, schema: str | None, prepared: dict[str, str]
    ) -> _Query:
        with self._lock:
            self._forget_abandoned()
            self._counter += 1
            self.statements += 1
            query_id = time.strftime("%Y%m%d_%H%M%S", time.gmtime()) + f"_{self._counter:05d}_dd"
            query = _Query(Statement(sql, user, catalog, schema, prepared, query_id))
            self._queries[query_id] = query
        threading.Thread(target=self._execute, args=(query,), name=f"query-{query_id}", daemon=True).start()
        return query

    def _execute(self, query: _Query) -> None:
        query.state = "RUNNING"
        try:
            query.result = self._runner.run(query.statement)
            query.state = "FINISHED"
        except QueryFailed as exc:
            query.error = error_document(exc)
            query.state = "FAILED"
        except Exception as exc:  # noqa: BLE001 - any failure is the query's, as Trino reports it
            query.error = error_document(QueryFailed(f"{type(exc).__name__}: {exc}"))
            query.state = "FAILED"
        finally:
            query.elapsed_s = time.monotonic() - query.started
            if query.cancelled:
                query.error = error_document(QueryFailed("Query was canceled", error_name="USER_CANCELED"))
                query.state = "FAILED"
            query.done.set()

    def _cancel(self, query: _Query) -> None:
        query.cancelled = True
        if not query.done.is_set():
            self._runner.interrupt(query.statement.query_id)

    def _forget_abandoned(self) -> None:
        now = time.monotonic()
        for query_id, query in list(self._queries.items()):
            if now - query.touched > ABANDONED_AFTER_S:
                if not query.done.is_set():
                    self._runner.interrupt(query_id)
                del self._queries[query_id]

    def _headers(self, query: _Query) -> dict[str, str]:
        if query.result is None or query.offset > 0:
            return {}
        return dict(query.result.headers)

    def _document(self, query: _Query, base: str, *, data: bool) -> dict[str, Any]:
        """The answer to POST (data=False: QUEUED) or to a GET of the current page."""
        statement = query.statement
        doc: dict[str, Any] = {
            "id": statement.query_id,
            "infoUri": f"{base}/ui/query.html?{statement.query_id}",
            "warnings": [],
        }
        finished = data and query.done.is_set()
        state = query.state if data else "QUEUED"
        more = not finished
        if finished and query.result is not None:
            result = query.result
            doc["columns"] = [
                {"name": name, "type": t.name, "typeSignature": t.signature} for name, t in result.columns
            ]
            page = result.rows[query.offset : query.offset + self._page_rows]
            if page:
                types = [t for _, t in result.columns]
                doc["data"] = [[encode_value(v, t) for v, t in zip(row, types, strict=True)] for row in page]
            query.offset += len(page)
            more = query.offset < len(result.rows)
            if result.update_type:
                doc["updateType"] = result.update_type
            state = "RUNNING" if more else "FINISHED"
        elif finished and query.error is not None:
            doc["error"] = query.error
            more = False
        if more:
            query.token += 1
            kind = "executing" if data else "queued"
            doc["nextUri"] = (
                f"{base}{STATEMENT_PATH}/{kind}/{quote(statement.query_id)}/{query.slug}/{query.token}"
            )
        elif data and query.result is not None:
            # Served: the rows go; the query stays known a while, so that a late DELETE
            # (clients cancel on close) is answered as Trino answers it.
            query.result.rows = []
        doc["stats"] = {
            "state": state,
            "queued": state == "QUEUED",
            "scheduled": state != "QUEUED",
            "nodes": 1,
            "totalSplits": 1,
            "queuedSplits": 0,
            "runningSplits": 0 if finished else 1,
            "completedSplits": 1 if finished else 0,
            "cpuTimeMillis": int(query.elapsed_s * 1000),
            "wallTimeMillis": int(query.elapsed_s * 1000),
            "queuedTimeMillis": 0,
            "elapsedTimeMillis": int((time.monotonic() - query.started) * 1000),
            "processedRows": query.offset,
            "processedBytes": 0,
            "peakMemoryBytes": 0,
        }
        return doc
