"""Typed journal events: every type round-trips; bad events name file, line and field;
journals of other versions still read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from datadrill import events as ev
from datadrill.clock import FakeClock
from datadrill.engine.journal import Journal, read_journal
from datadrill.errors import ConfigError
from datadrill.model.report import Verdict

STAMP: dict[str, Any] = {"seq": 7, "t": 12.5, "mono": 1012.5, "wall": "2026-11-22T00:00:12.500+00:00"}

# One of each known type, every field away from its default.
EXAMPLES: list[ev.Event] = [
    ev.RunStarted(
        scenario="metadata-loss",
        run_id="r1",
        description="delete the catalog entry",
        seed=42,
        stack="compose",
        probe_interval_s=1.5,
        stabilisation_s=5.0,
        workload_rate=400.0,
        slos=(
            ev.SLOInfo(
                name="fresh",
                statement="no older than 30 s",
                kind="freshness",
                unit="s",
                objective=0.999,
                alert="bad for 5 s",
                threshold=30.0,
            ),
        ),
        schedule=(ev.ScheduleInfo(kind="metadata.catalog_entry", at_s=10.0, description="delete it"),),
        expectations=ev.ExpectationsInfo(detect_within_s=10.0, recover_within_s=120.0, max_budget_burn=0.5),
        production=ev.ProductionInfo(events_per_s=50_000.0, table_rows=2_000_000_000),
        policy=ev.PolicyInfo(period_days=7.0, postmortem_at=0.1, freeze_at=0.5),
    ),
    ev.Sample(slo="fresh", good=False, value=31.5, error="too old"),
    ev.AlertFired(slo="fresh", rule="bad for 5 s"),
    ev.FaultInjected(
        fault_id=1, kind="metadata.catalog_entry", description="delete it", landed="no catalog row"
    ),
    ev.FaultReverted(fault_id=1, kind="metadata.catalog_entry", description="delete it", note="restored"),
    ev.BackupTaken(name="nightly", snapshot_id=8412, rows=14_400),
    ev.ReserveTaken(
        name="reserve",
        table="dwh.orders",
        snapshot_id=8413,
        rows=14_400,
        key_min=1,
        key_max=14_400,
        files=2,
        path="reserves/reserve",
    ),
    ev.PhaseStarted(
        name="replay Kafka from table offsets with 4 workers", kind="recovery_step", step="replay_kafka"
    ),
    ev.PhaseFinished(
        name="reconcile source against sink",
        kind="recovery_step",
        step="reconcile",
        ok=False,
        rows=24_120,
        rate_per_s=3_890.5,
        detail="3 missing",
        extra={"compared_rows": 24_120, "omissions": 3, "note": "nested", "list": [1, 2]},
    ),
    ev.Recovered(stable_since=46.0, stable_for_s=5.5),
    ev.IntegrityVerified(
        compared_rows=24_120,
        duplicates=1,
        omissions=2,
        discrepancies=3,
        unexpected=4,
        verified=False,
        detail="x",
    ),
    ev.LeftoverReverted(kind="component.pause", description="pause the sink", note="resumed", ok=False),
    ev.ComponentResumed(component="sink", pid=4242, note="left paused by the runbook"),
    ev.HarnessError(message="StackProcessDied: gone", traceback="Traceback ..."),
    ev.LeaseExpired(run_id="r1", lease_s=10.0, reverted=2, failed=1),
    ev.StopConditionCrossed(condition="lag above 1,000,000", value=1_500_000.0, detail="lag = 1.5e+06"),
    ev.PrometheusWatchStarted(
        url="http://127.0.0.1:9090",
        throwaway=True,
        rules=(ev.PrometheusRuleInfo(name="QBad", slo="q", severity="page", scenario="metadata-loss"),),
    ),
    ev.PrometheusAlert(
        rule="QBad", state="firing", active_at="2026-11-30T00:00:01Z", slo="q", severity="page"
    ),
    ev.ProjectionCalibrated(
        key="datadrill 0.1.0 on h (2 CPUs)",
        created_wall="2026-11-30T12:00:00+00:00",
        cached=True,
        took_s=12.5,
        run_engines="sqlite→duckdb",
        steps=(
            ev.CalibrationPointsInfo(
                step="reconcile", engines="sqlite→duckdb", description="d", points=((100_000, 0.5), (2_000_000, 4.0))
            ),
        ),
        note="n",
    ),
    ev.RunFinished(verdict=Verdict.SLO_VIOLATED, reasons=("too slow", "missed"), harness_probe_s=1.25),
]


def test_the_examples_cover_every_event_type() -> None:
    assert {e.type for e in EXAMPLES} == ev.KNOWN_TYPES


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.type)
def test_every_event_type_round_trips_through_its_journal_line(event: ev.Event) -> None:
    stamped = event.model_copy(update=STAMP)
    line = json.dumps(ev.event_record(stamped))
    record = json.loads(line)
    assert list(record)[:5] == ["seq", "type", "t", "mono", "wall"]
    parsed = ev.parse_event(record)
    assert type(parsed) is type(event)
    assert parsed == stamped


def test_every_event_type_round_trips_through_a_journal_file(tmp_path: Path) -> None:
    clock = FakeClock()
    journal = Journal.create(tmp_path / "journal.jsonl", clock=clock)
    written = []
    for event in EXAMPLES:
        clock.sleep(0.25)
        written.append(journal.record(event))
    journal.close()
    journal.close()  # idempotent
    read = ev.read_events(tmp_path / "journal.jsonl")
    assert read == written
    assert [e.seq for e in read] == list(range(1, len(EXAMPLES) + 1))
    assert [e.t for e in read] == [0.25 * i for i in range(1, len(EXAMPLES) + 1)]
    assert all(e.wall.startswith("20") for e in read)
    # The plain-dict view for scripts keeps the journal's lines.
    assert [d["type"] for d in read_journal(tmp_path / "journal.jsonl")] == [e.type for e in EXAMPLES]


def test_an_unknown_event_type_is_kept_whole() -> None:
    record = {**STAMP, "type": "probe_paused", "probe": "fresh", "details": {"why": "maintenance"}}
    event = ev.parse_event(record)
    assert isinstance(event, ev.UnknownEvent)
    assert event.type == "probe_paused" and event.t == 12.5
    assert ev.event_record(event) == record


def test_a_field_a_newer_version_added_is_dropped_on_reading() -> None:
    event = ev.parse_event({**STAMP, "type": "sample", "slo": "q", "good": True, "shard": 3})
    assert event == ev.Sample(slo="q", good=True).model_copy(update=STAMP)


def test_an_unknown_field_in_code_is_an_error() -> None:
    with pytest.raises(ValidationError, match="vaule"):
        ev.Sample(slo="q", good=True, vaule=1.0)  # type: ignore[call-arg]


def test_recovery_phases_of_old_journals_get_their_step_from_their_name() -> None:
    names = {
        "restore the catalog from backup 'nightly'": "restore_catalog_backup",
        "re-register dwh.orders from its newest surviving metadata file": "reregister_from_metadata",
        "replay Kafka from table offsets with 4 workers": "replay_kafka",
        "reconcile source against sink and repair": "reconcile",
        "pause the sink": "pause_component",
        "resume the sink": "resume_component",
        "roll the producer back to the contract's writer schema": "rollback_producer",
        "reprocess the dead letters": "reprocess_dead_letters",
        "something new": None,
    }
    for name, step in names.items():
        event = ev.parse_event({**STAMP, "type": "phase_finished", "name": name, "kind": "recovery_step"})
        assert isinstance(event, ev.PhaseFinished) and event.step == step, name
    # Only recovery steps have a step; a recorded step is never second-guessed.
    other = ev.parse_event({**STAMP, "type": "phase_started", "name": "replay", "kind": "fault"})
    assert isinstance(other, ev.PhaseStarted) and other.step is None
    kept = ev.parse_event(
        {**STAMP, "type": "phase_started", "name": "replay", "kind": "recovery_step", "step": "reconcile"}
    )
    assert isinstance(kept, ev.PhaseStarted) and kept.step == "reconcile"


def test_defaults_of_a_sparse_run_started_come_from_one_place() -> None:
    start = ev.parse_event({"type": "run_started", "t": 0, "scenario": "s"})
    assert isinstance(start, ev.RunStarted)
    assert start.policy == ev.PolicyInfo()
    assert (start.policy.period_days, start.policy.postmortem_at, start.policy.freeze_at) == (28, 0.2, 1.0)
    assert start.expectations == ev.ExpectationsInfo()
    assert start.production is None and start.slos == ()


def _journal_with(tmp_path: Path, bad: str) -> Path:
    path = tmp_path / "journal.jsonl"
    good = [
        json.dumps({**STAMP, "type": "run_started", "scenario": "s"}),
        json.dumps({**STAMP, "type": "sample", "slo": "q", "good": True}),
    ]
    path.write_text("\n".join([*good, bad, *good]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("bad", "field", "says"),
    [
        ('{"type": "sample", "t": 1, "slo": "q", "good": "maybe"}', "line 3: sample.good", "valid boolean"),
        (
            '{"type": "fault_injected", "t": 1, "kind": "k", "description": "d"}',
            "line 3: fault_injected.fault_id",
            "Field required",
        ),
        (
            '{"type": "phase_started", "t": 1, "name": "n", "kind": "coffee"}',
            "line 3: phase_started.kind",
            "steady_state",
        ),
        ('{"type": "sample", "slo": "q", "good": true}', "line 3: sample", "needs 't'"),
        ('{"t": 1, "slo": "q"}', "line 3: (event)", "needs a 'type'"),
        ('{"type": "sample", "t": 1, "slo', "line 3", "a journal event"),
    ],
)
def test_a_bad_event_names_file_line_and_field(tmp_path: Path, bad: str, field: str, says: str) -> None:
    path = _journal_with(tmp_path, bad)
    with pytest.raises(ConfigError) as caught:
        ev.read_events(path)
    error = caught.value
    assert error.source == str(path)
    assert error.field == field
    assert says in str(error)
    assert "\n" not in str(error)


def test_a_torn_last_event_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(
        json.dumps({**STAMP, "type": "run_started", "scenario": "s"}) + '\n{"seq": 8, "type": "sam',
        encoding="utf-8",
    )
    assert [e.type for e in ev.read_events(path)] == ["run_started"]


def test_a_missing_journal_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such journal file"):
        ev.read_events(tmp_path / "journal.jsonl")
