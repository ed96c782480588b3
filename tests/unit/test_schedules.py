"""Fault-schedule strategies and the schedule journal, without a stack."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from datadrill.errors import ConfigError
from datadrill.faults.registry import plugin_for
from datadrill.model import KillComponent
from datadrill.search.steps import load_journal, spec_from_json, spec_to_json
from datadrill.search.strategies import fault_schedules, single_faults


def _end(spec: Any) -> float:
    return float(spec.at_s) + float(getattr(spec, "duration_s", None) or 0.0)


@settings(max_examples=150, deadline=None)
@given(schedule=fault_schedules(max_faults=4, horizon_s=20.0))
def test_schedules_stay_inside_their_bounds_and_never_overlap(schedule: tuple[Any, ...]) -> None:
    assert 1 <= len(schedule) <= 4
    assert [s.at_s for s in schedule] == sorted(s.at_s for s in schedule)
    for spec in schedule:
        assert 0.0 <= spec.at_s <= 20.0
        assert getattr(spec, "duration_s", None) is None or 0.5 <= spec.duration_s <= 10.0
    for a, b in itertools.pairwise(schedule):
        assert _end(a) < b.at_s


@settings(max_examples=150, deadline=None)
@given(schedule=fault_schedules(max_faults=4, horizon_s=5.0, allow_overlap=True))
def test_overlapping_schedules_keep_exclusive_targets_apart(schedule: tuple[Any, ...]) -> None:
    for i, a in enumerate(schedule):
        for b in schedule[i + 1 :]:
            key_a, key_b = (plugin_for(s.kind).exclusive_key(s) for s in (a, b))
            if key_a is not None and key_a == key_b:
                assert _end(a) < b.at_s or _end(b) < a.at_s


def _draws(seed_value: int) -> list[Any]:
    seen: list[Any] = []

    @seed(seed_value)
    @settings(max_examples=20, database=None, deadline=None)
    @given(fault_schedules(max_faults=3))
    def collect(schedule: tuple[Any, ...]) -> None:
        seen.append(schedule)

    collect()
    return seen


def test_the_same_seed_draws_the_same_schedules() -> None:
    assert _draws(11) == _draws(11)
    assert _draws(11) != _draws(12)


def test_unknown_fault_families_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault families"):
        single_faults(include=("crash", "meteor"))


@settings(max_examples=100, deadline=None)
@given(fault=single_faults())
def test_faults_round_trip_through_the_journal(fault: Any) -> None:
    assert spec_from_json(spec_to_json(fault), source="j") == fault


def test_a_bad_fault_in_a_journal_names_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        spec_from_json({"kind": "connector.crash", "component": "data base", "at_s": 0}, source="s.jsonl")
    assert "s.jsonl" in str(caught.value) and "component" in str(caught.value)
    with pytest.raises(ConfigError, match="no fault of kind"):
        spec_from_json({"kind": "nope"}, source="s.jsonl")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"step": "advance", "seconds": 1}\n', "schedule header"),
        ('{"type": "schedule", "version": 9}\n', "version"),
        ('{"type": "schedule", "version": 1}\nnot json\n', "line 2"),
        ('{"type": "schedule", "version": 1}\n{"step": "explode"}\n', "explode"),
    ],
)
def test_malformed_journals_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_journal(path)


def test_a_journal_reads_back_its_steps(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(
        '{"type": "schedule", "version": 1, "seed": 3}\n{"step": "advance", "seconds": 0.5}\n'
        '{"step": "recover"}\n{"type": "outcome", "ok": true}\n'
    )
    header, steps = load_journal(path)
    assert header["seed"] == 3
    assert [s["step"] for s in steps] == ["advance", "recover"]


@pytest.mark.parametrize("fields", [{"component": "workload"}, {"times": 2, "every_s": 1}])
def test_mid_commit_kills_are_for_one_kill_of_a_connector(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="mid_commit"):
        KillComponent(at_s=0, moment="mid_commit", **fields)


def test_mid_commit_points_are_the_connectors_own() -> None:
    from datadrill.faults.connector import MID_COMMIT_POINTS
    from datadrill.platform.relay import CRASH_AFTER_PUBLISH
    from datadrill.platform.sink import CRASH_BEFORE_COMMIT

    assert MID_COMMIT_POINTS == {"sink": CRASH_BEFORE_COMMIT, "relay": CRASH_AFTER_PUBLISH}


def test_strategy_draws_are_valid_specs() -> None:
    @settings(max_examples=50, deadline=None)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        fault = data.draw(single_faults(components=("sink",), brokers=(2,)))
        assert getattr(fault, "component", "sink") == "sink"
        assert getattr(fault, "broker", 2) in (2, -1)

    check()
