"""The cost model: a fixed plus a per-row part, fitted from measurements of known cost, and
the projection a report makes with it (measure's ``_projection``, from journal events)."""

from __future__ import annotations

import random
from functools import partial

import pytest

from datadrill import events as ev
from datadrill.engine.cost_model import (
    CostModel,
    CostPoint,
    NotFitted,
    fit,
    fit_or_reason,
    parallelism,
    projection_row,
    step_points,
)
from datadrill.engine.measure import measure
from datadrill.model.report import Verdict
from datadrill.reporting.markdown import render_markdown

FIXED_S = 2.0
PER_ROW_S = 1e-6  # 1 M rows/s once the fixed part is paid
SIZES = (50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000)


def _measured(noise: float, seed: int = 7, repeats: int = 3) -> list[CostPoint]:
    """t = 2 s + n / 1e6 s, each measurement off by up to ±``noise`` (relative)."""
    rng = random.Random(seed)
    return [
        CostPoint(n, (FIXED_S + PER_ROW_S * n) * (1 + rng.uniform(-noise, noise)))
        for n in SIZES
        for _ in range(repeats)
    ]


def test_exact_measurements_give_back_the_cost_and_no_error() -> None:
    model = fit([CostPoint(n, FIXED_S + PER_ROW_S * n) for n in SIZES])
    assert model.fixed_s == pytest.approx(FIXED_S, rel=1e-9)
    assert model.per_row_s == pytest.approx(PER_ROW_S, rel=1e-9)
    assert model.relative_rms_error == pytest.approx(0.0, abs=1e-12)
    assert (model.points, model.min_rows, model.max_rows) == (len(SIZES), 50_000, 2_000_000)


def test_noisy_measurements_recover_the_cost_within_tolerance_and_state_the_error() -> None:
    model = fit(_measured(noise=0.05))
    assert model.fixed_s == pytest.approx(FIXED_S, rel=0.1)
    assert model.per_row_s == pytest.approx(PER_ROW_S, rel=0.1)
    # The stated error is the noise seen: neither zero nor above the ±5% put in.
    assert 0.005 < model.relative_rms_error < 0.05
    assert "RMS over 18 measurements of 50,000–2,000,000 rows" in model.describe()


def test_projection_at_five_billion_rows_is_the_fixed_part_plus_the_per_row_part() -> None:
    model = fit(_measured(noise=0.05))
    projected = model.seconds(5_000_000_000)
    assert projected == pytest.approx(FIXED_S + PER_ROW_S * 5e9, rel=0.1)  # ≈ 5,002 s
    # What linear scaling of the smallest run's rate would say: 21× too long.
    small = CostPoint(50_000, FIXED_S + PER_ROW_S * 50_000)
    linear = 5_000_000_000 / (small.rows / small.seconds)
    assert linear > 20 * projected


def test_parallelism_divides_only_the_per_row_part() -> None:
    model = CostModel(fixed_s=2.0, per_row_s=1e-6, points=2, min_rows=1, max_rows=2, relative_rms_error=0.0)
    one = model.seconds(1_000_000_000)
    four = model.seconds(1_000_000_000, workers=4, partitions=12)
    assert one - 2.0 == pytest.approx(1_000.0)
    assert four - 2.0 == pytest.approx(250.0)  # per-row part ÷ 4, fixed part whole
    # More workers than partitions: a partition is read by one worker at a time.
    assert model.seconds(1_000_000_000, workers=8, partitions=2) == pytest.approx(2.0 + 500.0)
    assert model.seconds(1_000_000_000, workers=4, partitions=4, efficiency=0.5) == pytest.approx(2.0 + 500.0)
    assert parallelism(3, None) == 3.0
    with pytest.raises(ValueError, match=r"workers = 0 is invalid"):
        parallelism(0, 4)
    with pytest.raises(ValueError, match=r"efficiency = 1.5 is invalid"):
        parallelism(2, 4, 1.5)


def test_one_size_is_not_fitted_and_says_so() -> None:
    with pytest.raises(NotFitted, match=r"not fitted: one size only \(50,000 rows\)"):
        fit([CostPoint(50_000, 2.05), CostPoint(50_000, 2.06)])
    assert fit_or_reason([]) == (
        "not fitted: one size only; a fit needs measurements of two sizes or more"
    )


