"""Trino's client protocol on the embedded query service, driven by the official ``trino``
client (DB-API and SQLAlchemy) and by raw HTTP where the protocol itself is the point:
paging through nextUri, cancel, the error document, the user header, types."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trino
from trino.exceptions import TrinoQueryError, TrinoUserError

from datadrill.interfaces import trino_protocol
from datadrill.interfaces.trino_types import LiteralError, parse_parameters
from datadrill.platform.catalog import ensure_orders_table, open_catalog
from datadrill.platform.query_service import QueryService

HEADERS = {"X-Trino-User": "tester", "X-Trino-Catalog": "iceberg", "X-Trino-Schema": "dwh"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[QueryService]:
    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    ensure_orders_table(open_catalog(uri, tmp_path / "warehouse"), "dwh.orders")
    running = QueryService(uri, tmp_path / "warehouse", table="dwh.orders")
    running.start()
    yield running
    running.stop()


def _cursor(service: QueryService, **settings: Any) -> Any:
    port = int(service.url.rsplit(":", 1)[1])
    connection = trino.dbapi.connect(  # type: ignore[no-untyped-call]
        host="127.0.0.1", port=port, user="tester", catalog="iceberg", **settings
    )
    return connection.cursor()


def test_a_type_table_round_trips_through_the_trino_client(service: QueryService) -> None:
    cursor = _cursor(service)
    cursor.execute(
        "SELECT CAST(9007199254740993 AS bigint) AS b, 'näme' AS v, true AS t, "
        "CAST(12.34 AS decimal(10,2)) AS d, TIMESTAMPTZ '2026-01-02 03:04:05.123456+00' AS ts, "
        "DATE '2026-01-02' AS day, NULL::bigint AS nothing"
    )
    assert cursor.fetchall() == [
        [
            9007199254740993,
            "näme",
            True,
            Decimal("12.34"),
            dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
            dt.date(2026, 1, 2),
            None,
        ]
    ]
    assert [(d[0], d[1]) for d in cursor.description] == [
        ("b", "bigint"),
        ("v", "varchar"),
        ("t", "boolean"),
        ("d", "decimal(10,2)"),
        ("ts", "timestamp(6) with time zone"),
        ("day", "date"),
        ("nothing", "bigint"),
    ]


def test_parameters_travel_as_trino_literals(service: QueryService) -> None:
    cursor = _cursor(service)
    values = [7, "it's", Decimal("1.50"), dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)]
    cursor.execute("SELECT ?, ?, ?, ?, ?", values)
    ((row),) = cursor.fetchall()
    assert row[:4] == values[:4] and row[4] == values[4]


def test_an_iceberg_table_by_its_trino_names(service: QueryService) -> None:
    for sql, schema in [
        ("SELECT count(*) FROM iceberg.dwh.orders", None),
        ("SELECT count(*) FROM dwh.orders", None),
        ("SELECT count(*) FROM orders", "dwh"),
    ]:
        cursor = _cursor(service, schema=schema) if schema else _cursor(service)
        cursor.execute(sql)
        assert cursor.fetchall() == [[0]], sql
    cursor = _cursor(service)
    cursor.execute("SHOW SCHEMAS")
    assert cursor.fetchall() == [["dwh"], ["information_schema"]]
    cursor.execute("SHOW TABLES FROM iceberg.dwh")
    assert cursor.fetchall() == [["orders"]]
    cursor.execute("DESCRIBE dwh.orders")
    columns = {row[0]: row[1] for row in cursor.fetchall()}
    assert columns["order_id"] == "bigint" and columns["created_at"] == "timestamp(6) with time zone"


def test_sqlalchemy_reads_the_catalog_through_information_schema(service: QueryService) -> None:
    from sqlalchemy import create_engine, inspect, text

    port = int(service.url.rsplit(":", 1)[1])
    engine = create_engine(f"trino://tester@127.0.0.1:{port}/iceberg/dwh")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM orders")).scalar() == 0
        inspector = inspect(connection)
        assert inspector.get_schema_names() == ["dwh", "information_schema"]
        assert inspector.get_table_names("dwh") == ["orders"]
        columns = {c["name"] for c in inspector.get_columns("orders", "dwh")}
        assert {"order_id", "created_at", "is_canary"} <= columns
    engine.dispose()


def test_a_missing_table_fails_as_trino_fails(service: QueryService) -> None:
    cursor = _cursor(service)
    with pytest.raises(TrinoUserError) as raised:
        cursor.execute("SELECT count(*)\nFROM dwh.gone")
    error = raised.value
    assert (error.error_name, error.error_type, error.error_code) == ("TABLE_NOT_FOUND", "USER_ERROR", 46)
    assert error.error_location == (2, 10)
    assert "iceberg.dwh.gone" in error.message


def test_errors_carry_trinos_names(service: QueryService) -> None:
    cases = {
        "SELEC 1": "SYNTAX_ERROR",
        "SELECT nope FROM dwh.orders": "COLUMN_NOT_FOUND",
        "SELECT * FROM other.dwh.orders": "CATALOG_NOT_FOUND",
        "SELECT * FROM orders": "MISSING_SCHEMA_NAME",
        "INSERT INTO dwh.orders (order_id) VALUES (1)": "NOT_SUPPORTED",
    }
    for sql, name in cases.items():
        with pytest.raises(TrinoQueryError) as raised:
            _cursor(service).execute(sql)
        assert raised.value.error_name == name, sql


def test_a_result_larger_than_a_page_is_paged_through_next_uri(service: QueryService) -> None:
    total = trino_protocol.PAGE_ROWS * 2 + 5
    answer = httpx.post(f"{service.url}/v1/statement", content=f"SELECT * FROM range({total})", headers=HEADERS)
    document = answer.json()
    assert answer.status_code == 200 and document["stats"]["state"] == "QUEUED" and "data" not in document
    pages: list[int] = []
    rows: list[list[Any]] = []
    while "nextUri" in document:
        document = httpx.get(document["nextUri"], headers=HEADERS, timeout=30).json()
        if document.get("data"):
            pages.append(len(document["data"]))
            rows += document["data"]
    assert document["stats"]["state"] == "FINISHED"
    assert document["columns"] == [
        {"name": "range", "type": "bigint", "typeSignature": {"rawType": "bigint", "arguments": []}}
    ]
    assert pages == [trino_protocol.PAGE_ROWS, trino_protocol.PAGE_ROWS, 5]
    assert [r[0] for r in rows] == list(range(total))
    # And through the client, which follows the same pages.
    cursor = _cursor(service)
    cursor.execute(f"SELECT * FROM range({total})")
    assert len(cursor.fetchall()) == total


def test_cancel_stops_the_engine(service: QueryService) -> None:
    # Hours of work for DuckDB: only an interrupt lets the next statement run.
    endless = "SELECT count(*) FROM range(1000000000000) a"
    document = httpx.post(f"{service.url}/v1/statement", content=endless, headers=HEADERS).json()
    first = httpx.get(document["nextUri"], headers=HEADERS, timeout=30).json()
    assert first["stats"]["state"] == "RUNNING" and "nextUri" in first
    cancelled = httpx.delete(first["nextUri"], headers=HEADERS)
    assert cancelled.status_code == 204
    assert httpx.get(first["nextUri"], headers=HEADERS).status_code == 410
    cursor = _cursor(service, request_timeout=60)
    cursor.execute("SELECT 42")
    assert cursor.fetchall() == [[42]]


def test_the_clients_cancel(service: QueryService) -> None:
    cursor = _cursor(service)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            cursor.execute("SELECT count(*) FROM range(1000000000000) a")
            cursor.fetchall()
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while cursor.query_id is None and time.monotonic() < deadline:
        time.sleep(0.05)
    cursor.cancel()
    worker.join(60)
    assert not worker.is_alive() and failure, "the query ended"
    again = _cursor(service)
    again.execute("SELECT 1")
    assert again.fetchall() == [[1]]


def test_a_request_without_a_user_is_refused_as_trino_refuses_it(service: QueryService) -> None:
    answer = httpx.post(f"{service.url}/v1/statement", content="SELECT 1")
    assert answer.status_code == 400 and "User must be set" in answer.text
    info = httpx.get(f"{service.url}/v1/info").json()
    assert info["coordinator"] is True and info["starting"] is False


def test_parameter_literals() -> None:
    assert parse_parameters("NULL, true, -3, 2.5, 'a''b', X'00ff'") == [
        None,
        True,
        -3,
        Decimal("2.5"),
        "a'b",
        b"\x00\xff",
    ]
    assert parse_parameters("TIMESTAMP '2026-01-02 03:04:05.000001 +02:00'") == [
        dt.datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ]
    assert parse_parameters("DOUBLE '1.5', UUID '12345678-1234-5678-1234-567812345678'")[0] == 1.5
    for bad in ("ARRAY[1,2]", "1,", "1 2", "foo()"):
        with pytest.raises(LiteralError):
            parse_parameters(bad)
