"""The CDC faults' specs, their plugins' refusals on a stack without CDC, the preflight,
ReplicationLag's spec and probe on a source without slots, DataIntegrity's holes, and the
workload's safe reconnect. The faults' effects on a live PostgreSQL are in
tests/integration/test_cdc_faults.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fake_stack import FakeStack
from pydantic import ValidationError

from datadrill.clock import FakeClock
from datadrill.config import parse_config
from datadrill.engine.preflight import check_capabilities
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.faults.registry import plugin_for, plugins
from datadrill.model import (
    SLO,
    DataIntegrity,
    DropReplicationSlot,
    ReplicationLag,
    ReplicationSlotStall,
    Scenario,
    SourceOutage,
    Target,
)
from datadrill.model.slo import Direction
from datadrill.platform.source_conn import SourceConnection
from datadrill.probes.base import ProbeEnv
from datadrill.probes.registry import factory_for
from datadrill.probes.sli import DataIntegrityProbe, ReplicationLagProbe
from datadrill.stack.port import ProxyPath

PG = "postgresql://drill@127.0.0.1:5433/source"


# -- specs -----------------------------------------------------------------------------


def test_drop_replication_slot_is_instantaneous_and_says_nothing_comes_back() -> None:
    spec = DropReplicationSlot(at_s=3)
    assert spec.kind == "source.drop_replication_slot"
    assert spec.slot == ""
    assert not hasattr(spec, "duration_s")
    assert "nothing to put back" in spec.describe()
    assert "never reach Kafka" in spec.describe()
    assert DropReplicationSlot(at_s=0, slot="team_slot").describe().startswith("replication slot team_slot dropped")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: DropReplicationSlot(at_s=-1), "at_s"),
        (lambda: DropReplicationSlot(at_s=1, slot="Bad-Slot"), "slot"),
        (lambda: DropReplicationSlot(at_s=1, slot="x" * 64), "slot"),
        (lambda: ReplicationSlotStall(at_s=1, duration_s=0), "duration_s"),
        (lambda: ReplicationSlotStall(at_s=1), "duration_s"),  # type: ignore[call-arg]
        (lambda: SourceOutage(at_s=1, duration_s=-2), "duration_s"),
        (lambda: SourceOutage(at_s="1", duration_s=2), "at_s"),  # type: ignore[arg-type]
        (lambda: ReplicationLag(max_bytes=-1), "max_bytes"),
        (lambda: ReplicationLag(max_bytes=1.5), "max_bytes"),  # type: ignore[arg-type]
        (lambda: ReplicationLag(max_bytes=1, slot="UPPER"), "slot"),
        (lambda: DataIntegrity(hole_grace_s=-1.0), "hole_grace_s"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(make: Any, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        make()


def test_timed_faults_describe_their_duration() -> None:
    assert ReplicationSlotStall(at_s=1, duration_s=20).describe() == (
        "CDC relay stops reading and confirming its replication slot for 20 s"
    )
    assert SourceOutage(at_s=1, duration_s=7.5).describe() == "source database refuses connections for 7.5 s"


def test_replication_lag_is_bytes_at_most_a_threshold() -> None:
    sli = ReplicationLag(max_bytes=4_000_000)
    assert (sli.kind, sli.unit, sli.threshold, sli.direction) == ("replication_lag", "bytes", 4e6, Direction.MAX)
    assert sli.statement() == "the CDC relay's replication slot at most 4,000,000 bytes of WAL behind"
    assert "slot team_slot" in ReplicationLag(max_bytes=0, slot="team_slot").statement()
    assert factory_for("replication_lag") is ReplicationLagProbe


def test_data_integrity_counts_holes_by_default_and_says_when_it_cannot() -> None:
    default = DataIntegrity()
    assert default.holes and default.hole_grace_s == 5.0
    assert default.hole_time_column == ("created_at_us", "us")
    assert "holes older than 5 s included" in default.statement()
    assert DataIntegrity(holes=False).hole_time_column is None
    assert "holes" not in DataIntegrity(holes=False).statement()
    dated = Target(source_query="SELECT id, amount, ts_ms FROM t", event_time_column="ts_ms", event_time_unit="ms", key_column="id")
    assert DataIntegrity(target=dated).hole_time_column == ("ts_ms", "ms")
    undated = Target(source_query="SELECT order_id, customer_id FROM orders")
    statement = DataIntegrity(target=undated).statement()
    assert DataIntegrity(target=undated).hole_time_column is None
    assert "holes not counted: the source query returns no created_at" in statement


def test_the_faults_are_registered_and_schedulable() -> None:
    for kind in ("source.drop_replication_slot", "source.replication_slot_stall", "source.outage"):
        assert kind in plugins()
    Scenario(
        name="cdc",
        slos=(SLO("lag", sli=ReplicationLag(max_bytes=1), objective=0.9),),
        schedule=(
            DropReplicationSlot(at_s=1),
            ReplicationSlotStall(at_s=2, duration_s=3),
            SourceOutage(at_s=10, duration_s=3),
        ),
    )


def test_two_stalls_may_not_overlap() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        Scenario(
            name="cdc",
            slos=(SLO("lag", sli=ReplicationLag(max_bytes=1), objective=0.9),),
            schedule=(ReplicationSlotStall(at_s=1, duration_s=5), ReplicationSlotStall(at_s=3, duration_s=5)),
        )


# -- refusals on stacks without CDC -------------------------------------------------------


def _stack(tmp_path: Path, **overrides: Any) -> FakeStack:
    stack = FakeStack(tmp_path / "stack")
    stack.config = parse_config({}, source="test", overrides=overrides)
    return stack


def _scenario(*schedule: Any, sli: Any = None) -> Scenario:
    return Scenario(
        name="cdc",
        slos=(SLO("s", sli=sli or DataIntegrity(), objective=0.9),),
        schedule=schedule,
    )


def test_preflight_refuses_slot_faults_without_a_cdc_relay(tmp_path: Path) -> None:
    sqlite_stack = _stack(tmp_path)
    with pytest.raises(ConfigError) as caught:
        check_capabilities(_scenario(DropReplicationSlot(at_s=1)), sqlite_stack, source="scenarios/x.py")
    assert str(caught.value) == (
        "scenarios/x.py: schedule[0] = 'source.drop_replication_slot' is invalid: a fault on the CDC relay: "
        '[relay] mode = "cdc" on a PostgreSQL source ([source] uri; or `datadrill run --source postgresql '
        "--relay cdc`, `datadrill stack up --source postgresql --relay cdc`); this stack's relay is 'poll' on "
        "a SQLite source (a file)"
    )
    polling = _stack(tmp_path, **{"source.uri": PG})
    with pytest.raises(ConfigError, match=r"schedule\[1\].*relay is 'poll' on a PostgreSQL source"):
        check_capabilities(
            _scenario(SourceOutage(at_s=0, duration_s=1), ReplicationSlotStall(at_s=2, duration_s=1)),
            _with_source_proxy(polling),
            source="x.py",
        )
    cdc = _with_source_proxy(_stack(tmp_path, **{"source.uri": PG, "relay.mode": "cdc"}))
    check_capabilities(
        _scenario(DropReplicationSlot(at_s=1), ReplicationSlotStall(at_s=2, duration_s=1)), cdc, source="x.py"
    )


def test_the_loader_refuses_a_cdc_scenario_for_a_config_without_cdc_before_any_stack(tmp_path: Path) -> None:
    from datadrill.engine.loader import load_scenario

    shipped = Path(__file__).resolve().parents[2] / "scenarios" / "cdc_slot_loss.py"
    with pytest.raises(ConfigError, match=r"schedule\[0\].*datadrill run --source postgresql --relay cdc"):
        load_scenario(shipped, config=parse_config({}, source="test"))
    cdc = parse_config({}, source="test", overrides={"source.server": "postgresql", "relay.mode": "cdc"})
    assert load_scenario(shipped, config=cdc).name == "cdc-slot-loss"


def _with_source_proxy(stack: FakeStack) -> FakeStack:
    stack.network.proxies["source"] = ProxyPath("source", "127.0.0.1:40001", "127.0.0.1:5433")
    return stack


def test_preflight_refuses_a_source_outage_without_the_source_proxy(tmp_path: Path) -> None:
    stack = _stack(tmp_path, **{"source.uri": PG, "relay.mode": "cdc"})
    stack.network.proxies["query"] = ProxyPath("query", "127.0.0.1:1", "127.0.0.1:2")
    with pytest.raises(ConfigError) as caught:
        check_capabilities(_scenario(SourceOutage(at_s=1, duration_s=2)), stack, source="x.py")
    message = str(caught.value)
    assert message.startswith("x.py: schedule[0] = 'source.outage' is invalid: a PostgreSQL source behind")
    assert "--source postgresql" in message
    assert message.endswith("this stack has a PostgreSQL source and proxies: query")
    with pytest.raises(ConfigError, match="a SQLite source"):
        check_capabilities(_scenario(SourceOutage(at_s=1, duration_s=2)), _stack(tmp_path), source="x.py")
    check_capabilities(_scenario(SourceOutage(at_s=1, duration_s=2)), _with_source_proxy(stack), source="x.py")


def test_preflight_refuses_replication_lag_on_sqlite_or_a_polling_relay(tmp_path: Path) -> None:
    from datadrill.model import KillComponent

    lag = Scenario(
        name="lag", slos=(SLO("lag", sli=ReplicationLag(max_bytes=100), objective=0.9),), schedule=(KillComponent(at_s=1),)
    )
    with pytest.raises(ConfigError) as caught:
        check_capabilities(lag, _stack(tmp_path), source="x.py")
    assert str(caught.value).startswith(
        "x.py: slos[0].sli = 'ReplicationLag' is invalid: an SLI on a PostgreSQL source's replication slot; "
        "this stack has a SQLite source (a file)"
    )
    polling = _stack(tmp_path, **{"source.uri": PG})
    with pytest.raises(ConfigError, match=r"slot='' measures the CDC relay's slot.*'poll'"):
        check_capabilities(lag, polling, source="x.py")
    named = Scenario(
        name="lag",
        slos=(SLO("lag", sli=ReplicationLag(max_bytes=100, slot="theirs"), objective=0.9),),
        schedule=(KillComponent(at_s=1),),
    )
    check_capabilities(named, polling, source="x.py")
    check_capabilities(lag, _stack(tmp_path, **{"source.uri": PG, "relay.mode": "cdc"}), source="x.py")


def test_plugins_refuse_without_cdc_before_touching_anything(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    context = DrillContext(stack, tmp_path / "run", FakeClock())  # type: ignore[arg-type]
    for spec in (DropReplicationSlot(at_s=0), ReplicationSlotStall(at_s=0, duration_s=1)):
        plugin = plugin_for(spec.kind)
        with pytest.raises(ConfigError, match="relay is 'poll' on a SQLite source"):
            plugin.prepare(spec, context)
        with pytest.raises(ConfigError):
            plugin.target(spec, context)
    with pytest.raises(ConfigError, match="--source postgresql"):
        plugin_for("source.outage").prepare(SourceOutage(at_s=0, duration_s=1), context)
    assert not stack.paths.relay_stall.exists()


def test_stall_revert_deletes_the_flag_from_the_ledger_data_alone(tmp_path: Path) -> None:
    stack = _stack(tmp_path, **{"source.uri": PG, "relay.mode": "cdc"})
    context = DrillContext(stack, tmp_path / "run", FakeClock())  # type: ignore[arg-type]
    plugin = plugin_for("source.replication_slot_stall")
    spec = ReplicationSlotStall(at_s=0, duration_s=1)
    data = plugin.prepare(spec, context)
    assert data == {"slot": "datadrill_relay", "flag": str(stack.paths.relay_stall)}
    plugin.apply(spec, context, data)
    assert stack.paths.relay_stall.exists()
    assert "deleted" in plugin.revert(dict(data), context)
    assert not stack.paths.relay_stall.exists()
    assert plugin.revert(dict(data), context).startswith("nothing to do")


def test_drop_has_nothing_to_revert() -> None:
    note = plugin_for("source.drop_replication_slot").revert({"slot": "s"}, None)  # type: ignore[arg-type]
    assert note.startswith("nothing to put back: the relay recreates slot s")


# -- probes ----------------------------------------------------------------------------


def _env(db: sqlite3.Connection, clock: FakeClock, tmp_path: Path) -> ProbeEnv:
    def refuse(*_: Any) -> Any:
        raise AssertionError("not used")

    return ProbeEnv(
        clock=clock,
        bootstrap_servers="127.0.0.1:9",
        query_engine=refuse,
        mart_queries=refuse,
        source_db=lambda: SourceConnection(db, "sqlite", "test"),
        heartbeat_dir=tmp_path,
        events_file=tmp_path / "events.jsonl",
    )


def test_replication_lag_on_a_sqlite_source_is_a_bad_sample_saying_why(tmp_path: Path) -> None:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    probe = ReplicationLagProbe(ReplicationLag(max_bytes=10), _env(db, FakeClock(), tmp_path))
    sample = probe.measure()
    assert (sample.value, sample.good) == (None, False)
    assert sample.error == "the source is SQLite: it has no replication slots"
    probe.close()


def _orders(db: sqlite3.Connection, stamps: dict[int, float]) -> None:
    db.execute(
        "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER, amount_cents INTEGER,"
        " currency TEXT, status TEXT, created_at_us INTEGER, is_canary INTEGER)"
    )
    db.executemany(
        "INSERT INTO orders VALUES (?, 1, 100, 'EUR', 'created', ?, 0)",
        [(key, int(at * 1e6)) for key, at in stamps.items()],
    )


def test_holes_are_old_omissions_below_rows_landed_well_after_them(tmp_path: Path) -> None:
    clock = FakeClock()
    now = clock.wall()
    db = sqlite3.connect(":memory:", check_same_thread=False)
    # Keys 1-4 written 60 s ago, 5-6 30 s ago, 7 three seconds ago, 8 (the sink's newest) 1 s ago.
    _orders(
        db,
        {1: now - 60, 2: now - 60, 3: now - 60, 4: now - 60, 5: now - 30, 6: now - 30, 7: now - 3, 8: now - 1},
    )
    probe = DataIntegrityProbe(DataIntegrity(hole_grace_s=5.0), _env(db, clock, tmp_path))
    source = SourceConnection(db, "sqlite", "test")
    # 2, 3 and 6 missing and old: holes; 7 missing but younger than the grace: in flight.
    assert probe._holes(source, (2, 3, 6, 7), newest=8) == (2, 3, 6)
    # The sink's newest landed row is itself 30 s old (a catch-up): only rows written more
    # than the grace before it are holes, whatever the wall clock says.
    assert probe._holes(source, (2, 3, 6), newest=5) == (2, 3)
    # A table that records Kafka partitions: its slowest partition's newest row, 50 s old,
    # bounds them too (the keys after it may be in flight on that partition).
    assert probe._holes(source, (2, 3, 6, 7), newest=8, frontier_s=now - 50) == (2, 3)
    assert probe._holes(source, (2, 3, 6, 7), newest=8, frontier_s=now - 70) == ()


def test_holes_are_not_counted_when_the_source_has_no_time_column(tmp_path: Path) -> None:
    clock = FakeClock()
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, amount INTEGER, created_at INTEGER)")
    undated = Target(table="a.t", key_column="id", columns=("amount",), source_query="SELECT id, amount FROM t")
    assert DataIntegrity(target=undated).hole_time_column is None
    # The query's text names the column, but it does not return it: the probe checks.
    tricky = Target(
        table="a.t",
        key_column="id",
        columns=("amount",),
        event_time_column="created_at",
        source_query="SELECT id, amount FROM t WHERE created_at > 0",
    )
    probe = DataIntegrityProbe(DataIntegrity(target=tricky), _env(db, clock, tmp_path))
    assert probe._holes(SourceConnection(db, "sqlite", "t"), (1, 2), newest=3) == ()
    assert probe._hole_column is None


def test_holes_off_counts_none(tmp_path: Path) -> None:
    clock = FakeClock()
    db = sqlite3.connect(":memory:", check_same_thread=False)
    _orders(db, {1: clock.wall() - 100, 2: clock.wall() - 1})
    probe = DataIntegrityProbe(DataIntegrity(holes=False), _env(db, clock, tmp_path))
    assert probe._holes(SourceConnection(db, "sqlite", "t"), (1,), newest=2) == ()


# -- the workload's reconnect ----------------------------------------------------------------


class _Component:
    def __init__(self) -> None:
        self.beats: list[dict[str, Any]] = []

    def should_run(self) -> bool:
        return True

    def heartbeat(self, stats: dict[str, Any], *, force: bool = False) -> None:
        self.beats.append(stats)


def test_a_batch_whose_commit_answer_was_lost_is_not_written_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datadrill.platform import workload
    from datadrill.platform.source_db import OrderRow, connect, count_orders, insert_orders

    monkeypatch.setattr(workload.time, "sleep", lambda _s: None)
    path = tmp_path / "source.db"
    rows = [OrderRow(i, 1, 100, "EUR", "created", 1, False) for i in (1, 2, 3)]
    with connect(path) as first:
        insert_orders(first, rows)  # committed; then the "connection drops" before the answer

    class Dropped:
        def execute(self, *args: Any) -> Any:
            raise sqlite3.OperationalError("server closed the connection unexpectedly")

        def close(self) -> None:
            raise sqlite3.OperationalError("already closed")

    component = _Component()
    db = workload._write(Dropped(), path, rows, [], component)  # type: ignore[arg-type]
    assert db is not None
    assert count_orders(db) == 3
    assert component.beats[0]["source_error"] == "server closed the connection unexpectedly"
    # A batch that never committed is written on the new connection, with its own ids.
    later = [OrderRow(i, 1, 100, "EUR", "created", 1, False) for i in (4, 5)]
    db.close()
    db = workload._write(Dropped(), path, later, [], component)  # type: ignore[arg-type]
    assert db is not None
    assert [r[0] for r in db.execute("SELECT order_id FROM orders ORDER BY 1").fetchall()] == [1, 2, 3, 4, 5]
    db.close()
