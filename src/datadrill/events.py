"""The run journal's events, typed: one pydantic model per event type, a discriminated
union on ``type``.

Every event carries ``seq`` (its number in the journal), ``t`` (seconds since the run
started, monotonic clock), ``mono`` (the monotonic clock's reading) and ``wall`` (a label,
never used for durations); the journal stamps them as it writes. The defaults of fields a
journal may lack live here, once; :mod:`datadrill.engine.measure` reads typed fields.

Reading is lenient where journals of other versions need it, strict everywhere else:

- Journals written before events were typed (plain dicts with the same fields) parse: no
  field the earlier runner did not write is required, and recovery-step phases without a
  ``step`` get it from their name (the only place names are matched).
- A field a newer version adds to a known event is dropped on reading; building an event
  in code with an unknown field is an error (so a typo in the runner fails, not vanishes).
- An event type this version does not know becomes an :class:`UnknownEvent` that keeps
  every field: a journal of a newer version still yields the report this version can
  make, and rewriting a journal keeps its events. A typo in ``type`` therefore does not
  fail on reading, which is why events are built from these classes, not from strings.
- ``t`` is required on reading: an undated event cannot be placed on the timeline.

Example::

    event = parse_event({"type": "sample", "t": 1.5, "wall": "...", "slo": "q", "good": True})
    isinstance(event, Sample), event.value        # True, None
    events = read_events(run_dir / "journal.jsonl")
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from datadrill import jsonl
from datadrill.errors import ConfigError
from datadrill.model.report import Verdict
from datadrill.model.slo import ErrorBudgetPolicy

# The validation context while reading a journal (compared by identity); building events
# in code has none.
_READING: dict[str, str] = {"datadrill.events": "reading"}

# The scenario's default budget policy, for a journal whose run_started lacks one.
_DEFAULT_POLICY = ErrorBudgetPolicy()

PhaseKind = Literal["steady_state", "fault", "revert", "recovery_step", "verification"]

# Phase names of recovery steps journaled before phases carried their ``step``: the
# beginnings of each step's ``describe()`` in datadrill.model.recovery, and its kind.
_LEGACY_STEP_NAMES = (
    ("restore the catalog", "restore_catalog_backup"),
    ("re-register ", "reregister_from_metadata"),
    ("replay", "replay_kafka"),
    ("reconcile", "reconcile"),
    ("pause the ", "pause_component"),
    ("resume the ", "resume_component"),
    ("roll the producer back", "rollback_producer"),
    ("reprocess the dead letters", "reprocess_dead_letters"),
)


def legacy_step_kind(name: str) -> str | None:
    """The step kind of a recovery-step phase journaled without one, from its name."""
    lowered = name.lower()
    return next((kind for prefix, kind in _LEGACY_STEP_NAMES if lowered.startswith(prefix)), None)


@functools.cache
def _field_names(cls: type[BaseModel]) -> frozenset[str]:
    return frozenset(cls.model_fields)


class _Model(BaseModel):
    """Frozen; unknown fields are an error when built in code and dropped when read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _read(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context is _READING and isinstance(data, dict):
            return cls._from_journal(data)
        return data

    @classmethod
    def _from_journal(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A record read from a journal, made ready for validation: fields a newer version
        added are dropped (an :class:`UnknownEvent` keeps them all)."""
        if cls.model_config.get("extra") != "forbid":
            return data
        names = _field_names(cls)
        return {key: value for key, value in data.items() if key in names}


class EventBase(_Model):
    """What every event has; the journal stamps it when it writes the event."""

    seq: int = 0  # 0: a journal written by hand, without numbers
    t: float = 0.0  # stamped by the journal; required when read
    mono: float | None = None
    wall: str = ""

    @classmethod
    def _from_journal(cls, data: dict[str, Any]) -> dict[str, Any]:
        if "t" not in data:
            raise ValueError("an event read from a journal needs 't' (seconds since the run started)")
        return super()._from_journal(data)


# -- run_started and its parts -------------------------------------------------------------
class SLOInfo(_Model):
    name: str
    statement: str
    kind: str  # the SLI's kind: "freshness", "query_success", ...
    unit: str
    objective: float
    alert: str
    threshold: float | None = None


class ScheduleInfo(_Model):
    kind: str
    at_s: float
    description: str


class ExpectationsInfo(_Model):
    detect_within_s: float | None = None
    recover_within_s: float | None = None
    max_budget_burn: float | None = None


class ProductionInfo(_Model):
    events_per_s: float
    table_rows: int
    workers: int | None = None  # None: the run's own (journals before production named them)
    partitions: int | None = None


class PolicyInfo(_Model):
    period_days: float = _DEFAULT_POLICY.period_days
    postmortem_at: float = _DEFAULT_POLICY.postmortem_at
    freeze_at: float = _DEFAULT_POLICY.freeze_at


class RunStarted(EventBase):
    type: Literal["run_started"] = "run_started"
    scenario: str
    run_id: str = ""
    description: str = ""
    seed: int = 0
    stack: str = "embedded"
    probe_interval_s: float = 0.5
    stabilisation_s: float = 0.0
    workload_rate: float | None = None
    # The stack ran no reference platform: datadrill injected and measured, wrote nothing.
    observe_only: bool = False
    slos: tuple[SLOInfo, ...] = ()
    schedule: tuple[ScheduleInfo, ...] = ()
    expectations: ExpectationsInfo = ExpectationsInfo()
    production: ProductionInfo | None = None
    policy: PolicyInfo = PolicyInfo()


# -- during the run --------------------------------------------------------------------------
class Sample(EventBase):
    type: Literal["sample"] = "sample"
    slo: str
    good: bool
    value: float | None = None
    error: str | None = None


class AlertFired(EventBase):
    type: Literal["alert_fired"] = "alert_fired"
    slo: str
    rule: str = ""
    # When the probe round whose sample fired it was issued (run seconds). Detection is
    # dated like recovery, by the round and not by when its answers came back, so the
    # probes' own latency is in neither. None in journals written before it existed.
    observed_t: float | None = None

    @property
    def at(self) -> float:
        """The alert's time: its round's issue time, or the event's own for old journals."""
        return self.observed_t if self.observed_t is not None else self.t


class FaultInjected(EventBase):
    type: Literal["fault_injected"] = "fault_injected"
    fault_id: int
    kind: str
    description: str
    landed: str = ""  # what the plugin saw take effect ("" in journals of older versions)


class FaultReverted(EventBase):
    type: Literal["fault_reverted"] = "fault_reverted"
    fault_id: int
    kind: str = ""
    description: str = ""
    note: str = ""


class BackupTaken(EventBase):
    type: Literal["backup_taken"] = "backup_taken"
    name: str
    snapshot_id: int | None = None
    rows: int | None = None


class ReserveTaken(EventBase):
    """A reserve copy was written (``TakeReserveCopy``): the table's rows at one snapshot,
    as Parquet files under the state directory (``path``, relative to it)."""

    type: Literal["reserve_taken"] = "reserve_taken"
    name: str
    table: str = ""
    snapshot_id: int | None = None
    rows: int = 0
    key_min: int | None = None
    key_max: int | None = None
    files: int = 0
    path: str = ""


class _PhaseEvent(EventBase):
    name: str
    kind: PhaseKind
    # The kind of a recovery step ("replay_kafka", "reconcile", ... as in
    # datadrill.model.recovery); None for other phases. A plain string: a newer step kind
    # must not make a journal unreadable.
    step: str | None = None

    @classmethod
    def _from_journal(cls, data: dict[str, Any]) -> dict[str, Any]:
        data = super()._from_journal(data)
        if (
            data.get("kind") == "recovery_step"
            and data.get("step") is None
            and isinstance(data.get("name"), str)
        ):
            data["step"] = legacy_step_kind(data["name"])
        return data


class PhaseStarted(_PhaseEvent):
    type: Literal["phase_started"] = "phase_started"


class PhaseFinished(_PhaseEvent):
    type: Literal["phase_finished"] = "phase_finished"
    ok: bool = True
    rows: int | None = None
    rate_per_s: float | None = None
    detail: str = ""
    extra: dict[str, Any] | None = None  # what the step measured, e.g. reconcile's counts


class Recovered(EventBase):
    type: Literal["recovered"] = "recovered"
    stable_since: float
    stable_for_s: float = 0.0


class IntegrityVerified(EventBase):
    type: Literal["integrity_verified"] = "integrity_verified"
    compared_rows: int
    duplicates: int
    omissions: int
    discrepancies: int
    unexpected: int
    verified: bool
    detail: str = ""


class LeftoverReverted(EventBase):
    type: Literal["leftover_reverted"] = "leftover_reverted"
    kind: str
    description: str = ""
    note: str = ""
    ok: bool = True


class ComponentResumed(EventBase):
    type: Literal["component_resumed"] = "component_resumed"
    component: str
    pid: int | None = None
    note: str = ""


class HarnessError(EventBase):
    """The harness itself failed; the run's verdict is "error"."""

    type: Literal["error"] = "error"
    message: str
    traceback: str = ""


class LeaseExpired(EventBase):
    """Written into a dead run's journal by the stack's reaper: the runner stopped renewing
    its run lease, and the stack reverted the run's faults by itself."""

    type: Literal["lease_expired"] = "lease_expired"
    run_id: str
    lease_s: float | None = None
    reverted: int = 0
    failed: int = 0


class StopConditionCrossed(EventBase):
    """A scenario's stop condition was crossed: the run aborts, every fault reverted."""

    type: Literal["stop_condition"] = "stop_condition"
    condition: str
    value: float | None = None
    detail: str = ""


class PrometheusRuleInfo(_Model):
    """An alerting rule of the Prometheus the run watches, with the labels that tie it to
    an SLO (``slo``, ``severity``, ``scenario``; empty when the rule has none)."""

    name: str
    slo: str = ""
    severity: str = ""
    scenario: str = ""


class PrometheusWatchStarted(EventBase):
    """The run watches a Prometheus server's alerts (``--alert-rules`` or
    ``[prometheus] url``); ``rules`` are its alerting rules that concern this run."""

    type: Literal["prometheus_watch_started"] = "prometheus_watch_started"
    url: str
    throwaway: bool = False
    rules: tuple[PrometheusRuleInfo, ...] = ()


class PrometheusAlert(EventBase):
    """An alert of the watched Prometheus changed state (``pending``, ``firing``, or
    ``inactive`` once it is gone), as the runner observed it: ``t`` is the runner's clock
    at the poll that saw it; ``active_at`` is Prometheus's own label (RFC 3339)."""

    type: Literal["prometheus_alert"] = "prometheus_alert"
    rule: str
    state: Literal["pending", "firing", "inactive"]
    active_at: str = ""
    slo: str = ""
    severity: str = ""


class CalibrationPointsInfo(_Model):
    """One calibrated step kind in one pair of engines ("sqlite→duckdb"): (rows, seconds)
    measured at several sizes (datadrill.engine.calibration)."""

    step: str
    engines: str
    description: str = ""
    points: tuple[tuple[int, float], ...] = ()


class ProjectionCalibrated(EventBase):
    """What the projection at production volume may fit its cost models from, journaled at
    the start of a run with a production volume: this machine's calibration (cached or run
    now) and the engines this run reconciles in. The measurements are journaled, not the
    fit, so the report fits them (datadrill.engine.cost_model) as a pure function of the
    journal. ``steps`` is empty and ``note`` says why when there is no calibration."""

    type: Literal["projection_calibrated"] = "projection_calibrated"
    key: str = ""  # "datadrill 0.1.0 on host (2 CPUs)"
    created_wall: str = ""
    cached: bool = False
    took_s: float | None = None
    run_engines: str = ""  # the engines this run's reconciliations use, "sqlite→duckdb"
    steps: tuple[CalibrationPointsInfo, ...] = ()
    note: str = ""


class RunFinished(EventBase):
    type: Literal["run_finished"] = "run_finished"
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    harness_probe_s: float | None = None


class UnknownEvent(EventBase):
    """An event of a type this version does not know (a newer version wrote it); every
    field is kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str


KnownEvent = (
    RunStarted
    | Sample
    | AlertFired
    | FaultInjected
    | FaultReverted
    | BackupTaken
    | ReserveTaken
    | PhaseStarted
    | PhaseFinished
    | Recovered
    | IntegrityVerified
    | LeftoverReverted
    | ComponentResumed
    | HarnessError
    | LeaseExpired
    | StopConditionCrossed
    | PrometheusWatchStarted
    | PrometheusAlert
    | ProjectionCalibrated
    | RunFinished
)
_KNOWN: tuple[type[EventBase], ...] = (
    RunStarted,
    Sample,
    AlertFired,
    FaultInjected,
    FaultReverted,
    BackupTaken,
    ReserveTaken,
    PhaseStarted,
    PhaseFinished,
    Recovered,
    IntegrityVerified,
    LeftoverReverted,
    ComponentResumed,
    HarnessError,
    LeaseExpired,
    StopConditionCrossed,
    PrometheusWatchStarted,
    PrometheusAlert,
    ProjectionCalibrated,
    RunFinished,
)
KNOWN_TYPES: frozenset[str] = frozenset(cls.model_fields["type"].default for cls in _KNOWN)
_UNKNOWN_TAG = "(unknown)"


def _tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return None  # pydantic reports the missing or non-string "type"
    return kind if kind in KNOWN_TYPES else _UNKNOWN_TAG


Event = Annotated[
    Annotated[RunStarted, Tag("run_started")]
    | Annotated[Sample, Tag("sample")]
    | Annotated[AlertFired, Tag("alert_fired")]
    | Annotated[FaultInjected, Tag("fault_injected")]
    | Annotated[FaultReverted, Tag("fault_reverted")]
    | Annotated[BackupTaken, Tag("backup_taken")]
    | Annotated[ReserveTaken, Tag("reserve_taken")]
    | Annotated[PhaseStarted, Tag("phase_started")]
    | Annotated[PhaseFinished, Tag("phase_finished")]
    | Annotated[Recovered, Tag("recovered")]
    | Annotated[IntegrityVerified, Tag("integrity_verified")]
    | Annotated[LeftoverReverted, Tag("leftover_reverted")]
    | Annotated[ComponentResumed, Tag("component_resumed")]
    | Annotated[HarnessError, Tag("error")]
    | Annotated[LeaseExpired, Tag("lease_expired")]
    | Annotated[StopConditionCrossed, Tag("stop_condition")]
    | Annotated[PrometheusWatchStarted, Tag("prometheus_watch_started")]
    | Annotated[PrometheusAlert, Tag("prometheus_alert")]
    | Annotated[ProjectionCalibrated, Tag("projection_calibrated")]
    | Annotated[RunFinished, Tag("run_finished")]
    | Annotated[UnknownEvent, Tag(_UNKNOWN_TAG)],
    Discriminator(_tag, custom_error_type="event_type", custom_error_message="an event needs a 'type'"),
]
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

# The order of the first keys of a journal line, as journals have always been written.
_HEADER = ("seq", "type", "t", "mono", "wall")


def parse_event(data: Mapping[str, Any]) -> Event:
    """The typed event of one journal record; ``pydantic.ValidationError`` if it is not one."""
    return _ADAPTER.validate_python(dict(data), context=_READING)


def event_record(event: EventBase) -> dict[str, Any]:
    """The journal line of ``event``, as a dict: the header first, then its own fields."""
    data = event.model_dump(mode="json", fallback=str)
    return {**{key: data.pop(key) for key in _HEADER}, **data}


def _describe(exc: ValidationError) -> tuple[str, object, str]:
    """(field, value, message) of the first error, one line."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    # The union's tag leads the location; a model's own fields follow it.
    where = ".".join(str(part) for part in first["loc"]) or "(event)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return where, first.get("input"), f"{first['msg']}{more}"


def read_events(path: Path) -> list[Event]:
    """Every event in a journal, typed. A torn last line (the writer was killed mid-write)
    is ignored; a malformed line or a record that is not a valid event is a
    :class:`ConfigError` naming the file, the line and the field."""
    events: list[Event] = []
    for number, record in jsonl.iter_records(
        path, what="journal file", expected="a journal event (one JSON object per line)"
    ):
        try:
            events.append(parse_event(record))
        except ValidationError as exc:
            field, value, message = _describe(exc)
            if isinstance(value, dict | list):  # the whole record: show its beginning
                value = json.dumps(value)[:80]
            raise ConfigError(str(path), f"line {number}: {field}", value, message) from None
    return events


__all__ = [
    "KNOWN_TYPES",
    "AlertFired",
    "BackupTaken",
    "ComponentResumed",
    "Event",
    "EventBase",
    "ExpectationsInfo",
    "FaultInjected",
    "FaultReverted",
    "HarnessError",
    "IntegrityVerified",
    "KnownEvent",
    "LeftoverReverted",
    "PhaseFinished",
    "PhaseKind",
    "PhaseStarted",
    "PolicyInfo",
    "ProductionInfo",
    "PrometheusAlert",
    "PrometheusRuleInfo",
    "PrometheusWatchStarted",
    "Recovered",
    "ReserveTaken",
    "RunFinished",
    "RunStarted",
    "SLOInfo",
    "Sample",
    "ScheduleInfo",
    "UnknownEvent",
    "event_record",
    "legacy_step_kind",
    "parse_event",
    "read_events",
]
