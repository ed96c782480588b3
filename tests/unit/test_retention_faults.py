"""KafkaRetention and TopicDeleted: the specs, the retention cut's binary search, what a
replay cannot reach, and both plugins on librdkafka's mock cluster behind the fake stack
(conformance, then the watermarks seen from a client)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_stack import FakeStack
from pydantic import ValidationError

from datadrill.clock import FakeClock, MonotonicClock
from datadrill.errors import ConfigError, ControlError, KafkaMockUnavailable
from datadrill.faults.base import DrillContext
from datadrill.faults.conformance import check_plugin
from datadrill.faults.ledger import FaultLedger
from datadrill.faults.registry import plugin_for
from datadrill.faults.retention import cut_by_timestamps
from datadrill.model import KafkaRetention, TopicDeleted
from datadrill.recovery.replay import ReplayResult, reach, unreachable_text
from datadrill.stack.port import KafkaCapability

TOPIC = "orders.v1"
PARTITIONS = 3
OLD, NEW = 60, 40  # records per partition: an hour old, then written now


# -- specs ----------------------------------------------------------------------------------


def test_specs_describe_what_stays_lost() -> None:
    retention = KafkaRetention(at_s=10, keep_newest_s=5)
    assert retention.kind == "kafka.retention"
    assert retention.describe() == (
        "records older than 5 s deleted from every partition of the stack's topic, as retention.ms "
        "would (what was deleted stays deleted: a replay cannot reach it)"
    )
    assert "topic audit.v2" in KafkaRetention(at_s=0, keep_newest_s=0, topic="audit.v2").describe()
    deleted = TopicDeleted(at_s=3)
    assert deleted.kind == "kafka.topic_deleted"
    assert deleted.describe() == (
        "the stack's topic deleted and created again, empty (its records stay lost; offsets restart at 0)"
    )


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: KafkaRetention(at_s=0, keep_newest_s=-1), "keep_newest_s"),
        (lambda: KafkaRetention(at_s=0, keep_newest_s=1, topic="no spaces"), "topic"),
        (lambda: KafkaRetention(at_s=0, keep_newest_s="5"), "keep_newest_s"),  # type: ignore[arg-type]
        (lambda: TopicDeleted(at_s=-1), "at_s"),
        (lambda: TopicDeleted(at_s=0, topic="x" * 250), "topic"),
    ],
)
def test_specs_refuse_bad_values(make: Any, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make()
    assert field in str(caught.value)


def test_both_faults_share_the_topic_key_and_need_their_capability() -> None:
    retention, deleted = plugin_for("kafka.retention"), plugin_for("kafka.topic_deleted")
    assert retention.exclusive_key(KafkaRetention(at_s=0, keep_newest_s=1)) == "kafka.topic:stack"
    assert deleted.exclusive_key(TopicDeleted(at_s=0)) == "kafka.topic:stack"
    assert deleted.exclusive_key(TopicDeleted(at_s=0, topic="a")) == "kafka.topic:a"
    assert retention.requires == frozenset({KafkaCapability.DELETE_RECORDS})
    assert deleted.requires == frozenset({KafkaCapability.TOPIC_RECREATE})


# -- the cut --------------------------------------------------------------------------------


def test_cut_by_timestamps_finds_the_first_new_record_of_each_partition() -> None:
    # Partition 0: offsets 10..109, stamped 1000 + offset; 1: all old; 2: all new; 3: empty.
    stamps = {0: lambda o: 1000 + o, 1: lambda o: 0, 2: lambda o: 10**6, 3: lambda o: 0}
    asked: list[dict[int, int]] = []

    def probe(probes: dict[int, int]) -> dict[int, int]:
        asked.append(dict(probes))
        return {p: stamps[p](o) for p, o in probes.items()}

    marks = {0: (10, 110), 1: (0, 50), 2: (5, 9), 3: (7, 7)}
    assert cut_by_timestamps(marks, 1000 + 42, probe) == {0: 42, 1: 50, 2: 5, 3: 7}
    # Bounded: one round per halving of the widest range (100 offsets: 7 rounds).
    assert len(asked) <= 7
    assert all(3 not in round_ for round_ in asked)


def test_reach_names_what_retention_took_and_a_recreated_topic() -> None:
    unreachable, recreated = reach({0: 100, 1: 900, 2: 50, 3: 7}, {0: (1_334, 2_000), 1: (0, 40), 2: (0, 80)})
    assert unreachable == {0: (100, 1_334)}
    assert recreated == {1: 900}
    result = ReplayResult(
        rows=1,
        messages=1,
        duplicates=0,
        partitions=3,
        workers=1,
        elapsed_s=1.0,
        commits=1,
        unreachable=unreachable,
        recreated=recreated,
    )
    assert result.unreachable_total == 1_234
    text = unreachable_text(result)
    assert text.startswith(
        "1,234 offsets of partition 0 (100..1,333) were deleted by retention before the replay: "
        "those rows need the source or a reserve; the table's offsets of partition 1 lie beyond"
    )
    nothing = ReplayResult(rows=0, messages=0, duplicates=0, partitions=1, workers=1, elapsed_s=0, commits=0)
    assert unreachable_text(nothing) == ""


# -- on librdkafka's mock cluster -------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Any, FakeStack]]:
    from datadrill.backends.kafka.mock import MockCluster

    try:
        running = MockCluster.start(brokers=3)
    except KafkaMockUnavailable as exc:
        pytest.skip(f"no librdkafka with the mock cluster API here: {exc}")
    stack = FakeStack(tmp_path / "stack")
    stack.kafka.use_cluster(running)
    running.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=3)
    try:
        yield running, stack
    finally:
        running.close()


def _produce(bootstrap: str) -> None:
    """OLD records an hour old, then NEW records stamped now, in every partition."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    now_ms = int(time.time() * 1000)
    for partition in range(PARTITIONS):
        for i in range(OLD + NEW):
            stamp = now_ms - 3_600_000 + i if i < OLD else now_ms + i
            producer.produce(TOPIC, value=b"%d" % i, partition=partition, timestamp=stamp)
    assert producer.flush(30) == 0


