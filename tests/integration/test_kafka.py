"""The mock cluster speaks real Kafka to other processes, and its controls work."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import drain, sink_rows
from datadrill.engine.wait import wait_until
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

EXTERNAL_CLIENT = textwrap.dedent(
    """
    import json, sys
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    from confluent_kafka.admin import AdminClient
    bootstrap, topic = sys.argv[1], sys.argv[2]
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "outsider",
                         "enable.auto.commit": False})
    partitions = metadata.topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages = []
    for _ in range(100):
        for m in consumer.consume(num_messages=50, timeout=0.5):
            if not m.error():
                messages.append({"headers": {k: v.decode() for k, v in (m.headers() or [])},
                                 "key": m.key().decode(), "size": len(m.value())})
        if len(messages) >= 20:
            break
    consumer.close()
    print(json.dumps({"brokers": sorted(metadata.brokers), "partitions": len(partitions),
                      "messages": messages}))
    """
)


def test_an_ordinary_client_in_another_process_lists_brokers_and_reads(stack: StackClient) -> None:
    result = subprocess.run(
        [sys.executable, "-c", EXTERNAL_CLIENT, stack.bootstrap_servers, stack.topic],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["brokers"] == [1, 2, 3]
    assert seen["partitions"] == stack.config.kafka.partitions
    assert len(seen["messages"]) >= 20
    first = seen["messages"][0]
    assert first["headers"]["datadrill.contract"] == "orders"
    assert first["headers"]["datadrill.contract.version"] == "1"
    assert first["headers"]["datadrill.schema.id"] == "1"
    assert first["key"].isdigit()


def _leaders(stack: StackClient) -> dict[int, int]:
    data = stack.control.get("/kafka/leaders")
    return {entry["partition"]: entry["leader"] for entry in data["leaders"] if entry["topic"] == stack.topic}


def test_broker_loss_moves_leaders_after_the_election_delay(stack: StackClient) -> None:
    leaders = _leaders(stack)
    # Earlier tests may have moved leaders around: lose the broker that leads the most.
    broker = max(set(leaders.values()), key=lambda b: sum(1 for x in leaders.values() if x == b))
    led_by_2 = [p for p, b in leaders.items() if b == broker]
    assert led_by_2, leaders
    from conftest import events

    # The stack stamps events with the host's monotonic clock: those of this test are the
    # ones after now (not "after the n-th line", which trusts every earlier line to be whole).
    began = time.monotonic()
    stack.control.post(f"/kafka/brokers/{broker}/down")
    try:
        wait_until(
            lambda: all(_leaders(stack)[p] != broker for p in led_by_2),
            timeout=30,
            what="leaders to move off the lost broker",
        )
        # The stack's own clock says when: no election before the configured delay.
        recorded = [e for e in events(stack) if float(e.get("mono", 0)) >= began]
        downs = [e for e in recorded if e["event"] == "broker_down" and e["broker"] == broker]
        assert len(downs) == 1, recorded[-20:]
        down = downs[0]
        elections = [e for e in recorded if e["event"] == "leader_elected" and e["partition"] in led_by_2]
        assert {e["partition"] for e in elections} == set(led_by_2)
        delay = stack.config.kafka.election_delay_s
        assert all(e["mono"] - down["mono"] >= delay for e in elections)
        assert all(e["leader"] != broker for e in elections)
        status = {c["name"]: c for c in stack.status().raw["components"]}
        assert not status[f"kafka-broker-{broker}"]["healthy"]
        before = sink_rows(stack)
        wait_until(
            lambda: sink_rows(stack) > before + 50, timeout=60, what="data to keep flowing with a broker down"
        )
    finally:
        stack.control.post(f"/kafka/brokers/{broker}/up")
    result = drain(stack)
    assert result.exact, result.describe()


def test_pushed_request_errors_and_rtt_are_survived(stack: StackClient) -> None:
    # ProduceRequest (api key 0) answered with NOT_LEADER_OR_FOLLOWER (6), three times.
    reply = stack.control.post("/kafka/request-errors", {"api_key": 0, "errors": [6, 6, 6]})
    assert reply["count"] == 3
    stack.control.post("/kafka/brokers/-1/rtt", {"rtt_ms": 50})
    try:
        before = sink_rows(stack)
        wait_until(lambda: sink_rows(stack) > before + 50, timeout=60, what="data to flow under RTT")
    finally:
        stack.control.post("/kafka/brokers/-1/rtt", {"rtt_ms": 0})
        stack.control.delete("/kafka/request-errors/0")
    result = drain(stack)
    assert result.exact, result.describe()


def test_control_rejects_bad_requests_with_a_reason(stack: StackClient) -> None:
    from datadrill.errors import ControlError

    with pytest.raises(ControlError, match="unknown broker 9"):
        stack.control.post("/kafka/brokers/9/down")
    with pytest.raises(ControlError, match="unknown component"):
        stack.components.kill("nosuch")
    with pytest.raises(ControlError, match="unknown signal"):
        stack.control.post("/components/sink/signal", {"signal": "SIGWHAT"})


def test_topic_creation_through_control(stack: StackClient) -> None:
    from confluent_kafka.admin import AdminClient

    stack.control.post("/kafka/topics", {"name": "drill.extra", "partitions": 3, "replication_factor": 2})
    metadata = AdminClient({"bootstrap.servers": stack.bootstrap_servers}).list_topics(timeout=10)
    assert len(metadata.topics["drill.extra"].partitions) == 3
