"""Calibration: synthetic reconciliations at tiny sizes, the cache per machine and version
(in a temporary cache directory), DATADRILL_CALIBRATION, ``datadrill calibrate``, and the
event a run journals from it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadrill import __version__
from datadrill import events as ev
from datadrill.cli.main import app
from datadrill.engine import calibration as cal
from datadrill.engine.cost_model import CostModel, CostPoint
from datadrill.engine.runner import Runner
from datadrill.errors import ConfigError
from datadrill.events import read_events
from datadrill.model import ProductionVolume
from datadrill.model.report import RunReport

SIZES = (2_000, 6_000)


def _fake(key: str | None = None, points: tuple[CostPoint, ...] = (CostPoint(100, 0.5), CostPoint(1_000, 0.6))) -> cal.Calibration:
    return cal.Calibration(
        key=key or cal.machine_key(),
        created_wall="2026-11-30T12:00:00+00:00",
        took_s=1.5,
        steps=(cal.CalibratedStep(cal.RECONCILE_STEP, cal.SQLITE_DUCKDB, "fake", points),),
    )


def test_calibrate_reconciles_each_size_in_both_engine_pairs() -> None:
    found = cal.calibrate(SIZES)
    assert found.key == cal.machine_key() and not found.cached and found.took_s > 0
    sqlite = found.find(cal.RECONCILE_STEP, cal.SQLITE_DUCKDB)
    duck = found.find(cal.RECONCILE_STEP, cal.DUCKDB_DUCKDB)
    assert sqlite is not None and duck is not None
    # Compared rows count both sides, as a run's reconcile step counts them; Parquet against
    # Parquet is timed at larger sizes (it is ~10× faster per row).
    assert [p.rows for p in sqlite.points] == [2 * n for n in SIZES]
    assert [p.rows for p in duck.points] == [2 * n * cal.DUCKDB_SCALE for n in SIZES]
    for step in (sqlite, duck):
        assert all(p.seconds > 0 for p in step.points)
        # At these small sizes noise may hide the per-row part: then the reason says so.
        fitted = step.fit()
        if isinstance(fitted, CostModel):
            assert fitted.per_row_s > 0 and fitted.points == len(SIZES)
        else:
            assert fitted.startswith("not fitted"), fitted
    assert found.find(cal.RECONCILE_STEP, "postgresql→duckdb") is None


def test_calibrate_refuses_one_size() -> None:
    with pytest.raises(ConfigError, match=r"calibration: sizes = \(5000, 5000\) is invalid: two different sizes"):
        cal.calibrate((5_000, 5_000))


def test_the_machine_key_names_version_host_and_cpus() -> None:
    key = cal.machine_key()
    assert key.startswith(f"datadrill {__version__} on ")
    assert key.endswith(" CPUs)")


def test_the_cache_lives_under_xdg_cache_home_or_home() -> None:
    assert cal.cache_path({"XDG_CACHE_HOME": "/c"}) == Path("/c/datadrill/calibration.json")
    assert cal.cache_path({}) == Path.home() / ".cache" / "datadrill" / "calibration.json"


def test_the_cache_keeps_each_machine_and_version_apart(tmp_path: Path) -> None:
    path = tmp_path / "datadrill" / "calibration.json"
    cal.save(path, _fake("datadrill 0.0.9 on other (8 CPUs)", (CostPoint(1, 1.0), CostPoint(2, 3.0))))
    cal.save(path, _fake())
    mine = cal.load_cached(path)
    assert mine is not None and mine.cached
    assert mine.steps == _fake().steps
    other = cal.load_cached(path, "datadrill 0.0.9 on other (8 CPUs)")
    assert other is not None and other.steps[0].points == (CostPoint(1, 1.0), CostPoint(2, 3.0))
    assert cal.load_cached(path, "datadrill 9.9 on nowhere (1 CPUs)") is None
    assert json.loads(path.read_text())["format"] == cal.CACHE_FORMAT


@pytest.mark.parametrize("content", ["{not json", '{"format": 99, "entries": {}}', '["a list"]'])
def test_an_unreadable_cache_counts_as_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(content)
    assert cal.load_cached(path) is None
    cal.save(path, _fake())  # and the next calibration replaces it
    assert cal.load_cached(path) is not None


def test_for_run_calibrates_once_then_uses_the_cache(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    calls: list[tuple[str, ...]] = []

    def run(engines: Sequence[str]) -> cal.Calibration:
        calls.append(tuple(engines))
        return _fake()

    first = cal.for_run(env, engines=(cal.SQLITE_DUCKDB,), run=run)
    second = cal.for_run(env, engines=(cal.SQLITE_DUCKDB,), run=run)
    assert calls == [cal.DEFAULT_ENGINES]
    assert first is not None and not first.cached
    assert second is not None and second.cached and second.steps == first.steps
    # A run reconciling in engines the cache lacks calibrates again, for those too.
    cal.for_run(env, engines=(cal.POSTGRESQL_DUCKDB,), run=run)
    assert calls[1] == (*cal.DEFAULT_ENGINES, cal.POSTGRESQL_DUCKDB)


def test_calibration_off_runs_nothing(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path), cal.ENV: "off"}

    def run(engines: Sequence[str]) -> cal.Calibration:
        raise AssertionError("calibrated although DATADRILL_CALIBRATION=off")

    assert cal.for_run(env, run=run) is None
    assert not (tmp_path / "datadrill").exists()


def test_a_bad_calibration_setting_is_one_line_naming_the_allowed_values() -> None:
    with pytest.raises(ConfigError) as caught:
        cal.enabled({cal.ENV: "sometimes"})
    assert str(caught.value) == "environment: DATADRILL_CALIBRATION = 'sometimes' is invalid: on or off (unset: on)"
    assert cal.enabled({cal.ENV: "ON"}) and cal.enabled({})


def test_describe_prints_each_fit_or_why_not() -> None:
    lines = cal.describe(_fake())
    assert lines[0].endswith("(took 1.5 s)")
    assert "100 rows in 0.500 s, 1,000 rows in 0.600 s" in lines[1]
    assert lines[2].startswith("  fit: 0.489 s + 111 µs/row")
    flat = _fake(points=(CostPoint(100, 0.5), CostPoint(1_000, 0.4)))
    assert cal.describe(flat)[2].startswith("  fit: not fitted: the time does not grow with the rows")


def test_the_calibrate_command_caches_and_shows(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    shown = runner.invoke(app, ["calibrate", "--show"], env=env)
    assert shown.exit_code == 1
    ran = runner.invoke(app, ["calibrate", "--size", "1500", "--size", "3000"], env=env)
    assert ran.exit_code == 0, ran.output
    assert "[reconcile, sqlite→duckdb]: 3,000 rows in " in ran.output
    assert f"cache: {tmp_path / 'datadrill' / 'calibration.json'}" in ran.output
    shown = runner.invoke(app, ["calibrate", "--show"], env=env)
    assert shown.exit_code == 0 and "(cached)" in shown.output


# -- a run journals what its projection fits from -------------------------------------------------
def _run(tmp_path: Path, calibration: Callable[[], cal.Calibration | None]) -> tuple[RunReport, list[ev.Event]]:
    from fake_stack import FakeStack
    from test_runner_fake_stack import YieldingClock, _exact, _scenario

    scenario = _scenario(production=ProductionVolume(events_per_s=50_000, table_rows=1_000_000))
    runner = Runner(
        scenario, stack=FakeStack(tmp_path / "stack"), run_dir=tmp_path / "run", clock=YieldingClock(),
        verify=_exact, calibration=calibration,
    )  # fmt: skip
    report = runner.run()
    return report, read_events(runner.journal_path)


def test_a_run_with_a_production_volume_journals_its_calibration_after_run_started(tmp_path: Path) -> None:
    report, events = _run(tmp_path, _fake)
    assert isinstance(events[0], ev.RunStarted) and isinstance(events[1], ev.ProjectionCalibrated)
    journaled = events[1]
    assert (journaled.key, journaled.run_engines, journaled.note) == (cal.machine_key(), cal.SQLITE_DUCKDB, "")
    assert [(s.step, s.engines, s.points) for s in journaled.steps] == [
        (cal.RECONCILE_STEP, cal.SQLITE_DUCKDB, ((100, 0.5), (1_000, 0.6)))
    ]
    assert report.projection is not None and report.projection.modelled


def test_a_failed_calibration_leaves_the_run_alone_and_says_why(tmp_path: Path) -> None:
    def broken() -> cal.Calibration:
        raise OSError("disk full")

    report, events = _run(tmp_path, broken)
    (journaled,) = [e for e in events if isinstance(e, ev.ProjectionCalibrated)]
    assert journaled.note == "calibration failed: OSError: disk full" and journaled.steps == ()
    assert report.verdict.value == "passed", report.reasons


def test_a_bad_calibration_setting_stops_the_run_before_it_writes_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_stack import FakeStack
    from test_runner_fake_stack import _scenario

    monkeypatch.setenv(cal.ENV, "maybe")
    scenario = _scenario(production=ProductionVolume(events_per_s=50_000, table_rows=1_000_000))
    runner = Runner(scenario, stack=FakeStack(tmp_path / "stack"), run_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match="DATADRILL_CALIBRATION = 'maybe' is invalid"):
        runner.run()
    assert not runner.journal_path.exists()