def test_time_that_does_not_grow_with_rows_is_not_fitted() -> None:
    reason = fit_or_reason([CostPoint(1_000, 2.0), CostPoint(2_000, 1.9)])
    assert isinstance(reason, str)
    assert reason.startswith("not fitted: the time does not grow with the rows over 1,000–2,000 rows")


def test_a_negative_fixed_part_is_refitted_through_the_origin() -> None:
    model = fit([CostPoint(1_000, 0.0005), CostPoint(1_000_000, 1.2)])
    assert model.fixed_s == 0.0
    assert model.per_row_s > 0


def test_a_calibrated_row_takes_its_fixed_part_from_the_run() -> None:
    calibrated = fit([CostPoint(n, 0.1 + PER_ROW_S * n) for n in SIZES])
    row = projection_row(
        "reconcile",
        measured_s=4.4,
        rows=56_000,
        rate_per_s=37_000.0,
        projected_rows=10_000_000_000,
        calibrated=calibrated,
    )
    assert row.model_source == "calibration"
    assert row.fixed_s == pytest.approx(4.4 - 0.056, rel=1e-6)
    assert row.projected_s == pytest.approx(4.344 + 10_000.0, rel=1e-6)
    assert row.fit_points == len(SIZES)


def test_a_step_reporting_its_own_sizes_is_fitted_from_them() -> None:
    points = [[n, FIXED_S + PER_ROW_S * n] for n in (10_000, 20_000, 40_000)]
    row = projection_row(
        "replay",
        measured_s=2.04,
        rows=40_000,
        rate_per_s=19_600.0,
        projected_rows=2_000_000,
        extra={"cost_points": points, "workers": 4, "partitions": 6},
    )
    assert row.model_source == "run"
    assert row.projected_s == pytest.approx(FIXED_S + PER_ROW_S * 2_000_000)
    # Stated per worker: projected_s = fixed + per_row × rows / parallelism.
    assert row.parallelism == 4.0
    assert row.fixed_s is not None and row.per_row_s is not None
    assert row.fixed_s + row.per_row_s * 2_000_000 / row.parallelism == pytest.approx(row.projected_s)


def test_production_workers_and_partitions_divide_the_per_row_part_there() -> None:
    points = [[n, FIXED_S + PER_ROW_S * n] for n in (10_000, 20_000, 40_000)]
    measured = {"cost_points": points, "workers": 4, "partitions": 6}
    replay = partial(
        projection_row, "replay", measured_s=2.04, rows=40_000, rate_per_s=19_600.0, projected_rows=2_000_000
    )
    here = replay(extra=measured)
    # 4 workers here; 12 workers over 8 partitions in production: 8 parallel, not 4.
    there = replay(extra=measured, production_workers=12, production_partitions=8)
    assert there.parallelism == 8.0 and there.fixed_s == pytest.approx(FIXED_S)
    assert there.projected_s == pytest.approx(FIXED_S + PER_ROW_S * 2_000_000 * 4 / 8)
    assert there.projected_s < here.projected_s
    assert there.note.endswith("; 8 parallel in production (the per-row part divided among them)")
    # Only the workers named: the run's 6 partitions still bound them.
    capped = replay(extra=measured, production_workers=32)
    assert capped.parallelism == 6.0
    # A linear row divides too: 1 worker here, 3 there.
    linear = projection_row(
        "backfill",
        measured_s=1.0,
        rows=10_000,
        rate_per_s=10_000.0,
        projected_rows=1_000_000,
        extra={"workers": 1},
        production_workers=3,
        production_partitions=2,  # a backfill splits key ranges: the topic's partitions do not bind it
    )
    assert linear.model_source == "linear" and linear.parallelism == 3.0
    assert linear.projected_s == pytest.approx(100.0 / 3)
    # A step that reports no workers is one worker in production too.
    single = projection_row(
        "reconcile", measured_s=1.0, rows=10_000, rate_per_s=10_000.0, projected_rows=1_000_000, production_workers=8
    )
    assert single.parallelism == 1.0 and single.projected_s == pytest.approx(100.0)


