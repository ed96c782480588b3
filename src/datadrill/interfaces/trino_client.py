"""The harness's one query client: the official ``trino`` client (DB-API), on every backend.

The embedded stack's query service speaks Trino's protocol, the compose stack runs Trino,
and an external stack names its Trino: probes, dashboards' queries and query SLIs go
through this class everywhere. Scenario SQL names tables as the catalog does
(``dwh.orders``); the client qualifies the tables it is told about with the Trino catalog
(``iceberg.dwh.orders``) and maps every failure — a Trino error, a refused connection, a
timeout — to QueryFailed carrying the Trino error name, which is what probes report.

Each query gets a fresh connection and the whole exchange (POST, every nextUri page) one
deadline: a network fault then hits every query the same way, no half-broken keep-alive
connection outlives the fault, and a link that answers slowly page by page still fails a
query that takes longer than ``timeout_s`` in all.

Example::

    engine = TrinoQueryEngine.from_url("http://127.0.0.1:8080")
    engine.rows("SELECT count(*) FROM dwh.orders")     # runs SELECT count(*) FROM iceberg.dwh.orders
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from datadrill.errors import QueryFailed

TRINO_CATALOG = "iceberg"  # compose/trino/catalog/iceberg.properties; the embedded engine's too


def qualify(sql: str, tables: Sequence[str], catalog: str = TRINO_CATALOG) -> str:
    """Prefix each ``schema.table`` of ``tables`` with the Trino catalog where it appears
    as a whole name (not inside a longer identifier, not already qualified)."""
    for table in tables:
        pattern = re.compile(rf"(?<![\w.\"]){re.escape(table)}(?![\w])")
        sql = pattern.sub(f"{catalog}.{table}", sql)
    return sql


_DEADLINE_SLACK_S = 0.05


class DeadlinePassed(Exception):
    """A query's deadline passed. Not one of the trino client's retried exceptions
    (``requests``' connection errors and timeouts): its retries back off 0.2 s, then 0.4 s,
    before attempts that could only fail, so a probe with a 1 s timeout answered after
    ~2 s under a slow link — too late for its round (an alert "bad for 2 s" missed a 4 s
    fault by 0.01 s). This ends the query at its deadline."""


class _DeadlineSession(requests.Session):
    """Every request of one query shares one deadline: each waits at most what is left, and
    a body is read as it arrives, so an answer trickling over a slow link (each read well
    within the socket timeout) still ends at the deadline, and nothing is retried past it
    (:class:`DeadlinePassed`)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s

    def _remaining(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed(f"no answer within {self.timeout_s:g} s")
        return remaining

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = self._remaining()
        kwargs["stream"] = True
        verb = method if isinstance(method, str) else method.decode()
        try:
            response = super().request(verb, url, *args, **kwargs)
        except requests.Timeout as exc:
            # The socket's timeout was what was left: this timeout is the deadline's (a
            # socket may wake a few milliseconds early, hence the slack).
            if self.deadline - time.monotonic() < _DEADLINE_SLACK_S:
                raise DeadlinePassed(f"no answer within {self.timeout_s:g} s") from exc
            raise
        chunks: list[bytes] = []
        try:
            while chunk := response.raw.read1(65536, decode_content=True):
                chunks.append(chunk)
                self._remaining()
        finally:
            response.close()
        # The body as requests would have read it (what response.text and .json() use).
        response._content = b"".join(chunks)
        return response


def _trino_connect(**settings: Any) -> Any:
    import trino

    return trino.dbapi.connect(**settings)  # type: ignore[no-untyped-call]


def _failure(exc: Exception, url: str, timeout_s: float) -> QueryFailed:
    from trino.exceptions import TrinoQueryError

    if isinstance(exc, TrinoQueryError):
        location = (exc.error_location[0], exc.error_location[1]) if exc.error_location else None
        return QueryFailed(
            f"trino: {exc.error_name}: {exc.message}"[:400], error_name=str(exc.error_name), location=location
        )
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, (requests.Timeout, DeadlinePassed)) or "timed out" in first.lower() or "within" in first:
        return QueryFailed(f"query path: no answer from {url} within {timeout_s:g} s ({first[:200]})")
    return QueryFailed(f"query path: {url}: {type(exc).__name__}: {first[:300]}")


class TrinoQueryEngine:
    """A Trino client with the embedded engine's ``rows`` call."""

    dialect = "trino"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str = "datadrill",
        http_scheme: str = "http",
        timeout_s: float = 5.0,
        default_tables: Sequence[str] = ("dwh.orders",),
        connect: Callable[..., Any] | None = None,
    ) -> None:
        self._connect: Callable[..., Any] = connect if connect is not None else _trino_connect
        self.url = f"{http_scheme}://{host}:{port}"
        self.timeout_s = timeout_s
        self._settings: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": user,
            "http_scheme": http_scheme,
            "catalog": TRINO_CATALOG,
            "request_timeout": timeout_s,
            "source": "datadrill",
            # Statements with parameters use EXECUTE IMMEDIATE (one round trip, no probe).
            "legacy_prepared_statements": False,
        }
        self._default_tables = tuple(default_tables)

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 5.0, user: str = "datadrill") -> TrinoQueryEngine:
        """An engine for ``http(s)://HOST[:PORT]``."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Trino URL must be http(s)://HOST[:PORT], got {url!r}")
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 8080)
        return cls(host=parts.hostname, port=port, http_scheme=scheme, timeout_s=timeout_s, user=user)

    def rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        statement = qualify(sql, tables if tables is not None else self._default_tables)
        session = _DeadlineSession(self.timeout_s)
        connection: Any = None
        try:
            connection = self._connect(**self._settings, http_session=session)
            cursor = connection.cursor()
            cursor.execute(statement, list(params) if params else None)
            return [tuple(row) for row in cursor.fetchall()]
        except Exception as exc:
            raise _failure(exc, self.url, self.timeout_s) from exc
        finally:
            if connection is not None:
                # Closing a connection the fault broke may fail too; the query's outcome stands.
                with contextlib.suppress(Exception):
                    connection.close()
            session.close()

    def close(self) -> None:
        return  # no connection is kept between queries