def _watermarks(bootstrap: str) -> dict[int, tuple[int, int]]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "log_level": 0})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10, cached=False)
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def test_retention_conforms_and_moves_each_low_watermark_to_the_first_new_record(
    cluster: tuple[Any, FakeStack], tmp_path: Path
) -> None:
    running, stack = cluster
    _produce(running.bootstrap_servers)
    # Real wall time: the records' timestamps are the machine's.
    context = DrillContext(stack, tmp_path / "run", MonotonicClock())
    spec = KafkaRetention(at_s=0, keep_newest_s=600)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == (
        f"topic {TOPIC} at {running.bootstrap_servers} (3 partitions, offsets p0 0..100, p1 0..100, "
        "p2 0..100): records older than 600 s deleted"
    )
    assert check_plugin(plugin, spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl")) == []
    assert _watermarks(running.bootstrap_servers) == {p: (OLD, OLD + NEW) for p in range(PARTITIONS)}
    deletes = [c for c in stack.kafka.calls if c[0] == "delete_records"]
    assert deletes == [("delete_records", TOPIC, {p: OLD for p in range(PARTITIONS)})]


def test_retention_keeping_everything_deletes_nothing(cluster: tuple[Any, FakeStack], tmp_path: Path) -> None:
    running, stack = cluster
    _produce(running.bootstrap_servers)
    context = DrillContext(stack, tmp_path / "run", MonotonicClock())
    spec = KafkaRetention(at_s=0, keep_newest_s=7_200)
    plugin = plugin_for(spec.kind)
    data = plugin.prepare(spec, context)
    data.update(plugin.apply(spec, context, data))
    assert data["deleted"] == 0
    assert not [c for c in stack.kafka.calls if c[0] == "delete_records"]
    assert plugin.revert(data, context) == (
        f"nothing to put back: 0 records of {TOPIC} deleted by retention stay deleted (a replay cannot "
        "reach them; the source or a reserve must)"
    )


def test_topic_deleted_conforms_and_restarts_the_high_watermarks(
    cluster: tuple[Any, FakeStack], tmp_path: Path
) -> None:
    running, stack = cluster
    _produce(running.bootstrap_servers)
    context = DrillContext(stack, tmp_path / "run", MonotonicClock())
    spec = TopicDeleted(at_s=0)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context).endswith(
        "(3 partitions, 300 records now): deleted and created again, empty"
    )
    assert check_plugin(plugin, spec, context, ledger=FaultLedger(tmp_path / "ledger.jsonl")) == []
    assert _watermarks(running.bootstrap_servers) == {p: (0, 0) for p in range(PARTITIONS)}
    assert ("recreate_topic", TOPIC) in stack.kafka.calls


