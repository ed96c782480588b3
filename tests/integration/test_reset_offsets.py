"""ResetOffsets on real consumer groups: the offset resolution and commit path on
librdkafka's mock cluster (a timestamp found by searching the log, an active group refused,
an inactive one moved and re-consumed), then on an embedded stack running the reference
platform and a declared consumer component: the step pauses the component, moves its
group to earliest and resumes it, and the component re-consumes; the same group moved
through Kafka Connect's offsets API (STOP, PATCH, DELETE, RESUME); the reference sink's
offsets refused and the sink left running.

Every wait is generous; no assertion on how long anything took."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from conftest import TEST_CONFIG, stop_stack
from datadrill.backends.embedded import EmbeddedBackend
from datadrill.backends.kafka.mock import MockCluster
from datadrill.clock import MonotonicClock
from datadrill.config import parse_config
from datadrill.engine.wait import wait_until
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.interfaces.connect_client import ConnectClient, ConnectError, ConnectOffset
from datadrill.model.recovery import ResetOffsets
from datadrill.paths import StatePaths
from datadrill.platform import group_offsets
from datadrill.platform.group_offsets import GroupActive
from datadrill.recovery import run_step
from datadrill.session import start_stack
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

SESSION_MS = 6000  # the test's consumers' session: the mock's rebalance delay follows it
T0 = 1_700_000_000_000


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_MS,
        }
    )


def _consume_all(consumer: Consumer, count: int, timeout_s: float = 60.0) -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            seen.append((msg.partition(), msg.offset()))
    return seen


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    mock = MockCluster.start(brokers=3)
    mock.set_group_initial_rebalance_delay(0)
    mock.create_topic("t", partitions=3, replication_factor=1)
    producer = Producer({"bootstrap.servers": mock.bootstrap_servers})
    for i in range(30):  # message i: partition i % 3, timestamp T0 + i s
        producer.produce("t", key=str(i), value=b"x", partition=i % 3, timestamp=T0 + i * 1000)
    producer.flush(30)
    try:
        yield mock.bootstrap_servers
    finally:
        mock.close()


def test_a_timestamp_resolves_to_the_first_message_at_or_after_it_on_the_mock(cluster: str) -> None:
    marks = group_offsets.watermarks(cluster, "t", [0, 1, 2])
    assert marks == {0: (0, 10), 1: (0, 10), 2: (0, 10)}
    # The mock answers ListOffsets by time with -1: the offsets come from searching the log.
    found = group_offsets.resolve(cluster, "t", T0 + 10_500, marks)
    # p0 holds messages 0,3,6,9,12,... (offset k = message 3k): first at or after 10.5 s is 12.
    assert found == {0: 4, 1: 4, 2: 3}
    assert group_offsets.resolve(cluster, "t", T0 + 3_600_000, marks) == {0: 10, 1: 10, 2: 10}
    assert group_offsets.resolve(cluster, "t", T0 - 1, marks) == {0: 0, 1: 0, 2: 0}


def test_an_active_group_is_refused_and_an_inactive_one_moved_and_reconsumed(cluster: str) -> None:
    consumer = _consumer(cluster, "readers")
    consumer.subscribe(["t"])
    assert len(_consume_all(consumer, 30)) == 30
    consumer.commit(asynchronous=False)
    stop = threading.Event()
    polling = threading.Thread(target=lambda: [consumer.poll(0.1) for _ in iter(stop.is_set, True)])
    polling.start()
    try:
        with pytest.raises(GroupActive, match="other active members"):
            group_offsets.move_group(
                cluster, "readers", "t", "earliest", timeout_s=60, session_timeout_ms=SESSION_MS
            )
    finally:
        stop.set()
        polling.join()
        consumer.close()
    assert group_offsets.committed(cluster, "readers", "t", [0, 1, 2]) == {0: 10, 1: 10, 2: 10}

    move = group_offsets.move_group(
        cluster, "readers", "t", "earliest", timeout_s=60, session_timeout_ms=SESSION_MS
    )
    assert [(p.before, p.after) for p in move.partitions] == [(10, 0)] * 3
    assert move.reprocess == 30
    assert group_offsets.committed(cluster, "readers", "t", [0, 1, 2]) == {0: 0, 1: 0, 2: 0}
    again = _consumer(cluster, "readers")
    again.subscribe(["t"])
    try:
        reread = _consume_all(again, 30)
    finally:
        again.close()
    assert sorted(reread) == sorted((p, o) for p in range(3) for o in range(10))


# -- on an embedded stack ------------------------------------------------------------------------
ENRICHER = r"""
import os, signal, sys
from confluent_kafka import Consumer

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
consumer = Consumer({
    "bootstrap.servers": os.environ["BOOTSTRAP"],
    "group.id": sys.argv[2],
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": int(sys.argv[3]),
})
consumer.subscribe([sys.argv[1]])
said = False
try:
    while True:
        if consumer.consume(num_messages=500, timeout=0.2):
            consumer.commit(asynchronous=False)
            if not said:
                print("consuming", flush=True)
                said = True
finally:
    consumer.close()  # leave the group: a reset need not wait for this member's session to end
