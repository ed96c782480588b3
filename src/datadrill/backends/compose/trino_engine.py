"""Trino as the compose stack's query engine, with the embedded engine's ``rows`` call.

Scenario SQL names tables as the catalog does (``dwh.orders``); Trino needs its catalog
too (``iceberg.dwh.orders``). The engine qualifies the tables it is told about and maps
every failure — a query error, a refused connection, a timeout — to QueryFailed, which is
what probes report.

Example::

    engine = TrinoQueryEngine(host="127.0.0.1", port=18080)
    engine.rows("SELECT count(*) FROM dwh.orders")     # runs SELECT count(*) FROM iceberg.dwh.orders
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from datadrill.errors import QueryFailed

TRINO_CATALOG = "iceberg"  # compose/trino/catalog/iceberg.properties


def qualify(sql: str, tables: Sequence[str], catalog: str = TRINO_CATALOG) -> str:
    """Prefix each ``schema.table`` of ``tables`` with the Trino catalog where it appears
    as a whole name (not inside a longer identifier, not already qualified)."""
    for table in tables:
        pattern = re.compile(rf"(?<![\w.\"]){re.escape(table)}(?![\w])")
        sql = pattern.sub(f"{catalog}.{table}", sql)
    return sql


def _trino_connect(**settings: Any) -> Any:
    import trino

    return trino.dbapi.connect(**settings)  # type: ignore[no-untyped-call]


class TrinoQueryEngine:
    """One Trino connection (through its Toxiproxy proxy on the compose stack)."""

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
        self._settings = {
            "host": host,
            "port": port,
            "user": user,
            "http_scheme": http_scheme,
            "request_timeout": timeout_s,
        }
        self._default_tables = tuple(default_tables)
        self._connection: Any = None

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 5.0) -> TrinoQueryEngine:
        """An engine for ``http(s)://HOST[:PORT]``."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        scheme = parts.scheme or "http"
        port = parts.port or (443 if scheme == "https" else 8080)
        return cls(host=parts.hostname or "localhost", port=port, http_scheme=scheme, timeout_s=timeout_s)

    def rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        statement = qualify(sql, tables if tables is not None else self._default_tables)
        try:
            if self._connection is None:
                self._connection = self._connect(**self._settings)
            cursor = self._connection.cursor()
            cursor.execute(statement, list(params) if params else None)
            return [tuple(row) for row in cursor.fetchall()]
        except Exception as exc:
            self._connection = None  # a broken connection is not reused
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise QueryFailed(f"trino: {type(exc).__name__}: {first[:300]}") from exc

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
