"""The embedded stack's Kafka: librdkafka's mock cluster plus the controller it lacks.

The mock never moves a partition leader when a broker goes down, so this wrapper elects
new leaders itself after the configured delay (:mod:`.election`), as a real controller
would after its session timeout.

Example::

    kafka = EmbeddedKafka.start(config.kafka, clock=MonotonicClock())
    kafka.broker_down(2)
    clock.sleep(kafka.elector.delay_s); kafka.tick()   # [{"event": "leader_elected", ...}]
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from datadrill.backends.kafka.base import BrokerState, Emit
from datadrill.backends.kafka.election import LeaderElector
from datadrill.backends.kafka.mock import MockCluster
from datadrill.clock import Clock
from datadrill.config import KafkaConfig
from datadrill.errors import ControlError, StackError
from datadrill.stack.port import KafkaCapability

# Delete-and-create rounds a topic recreation may take (see _delete_and_create).
RECREATE_ATTEMPTS = 5


class EmbeddedKafka:
    def __init__(self, cluster: MockCluster, elector: LeaderElector) -> None:
        self.cluster = cluster
        self.elector = elector
        # Control requests and the election tick both move leaders.
        self._lock = threading.Lock()
        # Each topic's (partitions, replication factor), so it can be created again alike.
        self._topics: dict[str, tuple[int, int]] = {}

    @classmethod
    def start(cls, config: KafkaConfig, *, clock: Clock) -> EmbeddedKafka:
        cluster = MockCluster.start(brokers=config.brokers)
        cluster.set_group_initial_rebalance_delay(config.group_initial_rebalance_delay_ms)
        elector = LeaderElector(brokers=cluster.broker_ids, delay_s=config.election_delay_s, clock=clock)
        return cls(cluster, elector)

    @property
    def bootstrap_servers(self) -> str:
        return self.cluster.bootstrap_servers

    @property
    def broker_addresses(self) -> dict[int, str]:
        return self.cluster.broker_addresses

    @property
    def library(self) -> str:
        return self.cluster.library.path

    def capabilities(self) -> dict[KafkaCapability, str]:
        # The two newest mock calls may be missing from an older librdkafka: then the faults
        # needing them are refused before the run, with the symbol named.
        reasons = dict.fromkeys(KafkaCapability, "")
        reasons[KafkaCapability.DELETE_RECORDS] = self.cluster.missing("rd_kafka_mock_partition_delete_records")
        reasons[KafkaCapability.TOPIC_RECREATE] = self.cluster.missing("rd_kafka_mock_topic_delete")
        return reasons

    def create_topic(self, name: str, *, partitions: int, replication_factor: int) -> None:
        with self._lock:
            self.cluster.create_topic(name, partitions=partitions, replication_factor=replication_factor)
            self._topics[name] = (partitions, replication_factor)
            # Spread leaders ourselves so we always know who leads what.
            for move in self.elector.add_topic(
                name, partitions=partitions, replication_factor=replication_factor
            ):
                self.cluster.set_partition_leader(move.topic, move.partition, move.leader)

    def broker_down(self, broker: int) -> dict[str, Any]:
        with self._lock:
            self.cluster.broker_down(broker)
            self.elector.broker_down(broker)
            since = self.elector.down_since(broker)
        # "mono": the event is dated when the elector saw the broker go down (the moment
        # its election delay counts from), not when the event is written a little later.
        return {"election_delay_s": self.elector.delay_s, "mono": since}

    def broker_up(self, broker: int) -> dict[str, Any]:
        with self._lock:
            self.cluster.broker_up(broker)
            for move in self.elector.broker_up(broker):
                self.cluster.set_partition_leader(move.topic, move.partition, move.leader)
        return {}

    def set_rtt(self, broker: int, rtt_ms: int) -> None:
        self.cluster.set_broker_rtt(broker, rtt_ms)

    def push_request_errors(
        self, api_key: int, errors: Sequence[int], *, broker: int | None = None, rtts_ms: Sequence[int] = ()
    ) -> None:
        if broker is None:
            self.cluster.push_request_errors(api_key, list(errors))
            return
        rtts = list(rtts_ms) or [0] * len(errors)
        if len(rtts) != len(errors):
            raise ControlError("rtts_ms must have one entry per error")
        self.cluster.push_broker_request_errors(broker, api_key, list(zip(errors, rtts, strict=True)))

    def clear_request_errors(self, api_key: int) -> None:
        self.cluster.clear_request_errors(api_key)

    def move_leader(self, topic: str, partition: int, broker: int) -> None:
        with self._lock:
            self.cluster.set_partition_leader(topic, partition, broker)
            self.elector.record_leader(topic, partition, broker)

    def delete_records(self, topic: str, before: Mapping[int, int]) -> dict[int, int]:
        # The mock does not answer the admin API's DeleteRecords (UNSUPPORTED_FEATURE), so
        # its own call moves each partition's log start; it moves exactly to the offset.
        for partition, offset in sorted(before.items()):
            self.cluster.delete_records(topic, partition, offset)
        return dict(before)

    def recreate_topic(self, topic: str) -> dict[str, int]:
        # Nor does it answer DeleteTopics / CreateTopics: its own calls, under the lock the
        # elector's moves take, then leaders spread again as for a new topic.
        with self._lock:
            if topic not in self._topics:
                known = ", ".join(sorted(self._topics)) or "none"
                raise ControlError(f"no topic {topic!r} was created on this cluster (topics: {known})")
            partitions, replication_factor = self._topics[topic]
            self._delete_and_create(topic, partitions, replication_factor)
            for move in self.elector.add_topic(
                topic, partitions=partitions, replication_factor=replication_factor
            ):
                self.cluster.set_partition_leader(move.topic, move.partition, move.leader)
        return {"partitions": partitions, "replication_factor": replication_factor}

    def _delete_and_create(self, topic: str, partitions: int, replication_factor: int) -> None:
        """A producer asking for the topic's metadata between the delete and the create can
        make the mock auto-create it (with its default partitions): then it is deleted again.
        A topic already missing (a revert after a crash mid-fault) is just created."""
        last: StackError | None = None
        for _ in range(RECREATE_ATTEMPTS):
            self.cluster.delete_topic(topic, missing_ok=True)
            try:
                self.cluster.create_topic(topic, partitions=partitions, replication_factor=replication_factor)
            except StackError as exc:
                last = exc
                continue
            return
        raise StackError(f"topic {topic!r} could not be created again in {RECREATE_ATTEMPTS} attempts: {last}")

    def leaders(self) -> dict[str, Any]:
        with self._lock:  # never halfway through an election (see tick)
            return self._leaders()

    def _leaders(self) -> dict[str, Any]:
        return {
            "leaders": [
                {"topic": t, "partition": p, "leader": leader}
                for (t, p), leader in sorted(self.elector.leaders().items())
            ],
            "down": list(self.elector.down_brokers()),
        }

    def tick(self, emit: Emit) -> None:
        # Under the lock that leaders() takes: the election is in the event log before a
        # client can see its leader.
        with self._lock:
            for move in self.elector.due_moves():
                self.cluster.set_partition_leader(move.topic, move.partition, move.leader)
                emit("leader_elected", topic=move.topic, partition=move.partition, leader=move.leader)

    def brokers(self) -> list[BrokerState]:
        leaders = self.elector.leaders()
        out = []
        for broker, address in self.cluster.broker_addresses.items():
            up = self.elector.is_up(broker)
            led = sum(1 for leader in leaders.values() if leader == broker)
            out.append(BrokerState(broker, address, up, f"{'up' if up else 'DOWN'}, leads {led} partitions"))
        return out

    def close(self) -> None:
        self.cluster.close()
