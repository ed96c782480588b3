"""The relay's publisher: a batch encoded a column at a time produces exactly the messages
the record-at-a-time path produces (values, keys, headers, order), and a batch holding a
record that breaks the contract goes the record-at-a-time way, dead letter included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from datadrill.config import parse_config
from datadrill.paths import StatePaths
from datadrill.platform import relay
from datadrill.platform.relay import Publisher, RelayStats, WriterChoice, dead_letter_topic
from datadrill.platform.source_db import OutboxEvent


class _Producer:
    """Records what a confluent-kafka Producer was asked to produce."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, bytes, list[tuple[str, Any]]]] = []

    def produce(self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, Any]], on_delivery: Any) -> None:
        self.produced.append((topic, value, key, list(headers)))

    def poll(self, timeout: float) -> int:
        return 0


def _events(n: int, *, start: int = 1) -> list[OutboxEvent]:
    return [
        OutboxEvent(i, 10_000 + i, i % 97, (i * 37) % 100_000 - 500, ("EUR", "USD", "ü€")[i % 3],
                    ("created", "paid")[i % 2], 1_764_547_200_000_000 + i, i % 10 == 0)
        for i in range(start, start + n)
    ]


def _publish(tmp_path: Path, events: list[OutboxEvent], *, columnar: bool) -> tuple[list[Any], RelayStats]:
    config = parse_config({}, source="test")
    producer, stats = _Producer(), RelayStats()
    publisher = Publisher(config, StatePaths(tmp_path), producer, stats)  # type: ignore[arg-type]
    if not columnar:
        publisher._encode_columns = lambda events: None  # type: ignore[method-assign]
    publisher.publish(events, WriterChoice(None, True, publisher.contract))
    return producer.produced, stats


def test_the_columnar_batch_produces_what_one_record_at_a_time_produces(tmp_path: Path) -> None:
    events = _events(500)
    fast, fast_stats = _publish(tmp_path, events, columnar=True)
    slow, slow_stats = _publish(tmp_path, events, columnar=False)
    assert fast == slow and len(fast) == 500
    assert fast_stats.published == slow_stats.published == 500
    assert fast[0][2] == b"10001" and fast[0][0] == "orders.v1"


@pytest.mark.parametrize("bad", [{"amount_cents": "12.5"}, {"currency": None}, {"customer_id": 2**63}])
def test_a_record_that_breaks_the_contract_is_dead_lettered_and_the_rest_published(
    tmp_path: Path, bad: dict[str, Any]
) -> None:
    events = _events(100)
    events[40] = events[40]._replace(**bad)
    produced, stats = _publish(tmp_path, events, columnar=True)
    topics = [topic for topic, *_ in produced]
    assert topics.count(dead_letter_topic("orders.v1")) == 1 and topics[40] == dead_letter_topic("orders.v1")
    assert stats.dead_lettered == 1 and stats.published == 100
    good, _ = _publish(tmp_path, [e for i, e in enumerate(events) if i != 40], columnar=False)
    assert [m for i, m in enumerate(produced) if i != 40] == good


def test_small_batches_and_the_json_contract_go_one_record_at_a_time(tmp_path: Path) -> None:
    config = parse_config({}, source="test")
    publisher = Publisher(config, StatePaths(tmp_path), _Producer(), RelayStats())  # type: ignore[arg-type]
    assert publisher._encode_columns(_events(relay._COLUMNAR_MIN - 1)) is None
    assert publisher._encode_columns(_events(relay._COLUMNAR_MIN)) is not None
    json_config = parse_config({"contract": {"format": "json"}}, source="test")
    json_publisher = Publisher(json_config, StatePaths(tmp_path), _Producer(), RelayStats())  # type: ignore[arg-type]
    assert json_publisher._encode_columns(_events(100)) is None
