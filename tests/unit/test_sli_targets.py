"""The built-in SLIs measure their ``Target``: a user's table (timestamp or epoch event
times, through the Trino-protocol query service), a user's topic and consumer group (on an
in-process mock Kafka cluster), one component's restarts, a declared connector's health."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fake_stack import FakeStack
from pydantic import ValidationError

from datadrill.clock import FakeClock
from datadrill.config import ComponentConfig, StackConfig
from datadrill.model.slo import (
    CanaryLatency,
    ConnectorErrorRate,
    ConnectorHealth,
    ConsumerLag,
    Freshness,
    QuerySuccess,
    RestartRate,
    Target,
)
from datadrill.probes import ProbeEnv, build_probe

NOW = 1.8e9  # the fake clock's wall time, seconds since the epoch


class _Mart:
    """A mart that answers every query with one value and records the SQL."""

    dialect = "trino"

    def __init__(self, value: Any) -> None:
        self.value = value
        self.seen: list[tuple[str, tuple[str, ...]]] = []

    def rows(self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None) -> list[tuple[Any, ...]]:
        self.seen.append((sql, tuple(tables or ())))
        return [(self.value,)]

    def close(self) -> None:
        pass


def _env(tmp_path: Path, *, mart: Any = None, bootstrap: str = "127.0.0.1:9") -> ProbeEnv:
    def no_engine() -> Any:
        raise AssertionError("these probes go over the query path, not the in-process engine")

    return ProbeEnv(
        clock=FakeClock(start=0.0, wall_offset=NOW),
        bootstrap_servers=bootstrap,
        query_engine=no_engine,
        mart_queries=lambda timeout_s: mart,
        source_db=lambda: sqlite3.connect(":memory:"),
        heartbeat_dir=tmp_path,
        events_file=tmp_path / "events.jsonl",
    )


TEAM = Target(topic="clicks", group="sessionizer", table="analytics.sessions", event_time_column="ended_at")


@pytest.mark.parametrize(
    ("unit", "value"),
    [
        ("timestamp", dt.datetime.fromtimestamp(NOW - 12, dt.UTC)),
        ("timestamp", dt.datetime.fromtimestamp(NOW - 12, dt.UTC).replace(tzinfo=None)),  # naive: UTC
        ("timestamp", (dt.datetime.fromtimestamp(NOW - 12, dt.UTC)).isoformat()),
        ("s", int(NOW - 12)),
        ("ms", int((NOW - 12) * 1e3)),
        ("us", int((NOW - 12) * 1e6)),
        ("ns", int((NOW - 12) * 1e9)),
    ],
)
def test_freshness_reads_the_targets_event_time_in_its_unit(tmp_path: Path, unit: str, value: Any) -> None:
    mart = _Mart(value)
    target = Target(table="analytics.sessions", event_time_column="ended_at", event_time_unit=unit)  # type: ignore[arg-type]
    sample = build_probe(Freshness(max_age_s=30, target=target), _env(tmp_path, mart=mart)).measure()
    assert sample.value == pytest.approx(12.0, abs=1e-3) and sample.good, sample
    assert mart.seen == [("SELECT max(ended_at) FROM analytics.sessions", ("analytics.sessions",))]


def test_freshness_of_a_date_column_counts_from_its_midnight(tmp_path: Path) -> None:
    today = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
    midnight = dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC).timestamp()
    sample = build_probe(Freshness(max_age_s=86_400, target=TEAM), _env(tmp_path, mart=_Mart(today))).measure()
    assert sample.value == pytest.approx(NOW - midnight)


@pytest.mark.parametrize(
    ("unit", "value", "said"),
    [
        # Numbers in a column declared a timestamp: the unit is missing.
        ("timestamp", int(NOW * 1000), r"holds numbers \(1800000000000\), not timestamps: set Target\(event_time_unit"),
        # Milliseconds read as seconds lie far ahead (an age of 0, good for ever, if believed).
        ("s", int(NOW * 1000), r"read as s is 1\.8e\+12 s after the epoch, past the year 5000: is event_time_unit right\?"),
        # Seconds read as milliseconds lie in 1970.
        ("ms", int(NOW), r"read as ms is 1970-01-21T.*: is event_time_unit right\?"),
        ("timestamp", "yesterday", "holds str values"),
        ("timestamp", True, "holds bool values"),
    ],
)
def test_an_event_time_in_the_wrong_unit_is_a_bad_sample_that_says_so(
    tmp_path: Path, unit: str, value: Any, said: str
) -> None:
    target = Target(table="analytics.sessions", event_time_column="ended_at", event_time_unit=unit)  # type: ignore[arg-type]
    sample = build_probe(Freshness(max_age_s=30, target=target), _env(tmp_path, mart=_Mart(value))).measure()
    assert sample.value is None and not sample.good
    assert sample.error is not None and sample.error.startswith("analytics.sessions.ended_at")
    assert re.search(said, sample.error), sample.error


def test_an_unknown_event_time_unit_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError, match="event_time_unit"):
        Target(event_time_unit="minutes")  # type: ignore[arg-type]


def test_query_success_fills_in_its_target_and_refuses_unknown_placeholders(tmp_path: Path) -> None:
    sli = QuerySuccess(query="SELECT count(DISTINCT {key_column}), max({event_time_column}) FROM {table}", target=TEAM)
    assert sli.sql() == "SELECT count(DISTINCT order_id), max(ended_at) FROM analytics.sessions"
    mart = _Mart(1)
    assert build_probe(sli, _env(tmp_path, mart=mart)).measure().good
    assert mart.seen[0][1] == ("analytics.sessions",)
    with pytest.raises(ValidationError, match=r"the query names \{tabel\}; it may name \{table\}"):
        QuerySuccess(query="SELECT 1 FROM {tabel}")
    with pytest.raises(ValidationError, match="not a query template"):
        QuerySuccess(query="SELECT '{' FROM {table}")
    assert QuerySuccess(query="SELECT '{{}}' FROM {table}").sql() == "SELECT '{}' FROM dwh.orders"


def test_statements_name_what_each_sli_reads() -> None:
    assert Freshness(max_age_s=30, target=TEAM).statement() == "newest ended_at in analytics.sessions no older than 30 s"
    assert (
        ConsumerLag(max_messages=100, target=TEAM).statement()
        == "consumer group sessionizer at most 100 messages behind on clicks"
    )
    assert QuerySuccess(target=TEAM).statement() == "mart queries on analytics.sessions succeed"
    assert CanaryLatency(max_latency_s=5, target=TEAM).statement() == "canaries visible in analytics.sessions within 5 s"
    assert RestartRate(max_per_min=2, component="sessionizer").statement() == "restarts of sessionizer at most 2/min"
    assert RestartRate(max_per_min=2).statement() == "component restarts at most 2/min"
    assert ConnectorErrorRate(max_per_s=1).statement() == "relay and sink errors at most 1/s"
    assert ConnectorHealth(component="sessionizer").statement() == "the sessionizer connector and its tasks RUNNING"


def test_restart_rate_counts_only_its_component(tmp_path: Path) -> None:
    from datadrill.platform.supervisor import EventLog

    env = _env(tmp_path)
    mine = build_probe(RestartRate(max_per_min=1, window_s=60, component="sessionizer"), env)
    every = build_probe(RestartRate(max_per_min=1, window_s=60), env)
    log = EventLog(env.events_file)
    for component in ("sessionizer", "sink", "sink"):
        log.append({"event": "process_exited", "component": component, "mono": 0.0})
    log.append({"event": "process_failed", "component": "sessionizer", "mono": 0.0})
    log.append({"event": "process_started", "component": "sessionizer", "mono": 0.0})
    assert mine.measure().value == 2.0  # its exit and its Connect task failure
    assert every.measure().value == 4.0


def test_connector_health_of_a_declared_connector_component_asks_for_its_connector(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack")
    stack.config = StackConfig(components={"lakehouse": ComponentConfig(connector="sink")})
    env = ProbeEnv.from_stack(stack, FakeClock())
    probe = build_probe(ConnectorHealth(component="lakehouse"), env)
    assert probe.measure().good
    stack.components.fail("sink", "disk full")
    assert probe.measure().error == "sink RUNNING (task 0 FAILED)"


# -- consumer lag on a real (in-process) mock Kafka cluster -------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from datadrill.backends.kafka.mock import MockCluster

    started = MockCluster.start(brokers=1)
    started.create_topic("clicks", partitions=3, replication_factor=1)
    yield started
    started.close()


def _produce(bootstrap: str, topic: str, per_partition: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for partition in range(3):
        for _ in range(per_partition):
            producer.produce(topic, b"x", partition=partition)
    assert producer.flush(30) == 0


def _commit(bootstrap: str, group: str, offsets: dict[int, int]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition("clicks", p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def test_consumer_lag_is_the_targets_group_over_every_partition_of_its_topic(tmp_path: Path, cluster: Any) -> None:
    bootstrap = cluster.bootstrap_servers
    _produce(bootstrap, "clicks", per_partition=10)  # high watermarks 10, 10, 10
    _commit(bootstrap, "sessionizer", {0: 10, 1: 4})  # partition 2: never committed
    _commit(bootstrap, "other-team", {0: 0, 1: 0, 2: 0})
    env = _env(tmp_path, bootstrap=bootstrap)
    lag = build_probe(ConsumerLag(max_messages=5, target=TEAM), env)
    try:
        sample = lag.measure()
        # 0 + 6 + 10 (from the low watermark): bad, and the never-committed partition is said.
        assert sample.value == 16.0 and not sample.good
        assert sample.error == (
            "16 behind; the group sessionizer has committed no offset on 1 of 3 partitions of clicks "
            "(counted from their low watermarks)"
        )
        _commit(bootstrap, "sessionizer", {1: 10, 2: 8})
        assert lag.measure() == type(sample)(2.0, True)
    finally:
        lag.close()
    other = build_probe(ConsumerLag(max_messages=100, target=Target(topic="clicks", group="other-team")), env)
    try:
        assert other.measure().value == 30.0  # another group of the same topic: its own offsets
    finally:
        other.close()


def test_consumer_lag_of_a_topic_that_does_not_exist_is_bad_not_zero(tmp_path: Path, cluster: Any) -> None:
    probe = build_probe(
        ConsumerLag(max_messages=5, target=Target(topic="clickz", group="sessionizer")),
        _env(tmp_path, bootstrap=cluster.bootstrap_servers),
    )
    try:
        sample = probe.measure()
        assert sample.value is None and not sample.good
        assert sample.error is not None and sample.error.startswith("topic clickz: Broker: Unknown topic")
        assert "(the group sessionizer has nothing to consume)" in sample.error
    finally:
        probe.close()


# -- a user's table through the Trino-protocol query service -------------------------------------
def test_the_query_service_serves_a_users_table_to_freshness_and_query_success(tmp_path: Path) -> None:
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    from datadrill.interfaces.trino_client import TrinoQueryEngine
    from datadrill.platform.catalog import ensure_orders_table, open_catalog
    from datadrill.platform.query_service import QueryService

    uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = open_catalog(uri, tmp_path / "warehouse")
    ensure_orders_table(catalog, "dwh.orders")  # the stack's own table is there too; not read
    catalog.create_namespace("analytics")
    schema = Schema(
        NestedField(1, "session_id", LongType(), required=False),
        NestedField(2, "ended_at_ms", LongType(), required=False),
    )
    table = catalog.create_table("analytics.sessions", schema)
    newest_ms = int((NOW - 7) * 1000)
    table.append(
        pa.table({"session_id": pa.array([1, 2], pa.int64()), "ended_at_ms": pa.array([newest_ms - 5000, newest_ms], pa.int64())})
    )
    service = QueryService(uri, tmp_path / "warehouse", table="dwh.orders")
    url = service.start()
    try:
        env = _env(tmp_path, mart=TrinoQueryEngine.from_url(url))
        target = Target(table="analytics.sessions", event_time_column="ended_at_ms", event_time_unit="ms", key_column="session_id")
        fresh = build_probe(Freshness(max_age_s=10, target=target), env).measure()
        assert fresh.value == pytest.approx(7.0, abs=1e-3) and fresh.good
        assert build_probe(QuerySuccess(target=target), env).measure().good
        missing = build_probe(Freshness(max_age_s=10, target=Target(table="analytics.nope")), env).measure()
        assert not missing.good and "TABLE_NOT_FOUND" in str(missing.error)
        assert service.failures == 1
    finally:
        service.stop()
