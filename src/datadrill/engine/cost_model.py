"""A recovery step's cost: a fixed part plus a per-row part, fitted from several sizes.

A step's time is not proportional to its rows. Connections, planning, waiting for the sink
to catch up, re-checks and commits cost the same at 50,000 rows as at 5 billion; only the
scans, hashes and writes grow with the rows. A small run is dominated by the fixed part, so
scaling its rate linearly to production volume overstates the time by orders of magnitude.
:func:`fit` finds ``seconds = fixed_s + per_row_s × rows`` from measurements of at least two
different sizes and states how well the line fits them; :meth:`CostModel.seconds` projects
it with workers and partitions (the per-row part is shared among them, the fixed part is
not).

Everything here is a pure function of its arguments (no clock, no I/O).

Example::

    model = fit([CostPoint(50_000, 2.05), CostPoint(200_000, 2.2), CostPoint(1_000_000, 3.0)])
    model.fixed_s, model.per_row_s, model.relative_rms_error     # ≈ 2.0, ≈ 1e-6, small
    model.seconds(5_000_000_000, workers=8, partitions=6)        # 2.0 + 5e9 × 1e-6 / 6
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from datadrill.model.report import ProjectionRow

# Where a projection's model comes from: a synthetic calibration on this machine, the
# run's own measurements of several sizes, or today's linear scaling from one size.
SOURCE_CALIBRATION = "calibration"
SOURCE_RUN = "run"
SOURCE_LINEAR = "linear"


@dataclass(frozen=True)
class CostPoint:
    """One measurement: ``rows`` handled in ``seconds``."""

    rows: int
    seconds: float


class NotFitted(ValueError):
    """The measurements do not determine a fixed and a per-row part (the message says why:
    one size only, time not growing with rows)."""


@dataclass(frozen=True)
class CostModel:
    """``seconds = fixed_s + per_row_s × rows`` and how well that fits what was measured.

    ``relative_rms_error`` is the root mean square of (fitted − measured) / measured over
    the ``points`` measurements, whose sizes span ``min_rows`` to ``max_rows``.
    """

    fixed_s: float
    per_row_s: float
    points: int
    min_rows: int
    max_rows: int
    relative_rms_error: float

    def seconds(
        self, rows: int | float, *, workers: int = 1, partitions: int | None = None, efficiency: float = 1.0
    ) -> float:
        """The projected time for ``rows``: the per-row part divided among
        ``min(workers, partitions)`` parallel workers at ``efficiency`` (1.0: each worker as
        fast as one alone), the fixed part once."""
        return self.fixed_s + self.per_row_s * rows / parallelism(workers, partitions, efficiency)

    @property
    def rows_per_s(self) -> float:
        """The per-row part as a throughput (what the rate tends to at large sizes)."""
        return 1.0 / self.per_row_s if self.per_row_s > 0 else math.inf

    def describe(self) -> str:
        """``2.0 s + 1.00 µs/row (1.0 M rows/s), ±3.1% over 3 sizes 50,000–1,000,000 rows``."""
        return (
            f"{self.fixed_s:.3g} s + {self.per_row_s * 1e6:.3g} µs/row ({self.rows_per_s:,.0f} rows/s), "
            f"{self.error_text()}"
        )

    def error_text(self) -> str:
        if self.points <= 2:  # a line through two points fits them exactly: no error to state
            return f"through {self.points} measurements of {self.min_rows:,}–{self.max_rows:,} rows (no error estimate)"
        return (
            f"±{self.relative_rms_error:.1%} RMS over {self.points} measurements of "
            f"{self.min_rows:,}–{self.max_rows:,} rows"
        )

    def anchored(self, point: CostPoint) -> CostModel:
        """This model's per-row part with the fixed part of ``point``: a step of a run does
        more fixed work (catch-up, re-checks, repair) than the calibration's bare step, and
        its own measurement says how much; the per-row part comes from the larger sizes."""
        fixed = max(0.0, point.seconds - self.per_row_s * point.rows)
        return CostModel(
            fixed_s=fixed,
            per_row_s=self.per_row_s,
            points=self.points,
            min_rows=self.min_rows,
            max_rows=self.max_rows,
            relative_rms_error=self.relative_rms_error,
        )


def parallelism(workers: int, partitions: int | None, efficiency: float = 1.0) -> float:
    """The effective parallelism of the per-row part: ``min(workers, partitions)`` workers
    (a partition is read by one worker at a time) at ``efficiency``; at least 1."""
    if workers < 1:
        raise ValueError(f"workers = {workers!r} is invalid: at least 1")
    if partitions is not None and partitions < 1:
        raise ValueError(f"partitions = {partitions!r} is invalid: at least 1 (or None: not partitioned)")
    if not 0.0 < efficiency <= 1.0:
        raise ValueError(f"efficiency = {efficiency!r} is invalid: a fraction in (0, 1]")
    effective = workers if partitions is None else min(workers, partitions)
    return max(1.0, effective * efficiency)


def fit(points: Sequence[CostPoint]) -> CostModel:
    """Least squares fit of ``seconds = fixed_s + per_row_s × rows`` to ``points``.

    The squares are of *relative* residuals (each point weighted by 1 / seconds²), so the
    small sizes, which pin the fixed part, count as much as the large ones, which pin the
    per-row part. A negative fixed part (noise at tiny sizes) is refitted as a line through
    the origin. Raises :class:`NotFitted` for fewer than two distinct sizes, or when the
    time does not grow with the rows.
    """
    usable = [p for p in points if p.rows > 0 and p.seconds > 0]
    sizes = sorted({p.rows for p in usable})
    if len(sizes) < 2:
        only = f" ({sizes[0]:,} rows)" if sizes else ""
        raise NotFitted(f"not fitted: one size only{only}; a fit needs measurements of two sizes or more")
    weights = [1.0 / (p.seconds * p.seconds) for p in usable]
    sw = sum(weights)
    sx = sum(w * p.rows for w, p in zip(weights, usable, strict=True))
    sy = sum(w * p.seconds for w, p in zip(weights, usable, strict=True))
    sxx = sum(w * p.rows * p.rows for w, p in zip(weights, usable, strict=True))
    sxy = sum(w * p.rows * p.seconds for w, p in zip(weights, usable, strict=True))
    det = sw * sxx - sx * sx
    per_row = (sw * sxy - sx * sy) / det
    fixed = (sy - per_row * sx) / sw
    if fixed < 0:
        fixed, per_row = 0.0, sxy / sxx
    if per_row <= 0:
        raise NotFitted(
            f"not fitted: the time does not grow with the rows over {sizes[0]:,}–{sizes[-1]:,} rows "
            "(the fixed part hides the per-row part at these sizes)"
        )
    residuals = [(fixed + per_row * p.rows - p.seconds) / p.seconds for p in usable]
    return CostModel(
        fixed_s=fixed,
        per_row_s=per_row,
        points=len(usable),
        min_rows=sizes[0],
        max_rows=sizes[-1],
        relative_rms_error=math.sqrt(sum(r * r for r in residuals) / len(residuals)),
    )


def fit_or_reason(points: Sequence[CostPoint]) -> CostModel | str:
    """:func:`fit`, or the sentence saying why there is no fit."""
    try:
        return fit(points)
    except NotFitted as exc:
        return str(exc)


# -- a projection row from a step's measurements -----------------------------------------------
# A step may report its own measurements of several sizes in its journaled ``extra`` under
# this key: ``[[rows, seconds], ...]``, e.g. the rows committed so far and the seconds
# since the step began at each commit. Two sizes or more make a "run" fit.
COST_POINTS_KEY = "cost_points"
# Efficiency of each added worker on the per-row part: not measured, stated as assumed.
ASSUMED_EFFICIENCY = 1.0


class PointRecorder:
    """What a step calls as it goes to report its own sizes: ``record(rows_so_far)`` after
    each commit stamps (rows, seconds since the step began); ``extra()`` is the entry for
    the step's ``StepResult.extra``. Each stamp is one size of the same step, so a step
    that commits several batches gets a "run" fit instead of a linear projection.

    Example::

        points = PointRecorder(clock.monotonic)
        for batch in batches:
            commit(batch)
            points.record(rows_so_far)
        StepResult(detail, rows=rows, rate_per_s=rate, extra={**points.extra(), "workers": 4})
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._began = clock()
        self._points: list[tuple[int, float]] = []

    def record(self, rows: int) -> None:
        self._points.append((rows, round(self._clock() - self._began, 6)))

    def extra(self) -> dict[str, object]:
        return {COST_POINTS_KEY: [list(p) for p in self._points]}