"""


@pytest.fixture(scope="module")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    root = tmp_path_factory.mktemp("reset")
    (root / "enricher.py").write_text(ENRICHER, encoding="utf-8")

    def consumer(group: str, session_ms: int) -> dict[str, object]:
        return {
            "command": ["{python}", "enricher.py", "orders.v1", group, str(session_ms)],
            "cwd": str(root),
            "env": {"BOOTSTRAP": "{kafka.bootstrap_servers}"},
            "ready": {"log": "consuming"},
            "group": group,
        }

    data = {
        **TEST_CONFIG,
        "components": {
            # A short session, which the step is told (session_timeout_ms), and the default
            # one, which the Connect API's member assumes.
            "enricher": consumer("enricher", SESSION_MS),
            "indexer": consumer("indexer", group_offsets.SESSION_TIMEOUT_MS),
        },
    }
    stack = start_stack(
        EmbeddedBackend(), StatePaths(root / ".datadrill"), parse_config(data, source="test"), timeout_s=120
    )
    yield stack
    stop_stack(stack)


def _committed(stack: StackClient, group: str = "enricher") -> dict[int, int | None]:
    partitions = group_offsets.partitions_of(stack.bootstrap_servers, stack.topic)
    return group_offsets.committed(stack.bootstrap_servers, group, stack.topic, partitions)


def _caught_up(stack: StackClient, past: dict[int, int], group: str = "enricher") -> None:
    """Wait until ``group`` committed past ``past`` on every partition."""
    wait_until(
        lambda: all((_committed(stack, group).get(p) or 0) >= o for p, o in past.items()),
        timeout=180,
        interval=0.5,
        what=f"{group} to consume again past its old offsets",
    )


@pytest.mark.timeout(600)
def test_the_step_pauses_a_component_resets_its_group_and_it_reconsumes(
    team_stack: StackClient, tmp_path: Path
) -> None:
    stack = team_stack
    context = DrillContext(stack, tmp_path, MonotonicClock())
    # The group has committed on every partition (a partition not committed yet would have
    # no offset to compare with the step's "before").
    _caught_up(stack, {p: 1 for p in group_offsets.partitions_of(stack.bootstrap_servers, stack.topic)})
    before = {p: o or 0 for p, o in _committed(stack).items()}

    # A bare group with members is refused (the mock cannot describe groups: a member joining
    # it is not handed every partition), and nothing moves.
    with pytest.raises(GroupActive, match="other active members"):
        run_step(ResetOffsets(group="enricher", topic="orders.v1", session_timeout_ms=SESSION_MS), context)
    assert all((_committed(stack).get(p) or 0) >= o for p, o in before.items())

    pid_before = stack.components.get("enricher").pid
    result = run_step(
        ResetOffsets(component="enricher", to="earliest", session_timeout_ms=SESSION_MS), context
    )
    assert result.extra is not None
    (move,) = result.extra["moves"]
    assert move["group"] == "enricher" and move["topic"] == "orders.v1"
    assert all(p["after"] == p["start"] for p in move["partitions"]), move
    assert all(p["before"] >= before[p["partition"]] for p in move["partitions"]), move
    assert result.rows == sum(p["before"] - p["after"] for p in move["partitions"]) and result.rows > 0
    assert "enricher paused" in result.detail and "resumed" in result.detail
    status = stack.components.get("enricher")
    assert not status.paused and status.pid != pid_before
    # Resumed from the log start: the group commits its way back past where it was.
    _caught_up(stack, {p["partition"]: p["before"] for p in move["partitions"]})

    # Steps naming what has no offsets say so.
    with pytest.raises(ConfigError, match="the workload produces"):
        run_step(ResetOffsets(component="workload"), context)
    with pytest.raises(ConfigError, match="reference sink's group only reports lag"):
        run_step(ResetOffsets(group=stack.config.sink.group_id), context)


@pytest.mark.timeout(600)
def test_the_component_group_moves_through_kafka_connects_offsets_api(
    team_stack: StackClient, tmp_path: Path
) -> None:
    stack = team_stack
    connect = ConnectClient(stack.connect.url)
    _caught_up(stack, {0: 1}, "indexer")
    with pytest.raises(ConnectError, match="STOPPED state"):
        connect.alter_offsets(
            "indexer",
            [ConnectOffset({"kafka_topic": "orders.v1", "kafka_partition": 0}, {"kafka_offset": 0})],
        )
    connect.stop("indexer")
    try:
        assert connect.status("indexer").state == "STOPPED"
        # Its committed offsets, read once it has stopped committing.
        listed = {
            o.partition["kafka_partition"]: o.offset["kafka_offset"] for o in connect.offsets("indexer")
        }
        assert listed and all(o >= 0 for o in listed.values())
        message = connect.alter_offsets(
            "indexer",
            [ConnectOffset({"kafka_topic": "orders.v1", "kafka_partition": 0}, {"kafka_offset": 0})],
        )
        assert "framework-managed offsets for this connector have been altered successfully" in message
        moved = _committed(stack, "indexer")
        assert moved[0] == 0
        assert all(moved[p] == listed[p] for p in listed if p != 0)  # PATCH moves only what it names
        message = connect.reset_offsets("indexer")
        assert "have been reset successfully" in message
        assert set(_committed(stack, "indexer").values()) == {0}
        assert {o.offset["kafka_offset"] for o in connect.offsets("indexer")} == {0}
    finally:
        connect.resume("indexer")
    _caught_up(stack, listed, "indexer")

    # The reference sink keeps its offsets with its rows: Connect's refusal, and it runs again.
    context = DrillContext(stack, tmp_path, MonotonicClock())
    with pytest.raises(ConnectError, match="doesn't support external modification of offsets"):
        run_step(ResetOffsets(component="sink"), context)
    wait_until(lambda: connect.status("sink").running, timeout=60, interval=0.2, what="the sink to run again")
    connect.close()
