"""The query service through the harness's Trino client over loopback: answers, engine
errors as Trino errors, and each way the network can fail a query, each a QueryFailed that
says which."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from datadrill.errors import QueryFailed
from datadrill.interfaces.trino_client import TrinoQueryEngine
from datadrill.platform.catalog import ensure_orders_table, open_catalog
from datadrill.platform.query_service import QueryService


@pytest.fixture
def service(tmp_path: Path) -> Iterator[QueryService]:
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    ensure_orders_table(open_catalog(uri, tmp_path / "warehouse"), "dwh.orders")
    running = QueryService(uri, tmp_path / "warehouse", table="dwh.orders")
    running.start()
    yield running
    running.stop()


def test_a_query_round_trips(service: QueryService) -> None:
    client = TrinoQueryEngine.from_url(service.url)
    assert client.rows("SELECT count(*), max(created_at) FROM dwh.orders") == [(0, None)]
    assert client.rows("SELECT ? + 1, 'a''b'", [41], tables=()) == [(42, "a'b")]
    assert service.failures == 0


def test_engine_errors_come_back_as_trino_errors(service: QueryService) -> None:
    client = TrinoQueryEngine.from_url(service.url)
    with pytest.raises(QueryFailed, match="does not exist in the catalog") as missing:
        client.rows("SELECT count(*) FROM dwh.nope", tables=("dwh.nope",))
    assert missing.value.error_name == "TABLE_NOT_FOUND"
    with pytest.raises(QueryFailed, match="COLUMN_NOT_FOUND"):
        client.rows("SELECT no_such_column FROM dwh.orders")
    assert service.failures == 2
    assert client.rows("SELECT count(*) FROM dwh.orders") == [(0,)]


def test_a_refused_connection_is_a_failed_query() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(QueryFailed, match=r"query path: .*(ConnectionRefused|Connection refused)"):
        TrinoQueryEngine.from_url(f"http://127.0.0.1:{port}", timeout_s=2).rows("SELECT 1")


def _server(reply: bytes | None) -> tuple[socket.socket, str]:
    """Accepts connections and answers ``reply`` then closes (None: never answers)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            if reply is None:
                held.append(conn)
                continue
            conn.sendall(reply)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_silent_server_times_out() -> None:
    server, url = _server(None)
    try:
        with pytest.raises(QueryFailed, match=r"no answer from .* within 0\.3 s"):
            TrinoQueryEngine.from_url(url, timeout_s=0.3).rows("SELECT 1")
    finally:
        server.close()


def test_a_cut_off_answer_is_a_failed_query() -> None:
    # The headers promise 100 bytes; 10 arrive before the connection closes.
    server, url = _server(b'HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\n{"rows": [')
    try:
        with pytest.raises(QueryFailed, match="query path"):
            TrinoQueryEngine.from_url(url, timeout_s=2).rows("SELECT 1")
    finally:
        server.close()


def test_a_bad_url_is_refused() -> None:
    with pytest.raises(ValueError, match=r"http\(s\)://HOST\[:PORT\]"):
        TrinoQueryEngine.from_url("ftp://127.0.0.1:1")


def test_a_catalog_given_as_a_callable_is_opened_by_it(tmp_path: Path) -> None:
    # How the stack hands over a REST, Hive or Glue catalog (pyiceberg's load_catalog): no
    # SQL URI for the service to open. The catalog behind it here is a SQL one on a file
    # (pyiceberg's in-memory catalog lives in one thread's SQLite connection).
    import pyarrow as pa
    from pyiceberg.catalog import Catalog

    catalog = open_catalog(f"sqlite:///{tmp_path / 'team.db'}", tmp_path / "warehouse")
    catalog.create_namespace("team")
    table = catalog.create_table("team.events", schema=pa.schema([("id", pa.int64())]))
    table.append(pa.table({"id": [1, 2, 3]}))
    opened: list[int] = []

    def open_it() -> Catalog:
        opened.append(1)
        return catalog

    service = QueryService("", tmp_path / "unused", table="team.events", open_catalog=open_it)
    service.start()
    try:
        client = TrinoQueryEngine.from_url(service.url)
        assert client.rows("SELECT count(*), max(id) FROM team.events") == [(3, 3)]
    finally:
        service.stop()
    assert opened == [1]