def step_points(extra: Mapping[str, object] | None) -> list[CostPoint]:
    """The (rows, seconds) pairs a step journaled under ``cost_points``; malformed pairs are
    left out (a step of another version may write another shape)."""
    raw = (extra or {}).get(COST_POINTS_KEY)
    points: list[CostPoint] = []
    if isinstance(raw, list | tuple):
        for item in raw:
            if isinstance(item, list | tuple) and len(item) == 2:
                rows, seconds = item
                if isinstance(rows, int | float) and isinstance(seconds, int | float):
                    points.append(CostPoint(int(rows), float(seconds)))
    return points


def step_parallelism(extra: Mapping[str, object] | None) -> float:
    """The run's parallelism on a step's per-row part: ``min(workers, partitions)`` from its
    ``extra`` (1 when it names neither)."""
    extra = extra or {}
    workers, partitions = extra.get("workers"), extra.get("partitions")
    return parallelism(
        workers if isinstance(workers, int) and workers >= 1 else 1,
        partitions if isinstance(partitions, int) and partitions >= 1 else None,
        ASSUMED_EFFICIENCY,
    )


def projection_row(
    phase: str,
    *,
    measured_s: float,
    rows: int,
    rate_per_s: float,
    projected_rows: int,
    extra: Mapping[str, object] | None = None,
    calibrated: CostModel | None = None,
    not_calibrated: str = "",
    production_workers: int | None = None,
    production_partitions: int | None = None,
) -> ProjectionRow:
    """A step's projection to ``projected_rows``, with the best model its measurements allow:

    - ``calibrated`` (this machine's calibration of the step kind in the run's engines):
      its per-row part, the fixed part of this run's step (measured time less the per-row
      part of its rows: catch-up, re-checks, repair are fixed work the bare calibration
      does not do);
    - else the step's own ``cost_points`` of two sizes or more, fitted;
    - else linear from the one size measured (``rows`` at ``rate_per_s``), as the note says.

    The per-row part is stated per worker: measured at the run's parallelism
    (``workers``/``partitions`` in ``extra``), divided in production by production's own
    ``min(workers, partitions)`` where the scenario's production volume names them (each
    falls back to the run's), else by the run's again. A step that reports no workers runs
    in one worker anywhere.
    """
    parallel = step_parallelism(extra)
    in_production = production_parallelism(extra, production_workers, production_partitions)
    base = ProjectionRow(
        phase,
        measured_s,
        rows,
        rate_per_s,
        projected_rows,
        projected_rows * parallel / rate_per_s / in_production,
    )
    if calibrated is not None:
        model = calibrated.anchored(CostPoint(rows, measured_s))
        predicted = calibrated.seconds(rows)
        note = (
            f"per-row part from this machine's calibration ({calibrated.rows_per_s:,.0f} rows/s at "
            f"{calibrated.min_rows:,}–{calibrated.max_rows:,} rows), fixed part {model.fixed_s:.3g} s from "
            f"this run's step (the calibration's line gives {predicted:.3g} s for its {rows:,} rows)"
        )
        return _modelled(base, model, SOURCE_CALIBRATION, parallel=1.0, in_production=1.0, note=note)
    points = step_points(extra)
    own = fit_or_reason(points)
    workers_note = _workers_note(parallel, in_production)
    if isinstance(own, CostModel):
        note = f"fitted from the step's own measurements ({parallel:g} parallel){workers_note}"
        return _modelled(base, own, SOURCE_RUN, parallel=parallel, in_production=in_production, note=note)
    reason = not_calibrated or (own if points else "the step reports no measurements of other sizes")
    return replace(
        base,
        model_source=SOURCE_LINEAR,
        fixed_s=0.0,
        per_row_s=parallel / rate_per_s,
        fit_points=1,
        fit_min_rows=rows,
        fit_max_rows=rows,
        parallelism=in_production,
        note=f"linear from one size ({rows:,} rows at {rate_per_s:,.0f} rows/s): {reason}{workers_note}",
    )


