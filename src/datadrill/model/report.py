"""What a run measured, derived from its journal; every reporter renders this.

Times are seconds from the start of the run (monotonic clock); ``*_wall`` fields are
ISO-8601 labels only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    PASSED = "passed"
    SLO_VIOLATED = "SLO violated"
    NOT_DETECTED = "not detected"
    NOT_RECOVERED = "not recovered"
    ABORTED = "aborted"
    ERROR = "error"


class Severity(StrEnum):
    SEV1 = "SEV-1"
    SEV2 = "SEV-2"
    SEV3 = "SEV-3"
    NONE = "none"


@dataclass(frozen=True)
class SeriesPoint:
    t_s: float
    value: float | None  # None: the SLI could not be measured (counts as bad)
    good: bool


@dataclass(frozen=True)
class SLOResult:
    name: str
    statement: str  # "dwh.orders no older than 30 s, 99.9% of the time"
    sli_kind: str  # "freshness", "query_success", ...
    unit: str  # "s", "messages", "ok", ...
    threshold: float | None  # the SLI's good/bad boundary, for plots (None for query success)
    objective: float  # 0.999
    alert: str  # "bad for 5 s"
    samples: int
    good_samples: int
    bad_s: float  # time the SLI was bad during the run
    observed_s: float  # time observed
    good_ratio: float  # good time / observed time
    budget_burned: float  # bad time / (allowed bad fraction × observed time); 1.0 = whole budget
    period_budget_burned: float  # bad time / (allowed bad fraction × policy period)
    met: bool  # good_ratio >= objective
    first_alert_s: float | None
    worst_value: float | None
    series: tuple[SeriesPoint, ...] = ()


@dataclass(frozen=True)
class PhaseResult:
    name: str  # "steady state", "restore catalog from backup 'nightly'", ...
    kind: str  # "steady_state", "fault", "recovery_step", "verification", ...
    start_s: float
    duration_s: float
    rows: int | None = None
    rate_per_s: float | None = None
    detail: str = ""
    ok: bool = True


@dataclass(frozen=True)
class FaultResult:
    kind: str
    description: str
    injected_s: float
    reverted_s: float | None
    revert_note: str = ""


@dataclass(frozen=True)
class IntegrityResult:
    compared_rows: int
    duplicates: int
    omissions: int
    discrepancies: int
    unexpected: int
    repaired_rows: int
    verified: bool
    detail: str = ""

    @property
    def affected(self) -> int:
        return self.duplicates + self.omissions + self.discrepancies + self.unexpected


@dataclass(frozen=True)
class BackupResult:
    name: str
    taken_s: float
    snapshot_id: int | None
    rows_at_backup: int | None
    age_at_fault_s: float | None  # the RPO this backup gives


@dataclass(frozen=True)
class ProjectionRow:
    phase: str
    measured_s: float
    measured_rows: int | None
    rate_per_s: float | None
    projected_rows: int | None
    projected_s: float
    # The cost model behind projected_s (datadrill.engine.cost_model): projected_s =
    # fixed_s + per_row_s × projected_rows / parallelism. ``model_source`` is
    # "calibration" (per-row part from this machine's calibration, fixed part from this
    # run), "run" (fitted from the step's own measurements of several sizes), "linear"
    # (the measured rate from one size, scaled) or "" (no rows: the same time).
    model_source: str = ""
    fixed_s: float | None = None
    per_row_s: float | None = None
    fit_error: float | None = None  # relative RMS residual of the fit over its points
    fit_points: int = 0
    fit_min_rows: int | None = None
    fit_max_rows: int | None = None
    parallelism: float = 1.0  # min(workers, partitions) × efficiency, on the per-row part
    note: str = ""  # why this model (e.g. "not fitted: one size only")


@dataclass(frozen=True)
class Projection:
    events_per_s: float
    table_rows: int
    rows: tuple[ProjectionRow, ...]
    total_s: float
    assumptions: str
    # True when the run journaled what cost models may be fitted from (projection_calibrated);
    # older journals were projected linearly and render as they always did.
    modelled: bool = False


@dataclass(frozen=True)
class PathStepResult:
    """One step of a recovery path a ``Compare`` ran: ``measured`` when it ran in its
    measurement mode only (the read side; nothing applied)."""

    phase: str
    step: str  # the step's kind
    measured: bool
    ok: bool
    measured_s: float
    rows: int | None
    rate_per_s: float | None
    projected_rows: int | None
    projected_s: float | None  # None: not projected (no production volume, failed)


@dataclass(frozen=True)
class PathResult:
    """A recovery path of a ``Compare``, measured (or applied) on the run's loss and
    projected to production volume."""

    name: str
    applied: bool
    steps: tuple[PathStepResult, ...]
    measured_s: float
    rows: int | None
    projected_s: float | None  # None when a step failed or nothing was projected
    meets_objective: bool | None  # projected_s ≤ recover_within_s; None when either is unknown

    @property
    def rate_per_s(self) -> float | None:
        return self.rows / self.measured_s if self.rows is not None and self.measured_s > 0 else None


@dataclass(frozen=True)
class Comparison:
    """Recovery paths side by side on the same loss (``Compare``), one of them applied."""

    applied: str
    paths: tuple[PathResult, ...]
    recover_within_s: float | None
    events_per_s: float | None  # the production volume projected to (None: none given)
    assumptions: str = ""


@dataclass(frozen=True)
class RowSource:
    """Where recovered rows came from: a restored backup, a Kafka replay, a reserve
    backfill, a re-snapshot or a repair from the source, with the phase that brought them."""

    source: str
    phase: str
    rows: int


@dataclass(frozen=True)
class Stage:
    """A stage of the incident as the run lived it (loss, paths weighed, recovery,
    verification): when it began and ended and what happened, one line each."""

    name: str
    start_s: float
    end_s: float
    lines: tuple[str, ...]


@dataclass(frozen=True)
class TimelineEntry:
    t_s: float
    wall: str
    kind: str  # "phase", "fault", "revert", "alert", "recovery", "backup", "integrity", "verdict", ...
    text: str


@dataclass(frozen=True)
class PrometheusRuleResult:
    """An alerting rule of the Prometheus the run watched: when the runner saw it pending
    and firing (seconds from the run's start), its time to fire after the first fault, and
    datadrill's own time to detect for the same SLO, to compare."""

    rule: str
    slo: str  # "" when the rule carries no slo label
    severity: str
    pending_s: float | None
    firing_s: float | None
    time_to_fire_s: float | None  # firing − first fault; None if it never fired after it
    datadrill_ttd_s: float | None  # datadrill's first alert on the SLO − first fault

    @property
    def fired(self) -> bool:
        return self.time_to_fire_s is not None


@dataclass(frozen=True)
class RunReport:
    run_id: str
    scenario: str
    description: str
    verdict: Verdict
    reasons: tuple[str, ...]  # why the verdict (one line each)
    complete: bool  # False when the journal ends without run_finished (runner killed)
    started_wall: str
    duration_s: float
    seed: int
    stack: str  # "embedded"
    fault_start_s: float | None
    detected_s: float | None
    ttd_s: float | None  # time to detect = first alert − fault start
    recovered_s: float | None
    ttr_s: float | None  # time to recover = fault start → SLIs stable and integrity verified
    detect_within_s: float | None
    recover_within_s: float | None
    severity: Severity
    release_freeze: bool
    postmortem_required: bool
    probe_interval_s: float
    stabilisation_s: float
    slos: tuple[SLOResult, ...]
    phases: tuple[PhaseResult, ...]
    faults: tuple[FaultResult, ...]
    integrity: IntegrityResult | None
    backups: tuple[BackupResult, ...]
    rows_replayed: int | None
    replay_rate_per_s: float | None
    projection: Projection | None
    timeline: tuple[TimelineEntry, ...]
    went_well: tuple[str, ...] = field(default=())
    went_badly: tuple[str, ...] = field(default=())
    action_items: tuple[str, ...] = field(default=())
    journal_path: str = ""
    # The expectation on the budget a drill may burn (a fraction of the policy period's
    # budget) and that period, from the scenario (None in reports of older journals).
    max_budget_burn: float | None = None
    budget_period_days: float | None = None
    # The Prometheus whose alerts the run watched (--alert-rules, [prometheus] url) and what
    # each of its rules did; None and () when the run watched none.
    prometheus_url: str | None = None
    prometheus_rules: tuple[PrometheusRuleResult, ...] = ()
    # What the reader must know to read the figures (an observe-only run), one line each.
    notes: tuple[str, ...] = ()
    # Recovery paths measured side by side (a Compare step), where recovered rows came
    # from, and the incident's stages; None and () when the runbook held no such steps.
    comparison: Comparison | None = None
    row_sources: tuple[RowSource, ...] = ()
    stages: tuple[Stage, ...] = ()
