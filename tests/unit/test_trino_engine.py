"""The harness's Trino client: table names qualified with the Trino catalog, every failure a
QueryFailed, a fresh connection per query. A small fake DB-API connection stands in for a
server (the embedded query service is exercised in test_query_service and test_trino_protocol)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from datadrill.errors import QueryFailed
from datadrill.interfaces.trino_client import TrinoQueryEngine, qualify


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT count(*) FROM dwh.orders", "SELECT count(*) FROM iceberg.dwh.orders"),
        (
            "SELECT * FROM dwh.orders o JOIN dwh.orders p ON true",
            "SELECT * FROM iceberg.dwh.orders o JOIN iceberg.dwh.orders p ON true",
        ),
        ("SELECT * FROM iceberg.dwh.orders", "SELECT * FROM iceberg.dwh.orders"),
        ("SELECT * FROM dwh.orders_archive", "SELECT * FROM dwh.orders_archive"),
        ('SELECT * FROM "x".dwh.orders', 'SELECT * FROM "x".dwh.orders'),
    ],
)
def test_tables_are_qualified_with_the_trino_catalog(sql: str, expected: str) -> None:
    assert qualify(sql, ["dwh.orders"]) == expected


class _Cursor:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.executed: list[tuple[str, Any]] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.executed.append((sql, params))
        if isinstance(self.outcome, Exception):
            raise self.outcome

    def fetchall(self) -> list[list[Any]]:
        return list(self.outcome)


class _Connection:
    def __init__(self, outcome: Any) -> None:
        self.cursor_obj = _Cursor(outcome)
        self.closed = False

    def cursor(self) -> _Cursor:
        return self.cursor_obj

    def close(self) -> None:
        self.closed = True


def test_rows_come_back_as_tuples_on_a_fresh_connection_per_query() -> None:
    made: list[dict[str, Any]] = []
    connections: list[_Connection] = []

    def connect(**settings: Any) -> _Connection:
        made.append(settings)
        connections.append(_Connection([[3, "x"]]))
        return connections[-1]

    engine = TrinoQueryEngine(host="127.0.0.1", port=18080, connect=connect)
    assert engine.rows("SELECT count(*), 'x' FROM dwh.orders") == [(3, "x")]
    assert engine.rows("SELECT ? FROM dwh.orders", [1]) == [(3, "x")]
    # One connection per query, closed after it: a network fault hits every query alike.
    assert len(made) == 2 and all(c.closed for c in connections)
    assert made[0]["port"] == 18080 and made[0]["request_timeout"] == 5.0
    assert made[0]["catalog"] == "iceberg" and made[0]["user"] == "datadrill"
    assert [c.cursor_obj.executed[0] for c in connections] == [
        ("SELECT count(*), 'x' FROM iceberg.dwh.orders", None),
        ("SELECT ? FROM iceberg.dwh.orders", [1]),
    ]


def test_failures_are_failed_queries_and_the_connection_is_dropped() -> None:
    attempts: list[int] = []

    def connect(**settings: Any) -> _Connection:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        return _Connection(RuntimeError("Table 'iceberg.dwh.orders' does not exist"))

    engine = TrinoQueryEngine(host="127.0.0.1", port=1, connect=connect)
    with pytest.raises(QueryFailed, match="ConnectionRefusedError"):
        engine.rows("SELECT 1", tables=())
    with pytest.raises(QueryFailed, match="does not exist"):
        engine.rows("SELECT count(*) FROM dwh.orders")
    with pytest.raises(QueryFailed):
        engine.rows("SELECT count(*) FROM dwh.orders")
    assert len(attempts) == 3  # every query connects afresh


def test_freshness_reads_the_newest_timestamp_with_its_zone(tmp_path: Any) -> None:
    import datetime as dt

    from datadrill.clock import MonotonicClock
    from datadrill.model import slo
    from datadrill.probes.base import ProbeEnv
    from datadrill.probes.sli import FreshnessProbe

    newest = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    connection = _Connection([[newest]])
    engine = TrinoQueryEngine(host="127.0.0.1", port=1, connect=lambda **_: connection)
    env = ProbeEnv(
        clock=MonotonicClock(),
        bootstrap_servers="127.0.0.1:1",
        query_engine=lambda: None,  # type: ignore[arg-type,return-value]
        mart_queries=lambda timeout_s: engine,
        source_db=lambda: None,  # type: ignore[arg-type,return-value]
        heartbeat_dir=tmp_path,
        events_file=tmp_path / "events.jsonl",
    )
    sample = FreshnessProbe(slo.Freshness(max_age_s=10), env).measure()
    assert sample.good and sample.value is not None and 1.5 < sample.value < 10
    ((statement, _),) = connection.cursor_obj.executed
    # Plain SQL that Trino and the embedded engine both run.
    assert statement == "SELECT max(created_at) FROM iceberg.dwh.orders"


def test_a_query_ends_at_its_deadline_without_retrying_past_it() -> None:
    """A server that answers after the deadline: the query fails as "no answer within",
    after one request — the trino client's retries (0.2 s, then 0.4 s of back-off before
    attempts that could only fail) used to stretch a 1 s probe to ~2 s."""
    import http.server
    import threading

    from datadrill.interfaces import trino_client

    stop = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            stop.wait(5)  # longer than the query's deadline; released when the test ends

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    requests_made = 0
    original = trino_client._DeadlineSession.request

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal requests_made
        requests_made += 1
        return original(self, *args, **kwargs)

    try:
        engine = trino_client.TrinoQueryEngine(host="127.0.0.1", port=server.server_address[1], timeout_s=0.5)
        with (
            mock.patch.object(trino_client._DeadlineSession, "request", counted),
            pytest.raises(QueryFailed, match=r"no answer from .* within 0\.5 s"),
        ):
            engine.rows("SELECT 1")
        assert requests_made == 1
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