def test_topic_deleted_revert_creates_a_missing_topic_and_says_what_stays_lost(
    cluster: tuple[Any, FakeStack], tmp_path: Path
) -> None:
    running, stack = cluster
    context = DrillContext(stack, tmp_path / "run", MonotonicClock())
    plugin = plugin_for("kafka.topic_deleted")
    data = {"topic": TOPIC, "recreated": True, "lost": 1_234, "high_before": {"0": 1}}
    assert (
        plugin.revert(data, context)
        == f"nothing to put back: topic {TOPIC} exists (its 1,234 records stay lost)"
    )
    # A runner killed between the delete and the create: the revert brings the topic back.
    running.delete_topic(TOPIC)
    stack.kafka.calls.clear()
    assert plugin.revert(data, context) == f"topic {TOPIC} created again, empty (its 1,234 records stay lost)"
    assert stack.kafka.calls == [("recreate_topic", TOPIC)]


def test_targets_name_a_missing_topic(cluster: tuple[Any, FakeStack], tmp_path: Path) -> None:
    _, stack = cluster
    context = DrillContext(stack, tmp_path / "run", FakeClock())
    with pytest.raises(ConfigError, match=r"KafkaRetention.topic = 'gone' .*the stack's topic orders.v1"):
        plugin_for("kafka.retention").target(KafkaRetention(at_s=0, keep_newest_s=1, topic="gone"), context)
    with pytest.raises(ConfigError, match=r"TopicDeleted.topic = 'gone'"):
        plugin_for("kafka.topic_deleted").target(TopicDeleted(at_s=0, topic="gone"), context)


def test_embedded_kafka_deletes_records_and_recreates_a_topic_with_its_layout() -> None:
    from datadrill.backends.kafka.embedded import EmbeddedKafka
    from datadrill.config import KafkaConfig

    try:
        kafka = EmbeddedKafka.start(KafkaConfig(), clock=MonotonicClock())
    except KafkaMockUnavailable as exc:
        pytest.skip(f"no librdkafka with the mock cluster API here: {exc}")
    try:
        assert kafka.capabilities()[KafkaCapability.DELETE_RECORDS] == ""
        assert kafka.capabilities()[KafkaCapability.TOPIC_RECREATE] == ""
        # A library without a symbol says which one (the capability's reason, before a run).
        assert "does not export rd_kafka_mock_no_such_call" in kafka.cluster.missing("rd_kafka_mock_no_such_call")
        kafka.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=3)
        _produce(kafka.bootstrap_servers)
        assert kafka.delete_records(TOPIC, {0: 10, 2: 99}) == {0: 10, 2: 99}
        assert _watermarks(kafka.bootstrap_servers) == {0: (10, 100), 1: (0, 100), 2: (99, 100)}
        leaders = kafka.leaders()["leaders"]
        assert kafka.recreate_topic(TOPIC) == {"partitions": PARTITIONS, "replication_factor": 3}
        assert _watermarks(kafka.bootstrap_servers) == {p: (0, 0) for p in range(PARTITIONS)}
        assert kafka.leaders()["leaders"] == leaders  # spread again, as for a new topic
        with pytest.raises(ControlError, match=r"no topic 'nope' was created on this cluster"):
            kafka.recreate_topic("nope")
    finally:
        kafka.close()


def test_replay_cost_points_grow_and_stay_bounded() -> None:
    from datadrill.recovery.replay import MAX_COST_POINTS, _stamp

    points: list[tuple[int, float]] = []
    _stamp(points, 0, 0.0)  # nothing read yet: no point
    for messages in range(1, 500):
        _stamp(points, messages, 0.0)
        _stamp(points, messages, 0.0)  # the same size again adds nothing
    assert 2 <= len(points) <= MAX_COST_POINTS
    sizes = [size for size, _ in points]
    assert sizes == sorted(set(sizes)) and sizes[0] == 1 and sizes[-1] == 499


def test_a_retention_revert_after_a_failed_apply_does_not_claim_nothing_was_lost(tmp_path: Path) -> None:
    # The ledger holds only what prepare() returned when apply() raised midway.
    stack = FakeStack(tmp_path / "state")
    context = DrillContext(stack=stack, run_dir=tmp_path / "run", clock=MonotonicClock())  # type: ignore[arg-type]
    note = plugin_for("kafka.retention").revert({"topic": "orders.v1", "keep_newest_s": 5.0}, context)
    assert "did not complete" in note and "stay deleted" in note
    assert "no records" not in note
