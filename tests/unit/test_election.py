"""Unit tests for the mock cluster's leader election, driven by a fake clock."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from datadrill.backends.kafka.election import LeaderElector, LeaderMove
from datadrill.clock import FakeClock

TOPIC = "orders.v1"
BROKERS = (1, 2, 3)


def _elector(
    *, brokers: tuple[int, ...] = BROKERS, delay_s: float = 2.0, partitions: int = 6, rf: int = 3
) -> tuple[LeaderElector, FakeClock]:
    clock = FakeClock()
    elector = LeaderElector(brokers=brokers, delay_s=delay_s, clock=clock)
    elector.add_topic(TOPIC, partitions=partitions, replication_factor=rf)
    return elector, clock


def _replicas(brokers: tuple[int, ...], partition: int, rf: int) -> tuple[int, ...]:
    """Round-robin replica assignment, as documented for add_topic."""
    return tuple(brokers[(partition + i) % len(brokers)] for i in range(rf))


# --- construction and add_topic ---------------------------------------------------------


def test_add_topic_spreads_leaders_round_robin() -> None:
    clock = FakeClock()
    elector = LeaderElector(brokers=BROKERS, delay_s=2.0, clock=clock)
    moves = elector.add_topic(TOPIC, partitions=6, replication_factor=3)
    assert moves == [LeaderMove(TOPIC, p, BROKERS[p % 3]) for p in range(6)]
    assert Counter(move.leader for move in moves) == {1: 2, 2: 2, 3: 2}
    assert elector.leaders() == {(TOPIC, p): BROKERS[p % 3] for p in range(6)}


def test_add_topic_skips_down_brokers_for_initial_leaders() -> None:
    clock = FakeClock()
    elector = LeaderElector(brokers=BROKERS, delay_s=2.0, clock=clock)
    elector.broker_down(1)
    moves = elector.add_topic(TOPIC, partitions=3, replication_factor=2)
    # partition 0: replicas (1, 2) -> 2; partition 1: (2, 3) -> 2; partition 2: (3, 1) -> 3
    assert [m.leader for m in moves] == [2, 2, 3]


def test_add_topic_rejects_replication_factor_out_of_range() -> None:
    elector = LeaderElector(brokers=BROKERS, delay_s=1.0, clock=FakeClock())
    with pytest.raises(ValueError, match="replication factor 4"):
        elector.add_topic(TOPIC, partitions=1, replication_factor=4)
    with pytest.raises(ValueError, match="replication factor 0"):
        elector.add_topic(TOPIC, partitions=1, replication_factor=0)


def test_negative_delay_is_rejected() -> None:
    with pytest.raises(ValueError, match="delay"):
        LeaderElector(brokers=BROKERS, delay_s=-0.1, clock=FakeClock())


def test_empty_broker_list_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one broker"):
        LeaderElector(brokers=(), delay_s=1.0, clock=FakeClock())


@pytest.mark.parametrize("call", ["broker_down", "broker_up"])
def test_unknown_broker_id_raises(call: str) -> None:
    elector, _ = _elector()
    with pytest.raises(ValueError, match="unknown broker 7"):
        getattr(elector, call)(7)


def test_record_leader_with_unknown_broker_raises() -> None:
    elector, _ = _elector()
    with pytest.raises(ValueError, match="unknown broker 0"):
        elector.record_leader(TOPIC, 0, 0)


# --- broker_down and due_moves ------------------------------------------------------------


def test_no_moves_before_delay_then_moves_exactly_at_delay() -> None:
    elector, clock = _elector(delay_s=2.0)
    elector.broker_down(2)
    assert elector.due_moves() == []
    clock.advance(1.5)
    assert elector.due_moves() == []
    assert elector.leaders()[(TOPIC, 1)] == 2  # still leaderless: the dead broker
    clock.advance(0.5)  # exactly the delay
    moves = elector.due_moves()
    # broker 2 led partitions 1 and 4; the next live replica in order is 3.
    assert moves == [LeaderMove(TOPIC, 1, 3), LeaderMove(TOPIC, 4, 3)]
    assert all(move.leader != 2 for move in moves)
    assert 2 not in elector.leaders().values()
    assert elector.due_moves() == []  # nothing left to move


def test_moves_only_partitions_led_by_the_down_broker() -> None:
    elector, clock = _elector()
    before = elector.leaders()
    elector.broker_down(1)
    clock.advance(2.0)
    moves = elector.due_moves()
    moved = {(m.topic, m.partition) for m in moves}
    assert moved == {(TOPIC, 0), (TOPIC, 3)}
    after = elector.leaders()
    for key, leader in before.items():
        if key not in moved:
            assert after[key] == leader


def test_zero_delay_moves_immediately() -> None:
    elector, _ = _elector(delay_s=0.0)
    elector.broker_down(3)
    assert {m.leader for m in elector.due_moves()} == {1}


def test_delay_counts_from_first_down() -> None:
    elector, clock = _elector(delay_s=2.0)
    elector.broker_down(2)
    clock.advance(1.0)
    elector.broker_down(2)  # repeated report must not restart the timer
    clock.advance(1.0)
    assert len(elector.due_moves()) == 2


def test_two_brokers_down_moves_everything_to_the_remaining_one() -> None:
    elector, clock = _elector()
    elector.broker_down(1)
    elector.broker_down(2)
    assert elector.down_brokers() == (1, 2)
    assert not elector.is_up(1)
    assert elector.is_up(3)
    clock.advance(2.0)
    moves = elector.due_moves()
    assert {m.partition for m in moves} == {0, 1, 3, 4}
    assert {m.leader for m in moves} == {3}
    assert set(elector.leaders().values()) == {3}


def test_all_replicas_down_keeps_the_leader() -> None:
    elector, clock = _elector()
    for broker in BROKERS:
        elector.broker_down(broker)
    before = elector.leaders()
    clock.advance(10.0)
    assert elector.due_moves() == []
    assert elector.leaders() == before


def test_replication_factor_one_partition_does_not_move() -> None:
    elector, clock = _elector(partitions=3, rf=1)
    elector.broker_down(2)
    clock.advance(100.0)
    assert elector.due_moves() == []
    assert elector.leaders()[(TOPIC, 1)] == 2


def test_down_broker_that_comes_back_before_the_delay_keeps_its_partitions() -> None:
    elector, clock = _elector()
    elector.broker_down(2)
    clock.advance(1.0)
    assert elector.broker_up(2) == []
    clock.advance(5.0)
    assert elector.due_moves() == []
    assert elector.leaders()[(TOPIC, 1)] == 2


# --- broker_up ----------------------------------------------------------------------------


def test_broker_up_takes_partitions_that_had_no_live_leader() -> None:
    elector, clock = _elector()
    for broker in BROKERS:
        elector.broker_down(broker)
    clock.advance(5.0)
    assert elector.due_moves() == []
    moves = elector.broker_up(2)
    # Broker 2 already leads partitions 1 and 4; every other partition moves to it.
    assert moves == [LeaderMove(TOPIC, p, 2) for p in (0, 2, 3, 5)]
    assert set(elector.leaders().values()) == {2}
    assert elector.is_up(2)
    assert elector.down_brokers() == (1, 3)


def test_broker_up_only_takes_partitions_it_replicates() -> None:
    # 4 brokers, rf=2: p0 (1, 2), p1 (2, 3), p2 (3, 4), p3 (4, 1).
    elector, clock = _elector(brokers=(1, 2, 3, 4), partitions=4, rf=2)
    elector.broker_down(2)
    elector.broker_down(3)
    clock.advance(5.0)
    assert elector.due_moves() == [LeaderMove(TOPIC, 2, 4)]  # p1 has no live replica
    assert elector.leaders()[(TOPIC, 1)] == 2
    assert elector.broker_up(1) == []  # 1 does not replicate p1
    assert elector.leaders()[(TOPIC, 1)] == 2
    assert elector.broker_up(3) == [LeaderMove(TOPIC, 1, 3)]
    assert elector.leaders() == {(TOPIC, 0): 1, (TOPIC, 1): 3, (TOPIC, 2): 4, (TOPIC, 3): 4}


def test_broker_up_of_the_old_leader_needs_no_move() -> None:
    # rf=1: partition 1 lives only on broker 2, which keeps leading it while down.
    elector, clock = _elector(partitions=3, rf=1)
    elector.broker_down(2)
    clock.advance(5.0)
    assert elector.broker_up(2) == []
    assert elector.leaders()[(TOPIC, 1)] == 2


def test_broker_up_of_a_live_broker_moves_nothing() -> None:
    elector, _ = _elector()
    assert elector.broker_up(1) == []
    assert elector.down_brokers() == ()


def test_broker_up_leaves_partitions_that_still_had_a_live_replica() -> None:
    elector, clock = _elector(delay_s=2.0)
    elector.broker_down(1)  # leads partitions 0 and 3; replicas (1,2,3) and (1,2,3)
    elector.broker_down(2)
    clock.advance(0.5)
    moves = elector.broker_up(2)
    # Broker 3 was live throughout, so these partitions were not "without a live replica";
    # their election should wait for the delay rather than happen early on broker 2's return.
    assert [m for m in moves if m.partition in (0, 3)] == []


# --- record_leader ------------------------------------------------------------------------


def test_record_leader_changes_leaders() -> None:
    elector, _ = _elector()
    elector.record_leader(TOPIC, 0, 3)
    assert elector.leaders()[(TOPIC, 0)] == 3


def test_record_leader_is_the_starting_point_for_elections() -> None:
    elector, clock = _elector()
    elector.record_leader(TOPIC, 0, 3)  # replicas (1, 2, 3): next after 3 wraps to 1
    elector.broker_down(3)
    clock.advance(2.0)
    assert LeaderMove(TOPIC, 0, 1) in elector.due_moves()


def test_record_leader_for_unknown_partition_registers_it() -> None:
    elector, clock = _elector()
    elector.record_leader("other", 0, 2)
    assert elector.leaders()[("other", 0)] == 2
    elector.broker_down(2)
    clock.advance(2.0)
    moves = [m for m in elector.due_moves() if m.topic == "other"]
    assert moves == [LeaderMove("other", 0, 3)]


def test_record_leader_outside_replicas_adds_it() -> None:
    elector, clock = _elector(partitions=3, rf=1)
    elector.record_leader(TOPIC, 0, 2)  # replicas were (1,), now (1, 2)
    elector.broker_down(2)
    clock.advance(2.0)
    assert elector.due_moves() == [LeaderMove(TOPIC, 0, 1)]


# --- property: elections never pick a down broker -----------------------------------------


class ElectionMachine(RuleBasedStateMachine):
    """Random down/up/advance sequences against an independent model of replicas."""

    @initialize(
        n_brokers=st.integers(1, 5),
        rf_seed=st.integers(1, 5),
        partitions=st.integers(1, 8),
        delay=st.sampled_from([0.0, 0.5, 2.0, 3.25]),
    )
    def setup(self, n_brokers: int, rf_seed: int, partitions: int, delay: float) -> None:
        self.brokers = tuple(range(1, n_brokers + 1))
        self.rf = min(rf_seed, n_brokers)
        self.delay = delay
        self.clock = FakeClock()
        self.elector = LeaderElector(brokers=self.brokers, delay_s=delay, clock=self.clock)
        moves = self.elector.add_topic(TOPIC, partitions=partitions, replication_factor=self.rf)
        self.replicas = {(TOPIC, p): _replicas(self.brokers, p, self.rf) for p in range(partitions)}
        self.down: set[int] = set()
        self._apply(moves)

    def _apply(self, moves: list[LeaderMove]) -> None:
        for move in moves:
            assert move.leader not in self.down, f"move to down broker: {move}"
            assert move.leader in self.replicas[(move.topic, move.partition)]

    @rule(data=st.data())
    def down_broker(self, data: st.DataObject) -> None:
        broker = data.draw(st.sampled_from(self.brokers))
        self.elector.broker_down(broker)
        self.down.add(broker)

    @rule(data=st.data())
    def up_broker(self, data: st.DataObject) -> None:
        broker = data.draw(st.sampled_from(self.brokers))
        self.down.discard(broker)
        moves = self.elector.broker_up(broker)
        self._apply(moves)
        assert all(move.leader == broker for move in moves)

    @rule(seconds=st.sampled_from([0.0, 0.25, 1.0, 2.0, 5.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def due(self) -> None:
        self._apply(self.elector.due_moves())

    @rule()
    def settle(self) -> None:
        self.clock.advance(self.delay + 0.5)
        self._apply(self.elector.due_moves())
        for key, leader in self.elector.leaders().items():
            live = [b for b in self.replicas[key] if b not in self.down]
            if live:
                assert leader not in self.down, f"{key} led by down broker {leader}; live {live}"
            else:
                assert leader in self.replicas[key]

    @invariant()
    def liveness_matches_model(self) -> None:
        assert self.elector.down_brokers() == tuple(sorted(self.down))
        for key, leader in self.elector.leaders().items():
            assert leader in self.replicas[key]


ElectionMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestElectionMachine = ElectionMachine.TestCase