def test_a_step_with_one_size_is_linear_and_says_why() -> None:
    row = projection_row("replay", measured_s=1.7, rows=21_686, rate_per_s=12_985.0, projected_rows=1_084_300)
    assert row.model_source == "linear"
    assert row.projected_s == pytest.approx(1_084_300 / 12_985.0)
    assert row.note == (
        "linear from one size (21,686 rows at 12,985 rows/s): the step reports no measurements of other sizes"
    )
    one_size = {"cost_points": [[21_686, 1.7], [21_686, 1.71]]}
    row = projection_row(
        "replay", measured_s=1.7, rows=21_686, rate_per_s=12_985.0, projected_rows=1_084_300, extra=one_size
    )
    assert row.model_source == "linear"
    assert row.note.endswith(": not fitted: one size only (21,686 rows); a fit needs measurements of two sizes or more")


def test_malformed_cost_points_are_left_out() -> None:
    assert step_points({"cost_points": [[1, 2.0], "x", [1, 2, 3], ["a", 1.0], [3, 4]]}) == [
        CostPoint(1, 2.0),
        CostPoint(3, 4.0),
    ]
    assert step_points(None) == []


# -- the report, from a journal --------------------------------------------------------------
def _journal(calibration: ev.ProjectionCalibrated | None) -> list[ev.Event]:
    events: list[ev.Event] = [
        ev.RunStarted(
            t=0.0,
            scenario="metadata-loss",
            workload_rate=1_000.0,
            production=ev.ProductionInfo(events_per_s=50_000.0, table_rows=5_000_000_000),
        )
    ]
    if calibration is not None:
        events.append(calibration)
    events += [
        ev.PhaseStarted(t=10.0, name="replay Kafka", kind="recovery_step", step="replay_kafka"),
        ev.PhaseFinished(
            t=11.7,
            name="replay Kafka",
            kind="recovery_step",
            step="replay_kafka",
            rows=21_686,
            rate_per_s=12_985.0,
            extra={"workers": 4},
        ),
        ev.PhaseStarted(t=12.0, name="reconcile", kind="recovery_step", step="reconcile"),
        ev.PhaseFinished(
            t=16.4,
            name="reconcile",
            kind="recovery_step",
            step="reconcile",
            rows=56_376,
            rate_per_s=37_523.0,
            extra={"compared_rows": 56_376, "duplicates": 0, "omissions": 0, "discrepancies": 0, "unexpected": 0},
        ),
        ev.RunFinished(t=20.0, verdict=Verdict.PASSED),
    ]
    return events


CALIBRATED = ev.ProjectionCalibrated(
    t=0.1,
    key="datadrill 0.1.0 on h (2 CPUs)",
    created_wall="2026-11-30T12:00:00+00:00",
    run_engines="sqlite→duckdb",
    steps=(
        ev.CalibrationPointsInfo(
            step="reconcile",
            engines="sqlite→duckdb",
            points=tuple((2 * n, 0.1 + 2 * n * 1e-6) for n in (50_000, 200_000, 1_000_000)),
        ),
        ev.CalibrationPointsInfo(step="reconcile", engines="duckdb→duckdb", points=((100_000, 0.05), (2_000_000, 0.3))),
    ),
)


def test_an_old_journal_is_projected_linearly_as_before() -> None:
    projection = measure(_journal(None)).projection
    assert projection is not None and not projection.modelled
    reconcile = projection.rows[1]
    assert reconcile.projected_rows == 10_000_000_000
    assert reconcile.projected_s == pytest.approx(10_000_000_000 / 37_523.0)
    assert "measured rates stay constant (no extra workers)" in projection.assumptions


