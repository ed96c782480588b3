"""The schedule search on real stacks: a deliberately weakened sink (offsets committed
before the rows are written) is found and shrunk to a schedule of one or two faults,
which `datadrill replay` re-runs to the same failure; the same seed gives the same
schedules and verdict; the correct sink survives the search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from conftest import run_cli, start_stack, stop_stack
from datadrill.search.machine import FAILING_JOURNAL, platform_machine
from datadrill.search.strategies import single_faults
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

SEARCH_SETTINGS = settings(
    max_examples=12,
    stateful_step_count=4,
    deadline=None,
    database=None,
    # No explain phase: it re-runs schedules only to annotate the report.
    phases=(Phase.generate, Phase.shrink),
    suppress_health_check=list(HealthCheck),
)


def _steps(journal: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if "step" in line]


@pytest.mark.timeout(900)
def test_the_search_finds_and_shrinks_a_weakened_sink(tmp_path: Path) -> None:
    weak = start_stack(tmp_path / ".datadrill", **{"sink.guarantee": "offsets_first"})
    try:
        journal_dir = tmp_path / "search"
        machine = platform_machine(
            weak,
            journal_dir=journal_dir,
            faults=single_faults(include=("crash_mid_commit", "broker_latency"), max_duration_s=2),
            max_advance_s=1.0,
            seed=20261122,
        )
        with pytest.raises((AssertionError, BaseExceptionGroup)) as caught:
            run_state_machine_as_test(machine, settings=SEARCH_SETTINGS)
        # Hypothesis reports each distinct failure it found (a group when there are several);
        # every one must be the lost-orders property, nothing else may have gone wrong.
        found = caught.value.exceptions if isinstance(caught.value, BaseExceptionGroup) else (caught.value,)
        assert all(isinstance(e, AssertionError) and "lost" in str(e) for e in found), found
        saved = journal_dir / FAILING_JOURNAL
        steps = _steps(saved)
        injected = [s["fault"] for s in steps if s["step"] == "inject"]
        # Shrunk: one or two faults, and the one that matters is the sink dying mid-commit.
        assert 1 <= len(injected) <= 2, steps
        assert {"kind": "connector.crash", "component": "sink", "moment": "mid_commit"}.items() <= next(
            f for f in injected if f["kind"] == "connector.crash"
        ).items()
        outcome = [json.loads(line) for line in saved.read_text().splitlines() if '"outcome"' in line][-1]
        assert outcome["ok"] is False and outcome["lost"] > 0

        replay = run_cli("replay", str(saved), "--state-dir", str(weak.paths.root), cwd=tmp_path, timeout=300)
        assert replay.returncode == 1, replay.stdout + replay.stderr
        assert "BROKEN" in replay.stdout and "lost" in replay.stdout
    finally:
        stop_stack(weak)


def _schedules(stack: StackClient, journal_dir: Path, seed: int) -> list[list[dict[str, Any]]]:
    machine = platform_machine(
        stack,
        journal_dir=journal_dir,
        faults=single_faults(include=("crash", "crash_mid_commit", "broker_loss"), max_duration_s=2),
        max_advance_s=1.0,
        seed=seed,
    )
    run_state_machine_as_test(
        machine,
        settings=settings(SEARCH_SETTINGS, max_examples=4, stateful_step_count=3),
    )
    runs = sorted(
        (journal_dir / "runs").glob("example-*/schedule.jsonl"), key=lambda p: int(p.parent.name[8:])
    )
    return [_steps(path) for path in runs]


def test_the_correct_sink_survives_and_a_seed_repeats_its_schedules(
    stack: StackClient, tmp_path: Path
) -> None:
    first = _schedules(stack, tmp_path / "a", seed=7)
    second = _schedules(stack, tmp_path / "b", seed=7)
    assert first and first == second
    assert any(step["step"] == "inject" for schedule in first for step in schedule)


def test_replay_rejects_a_malformed_journal(tmp_path: Path) -> None:
    journal = tmp_path / "bad.jsonl"
    journal.write_text(
        '{"type": "schedule", "version": 1, "seed": 0, "rate": 100, "sink_guarantee": "exactly_once"}\n'
        '{"step": "inject", "index": 0, "fault": {"kind": "connector.crash", "component": "database", "at_s": 0}}\n'
    )
    result = run_cli("replay", str(journal), "--state-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "bad.jsonl" in message and "component" in message and "database" in message
    assert "Traceback" not in result.stderr
