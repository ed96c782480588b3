"""Leader election for the mock cluster, which never moves leaders by itself.

A replicated Kafka cluster notices a dead broker and, after the controller's session
timeout, makes another in-sync replica the leader of each partition the dead broker led.
The mock keeps the dead broker as leader forever, so messages queue until it returns. This
module is the missing controller: pure logic over a clock, applied by the stack process.

Example::

    elector = LeaderElector(brokers=(1, 2, 3), delay_s=2.0, clock=clock)
    elector.add_topic("orders.v1", partitions=6, replication_factor=3)
    elector.broker_down(2)
    clock.advance(2.0)
    elector.due_moves()   # [LeaderMove(topic='orders.v1', partition=1, leader=3), ...]
"""

from __future__ import annotations

from dataclasses import dataclass

from datadrill.clock import Clock


@dataclass(frozen=True)
class LeaderMove:
    topic: str
    partition: int
    leader: int


@dataclass(frozen=True)
class PartitionState:
    replicas: tuple[int, ...]
    leader: int


class LeaderElector:
    """Tracks leaders and broker liveness; says which leaders must move and when."""

    def __init__(self, *, brokers: tuple[int, ...], delay_s: float, clock: Clock) -> None:
        if not brokers:
            raise ValueError("a cluster needs at least one broker")
        if delay_s < 0:
            raise ValueError(f"election delay must be >= 0, got {delay_s!r}")
        self.brokers = brokers
        self.delay_s = delay_s
        self._clock = clock
        self._down_since: dict[int, float] = {}
        self._partitions: dict[tuple[str, int], PartitionState] = {}

    def add_topic(self, topic: str, *, partitions: int, replication_factor: int) -> list[LeaderMove]:
        """Register a topic; returns the initial leaders to apply (spread round-robin)."""
        count = len(self.brokers)
        if not 1 <= replication_factor <= count:
            raise ValueError(f"replication factor {replication_factor} needs 1..{count} brokers")
        moves = []
        for partition in range(partitions):
            replicas = tuple(self.brokers[(partition + i) % count] for i in range(replication_factor))
            leader = next((b for b in replicas if b not in self._down_since), replicas[0])
            self._partitions[(topic, partition)] = PartitionState(replicas, leader)
            moves.append(LeaderMove(topic, partition, leader))
        return moves

    def broker_down(self, broker_id: int) -> None:
        self._require(broker_id)
        self._down_since.setdefault(broker_id, self._clock.monotonic())

    def broker_up(self, broker_id: int) -> list[LeaderMove]:
        """Mark a broker alive. Partitions with no live replica until now get it as leader."""
        self._require(broker_id)
        self._down_since.pop(broker_id, None)
        moves = []
        for key, state in self._partitions.items():
            others_down = all(b in self._down_since for b in state.replicas if b != broker_id)
            if state.leader in self._down_since and broker_id in state.replicas and others_down:
                self._partitions[key] = PartitionState(state.replicas, broker_id)
                moves.append(LeaderMove(key[0], key[1], broker_id))
        return moves

    def down_since(self, broker_id: int) -> float | None:
        """When (on the clock) the broker went down; None while it is up."""
        return self._down_since.get(broker_id)

    def is_up(self, broker_id: int) -> bool:
        return broker_id not in self._down_since

    def down_brokers(self) -> tuple[int, ...]:
        return tuple(sorted(self._down_since))

    def leaders(self) -> dict[tuple[str, int], int]:
        return {key: state.leader for key, state in self._partitions.items()}

    def record_leader(self, topic: str, partition: int, broker_id: int) -> None:
        """Note a leader set by hand (a fault) so elections start from the truth."""
        self._require(broker_id)
        key = (topic, partition)
        state = self._partitions.get(key)
        replicas = state.replicas if state else self.brokers
        if broker_id not in replicas:
            replicas = (*replicas, broker_id)
        self._partitions[key] = PartitionState(replicas, broker_id)

    def due_moves(self) -> list[LeaderMove]:
        """Leaders whose broker has been down for at least the election delay, moved to the
        next live replica. Partitions with no live replica keep their leader (offline)."""
        now = self._clock.monotonic()
        moves = []
        for key, state in self._partitions.items():
            since = self._down_since.get(state.leader)
            if since is None or now - since < self.delay_s:
                continue
            start = state.replicas.index(state.leader)
            ordered = state.replicas[start + 1 :] + state.replicas[:start]
            new_leader = next((b for b in ordered if b not in self._down_since), None)
            if new_leader is None:
                continue
            self._partitions[key] = PartitionState(state.replicas, new_leader)
            moves.append(LeaderMove(key[0], key[1], new_leader))
        return moves

    def _require(self, broker_id: int) -> None:
        if broker_id not in self.brokers:
            raise ValueError(f"unknown broker {broker_id}; brokers are {list(self.brokers)}")