def test_a_calibrated_journal_projects_reconciliation_with_the_fit_and_states_it() -> None:
    report = measure(_journal(CALIBRATED))
    projection = report.projection
    assert projection is not None and projection.modelled
    replay, reconcile = projection.rows
    assert reconcile.model_source == "calibration"
    # 4.4 s measured, of which 56,376 µs per-row: the rest is fixed; 1e10 rows at 1 µs.
    assert reconcile.projected_s == pytest.approx(4.4 - 0.056376 + 10_000.0, rel=1e-3)
    assert replay.model_source == "linear"
    assert projection.total_s == pytest.approx(replay.projected_s + reconcile.projected_s)
    assert "reconcile: 4.34 s + 1 µs/row, per-row part fitted from this machine's calibration" in (
        projection.assumptions
    )
    assert "±0.0% RMS error over 3 measurements of 100,000–2,000,000 rows" in projection.assumptions
    assert "replay Kafka: linear from one size (21,686 rows" in projection.assumptions
    # The other engines timed are set beside it: the line through (100,000, 0.05 s) and
    # (2,000,000, 0.3 s) is 7,600,000 rows/s; 1e10 rows in 1,316 s + 4.39 s fixed.
    assert "other engines: 1,320 s in duckdb→duckdb (7,600,000 rows/s)" in projection.assumptions
    text = render_markdown(report)
    assert "| Phase | Measured | Measured rows | Rate | Projected rows | Model | Fit | Projected |" in text
    assert "calibration, ±0.0% over 3 measurements (100,000–2,000,000 rows)" in text
    assert "linear, 1 size" in text


def test_a_calibration_of_other_engines_leaves_the_step_linear_and_says_why() -> None:
    other = CALIBRATED.model_copy(update={"run_engines": "postgresql→duckdb"})
    projection = measure(_journal(other)).projection
    assert projection is not None
    reconcile = projection.rows[1]
    assert reconcile.model_source == "linear"
    assert "this run reconciles in postgresql→duckdb" in reconcile.note


def test_production_parallelism_is_said_in_the_assumptions() -> None:
    events = _journal(CALIBRATED)
    start = events[0]
    assert isinstance(start, ev.RunStarted) and start.production is not None
    events[0] = start.model_copy(
        update={"production": start.production.model_copy(update={"workers": 16, "partitions": 12})}
    )
    projection = measure(events).projection
    assert projection is not None
    replay = projection.rows[0]
    assert replay.parallelism == 16.0  # the replay reported 4 workers and no partitions
    assert replay.projected_s == pytest.approx(replay.projected_rows * 4 / 12_985.0 / 16)
    assert "with production's 16 workers and 12 partitions" in projection.assumptions
    assert "with the run's own workers and partitions" in (measure(_journal(CALIBRATED)).projection or projection).assumptions


def test_calibration_off_is_said_in_the_assumptions() -> None:
    off = ev.ProjectionCalibrated(t=0.1, run_engines="sqlite→duckdb", note="calibration off (DATADRILL_CALIBRATION=off)")
    projection = measure(_journal(off)).projection
    assert projection is not None
    assert "reconcile: linear from one size (56,376 rows at 37,523 rows/s): calibration off" in projection.assumptions


def test_a_step_records_its_own_sizes_as_it_commits() -> None:
    from datadrill.clock import FakeClock
    from datadrill.engine.cost_model import PointRecorder

    clock = FakeClock()
    points = PointRecorder(clock.monotonic)
    clock.sleep(1.5)  # connecting, joining the group: before any row
    for rows in (10_000, 20_000, 30_000):
        clock.sleep(0.5)  # 10,000 rows a batch at 20,000 rows/s
        points.record(rows)
    extra = {**points.extra(), "workers": 1}
    model = fit(step_points(extra))
    assert model.fixed_s == pytest.approx(1.5)
    assert model.rows_per_s == pytest.approx(20_000)


def test_two_measurements_fit_exactly_and_state_no_error() -> None:
    model = fit([CostPoint(100_000, 0.3), CostPoint(1_000_000, 1.2)])
    assert model.relative_rms_error == pytest.approx(0.0, abs=1e-12)
    assert model.error_text() == "through 2 measurements of 100,000–1,000,000 rows (no error estimate)"
    row = projection_row(
        "replay", measured_s=1.2, rows=1_000_000, rate_per_s=833_333.0, projected_rows=5_000_000,
        extra={"cost_points": [[100_000, 0.3], [1_000_000, 1.2]]},
    )  # fmt: skip
    assert row.model_source == "run" and row.fit_points == 2