def production_parallelism(
    extra: Mapping[str, object] | None, workers: int | None = None, partitions: int | None = None
) -> float:
    """A step's parallelism in production: ``min(workers, partitions)`` with production's
    figures where given, the run's (``extra``) where not. A step that reports no workers is
    not parallel, wherever it runs; one that reports no partitions (a backfill or a
    re-snapshot splits key ranges) is not bound by the topic's."""
    extra = extra or {}
    if not isinstance(extra.get("workers"), int):
        return step_parallelism(extra)
    overridden = dict(extra)
    if workers is not None:
        overridden["workers"] = workers
    if partitions is not None and "partitions" in extra:
        overridden["partitions"] = partitions
    return step_parallelism(overridden)


def _workers_note(parallel: float, in_production: float) -> str:
    if in_production == parallel:
        return ""
    return f"; {in_production:g} parallel in production (the per-row part divided among them)"


def _modelled(
    base: ProjectionRow, model: CostModel, source: str, *, parallel: float, in_production: float, note: str
) -> ProjectionRow:
    """``base`` projected with ``model`` measured at ``parallel`` workers, run in production
    at ``in_production``: the row states the per-row part per worker (so that projected_s =
    fixed_s + per_row_s × projected_rows / parallelism holds)."""
    assert base.projected_rows is not None
    per_worker = model.per_row_s * parallel
    return replace(
        base,
        projected_s=model.fixed_s + per_worker * base.projected_rows / in_production,
        model_source=source,
        fixed_s=model.fixed_s,
        per_row_s=per_worker,
        fit_error=model.relative_rms_error,
        fit_points=model.points,
        fit_min_rows=model.min_rows,
        fit_max_rows=model.max_rows,
        parallelism=in_production,
        note=note,
    )
