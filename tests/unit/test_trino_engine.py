"""The compose stack's Trino engine: table names qualified with the Trino catalog, every
failure a QueryFailed, a broken connection not reused. A small fake DB-API connection
stands in for Trino (the real one is exercised by the docker-marked tests)."""

from __future__ import annotations

from typing import Any

import pytest

from datadrill.backends.compose.trino_engine import TrinoQueryEngine, qualify
from datadrill.errors import QueryFailed


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


def test_rows_come_back_as_tuples_and_the_connection_is_reused() -> None:
    made: list[dict[str, Any]] = []
    connection = _Connection([[3, "x"]])

    def connect(**settings: Any) -> _Connection:
        made.append(settings)
        return connection

    engine = TrinoQueryEngine(host="127.0.0.1", port=18080, connect=connect)
    assert engine.rows("SELECT count(*), 'x' FROM dwh.orders") == [(3, "x")]
    assert engine.rows("SELECT ? FROM dwh.orders", [1]) == [(3, "x")]
    assert len(made) == 1 and made[0]["port"] == 18080 and made[0]["request_timeout"] == 5.0
    assert connection.cursor_obj.executed == [
        ("SELECT count(*), 'x' FROM iceberg.dwh.orders", None),
        ("SELECT ? FROM iceberg.dwh.orders", [1]),
    ]
    engine.close()
    assert connection.closed


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
    assert len(attempts) == 3  # a connection that failed a query is not reused


def test_freshness_on_trino_uses_trinos_functions(tmp_path: Any) -> None:
    import time

    from datadrill.clock import MonotonicClock
    from datadrill.model import slo
    from datadrill.probes.base import ProbeEnv
    from datadrill.probes.sli import FreshnessProbe

    now_us = int(time.time() * 1e6)
    connection = _Connection([[now_us - 2_000_000]])
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
    assert statement == (
        "SELECT CAST(to_unixtime(max(created_at)) * 1000000 AS bigint) FROM iceberg.dwh.orders"
    )
