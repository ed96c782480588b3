"""The scenario: workload, SLOs, a fault schedule, recovery and expectations.

A scenario module under ``scenarios/`` builds one and names it ``SCENARIO``::

    SCENARIO = Scenario(
        name="metadata-loss",
        slos=(SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999),),
        schedule=(DeleteCatalogEntry(at_s=10),),
        recovery=Runbook(steps=(RestoreCatalogBackup(),)),
        expectations=Expectations(detect_within_s=15, recover_within_s=120),
    )
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SkipValidation, Strict, field_validator, model_validator
from pydantic.dataclasses import dataclass

from datadrill.model._base import MODEL_CONFIG
from datadrill.model.faults import BACKUP_ITEMS, ScheduleItem, TakeCatalogBackup, TakeReserveCopy
from datadrill.model.recovery import (
    Automatic,
    PauseComponent,
    Recovery,
    RestoreCatalogBackup,
    ResumeComponent,
    Runbook,
)
from datadrill.model.slo import SLO, ErrorBudgetPolicy, Target
from datadrill.model.stop import StopCondition


@dataclass(frozen=True, config=MODEL_CONFIG)
class Workload:
    rate: Annotated[float, Strict(), Field(ge=0, le=1_000_000, description="orders per second")] = 1000.0
    canary_interval_s: Annotated[float, Strict(), Field(gt=0, le=3600)] = 0.5


@dataclass(frozen=True, config=MODEL_CONFIG)
class SteadyState:
    """Before any fault: every SLI inside its SLO for ``warmup_s``, within ``timeout_s``."""

    warmup_s: Annotated[float, Strict(), Field(ge=0)] = 5.0
    timeout_s: Annotated[float, Strict(), Field(gt=0)] = 60.0


@dataclass(frozen=True, config=MODEL_CONFIG)
class Expectations:
    detect_within_s: Annotated[float | None, Strict(), Field(gt=0)] = None
    recover_within_s: Annotated[float | None, Strict(), Field(gt=0)] = None
    max_budget_burn: Annotated[
        float | None, Field(gt=0, description="fraction of the policy period's budget")
    ] = None


@dataclass(frozen=True, config=MODEL_CONFIG)
class ProductionVolume:
    """The volume to project recovery times to, and the parallelism production has.

    ``workers`` and ``partitions``: the workers a parallel recovery step (a replay, a
    backfill, a re-snapshot) would run with in production and the partitions of the topic
    it reads; a step's per-row part is divided by ``min(workers, partitions)`` there. Either
    left out is the run's own."""

    events_per_s: Annotated[float, Strict(), Field(gt=0)]
    table_rows: Annotated[int, Strict(), Field(gt=0)]
    workers: Annotated[int | None, Strict(), Field(ge=1, le=4096)] = None
    partitions: Annotated[int | None, Strict(), Field(ge=1, le=100_000)] = None


@dataclass(frozen=True, config=MODEL_CONFIG)
class Scenario:
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    slos: Annotated[tuple[SLO, ...], Field(min_length=1)]
    # Validated below against the fault registry, so plugin faults are accepted too.
    schedule: Annotated[tuple[ScheduleItem, ...], SkipValidation, Field(min_length=1)]
    description: str = ""
    workload: Workload = Workload()
    steady_state: SteadyState = SteadyState()
    recovery: Recovery = Automatic()
    expectations: Expectations = Expectations()
    # What the final integrity verification reconciles (verify_integrity): by default the
    # reference platform's source orders against its table; a source query of your own
    # against your table (an observe-only run verifies only such a target).
    target: Target = Target()
    probe_interval_s: Annotated[float, Strict(), Field(gt=0, le=60)] = 0.5
    stabilisation_s: Annotated[float, Strict(), Field(ge=0)] = 5.0
    max_duration_s: Annotated[float, Strict(), Field(gt=0, le=86_400)] = 300.0
    verify_integrity: bool = True
    production: ProductionVolume | None = None
    error_budget_policy: ErrorBudgetPolicy = ErrorBudgetPolicy()
    # Hard limits that abort the run at once (model/stop.py).
    stop_when: tuple[StopCondition, ...] = ()

    @field_validator("schedule", mode="before")
    @classmethod
    def _known_items(cls, value: Any) -> tuple[Any, ...]:
        from datadrill.faults.registry import spec_types

        if not isinstance(value, (tuple, list)) or not value:
            raise ValueError("expected a non-empty tuple of faults and backups")
        allowed: tuple[type[Any], ...] = (*BACKUP_ITEMS, *spec_types())
        for index, item in enumerate(value):
            if not isinstance(item, allowed):
                names = ", ".join(sorted(t.__name__ for t in allowed))
                raise ValueError(f"schedule[{index}] is {item!r}, not a known fault; known: {names}")
        return tuple(value)

    @model_validator(mode="after")
    def _no_overlapping_exclusive_faults(self) -> Scenario:
        from datadrill.faults.registry import plugin_for

        windows: list[tuple[str, float, float, str]] = []
        for item in self.faults:
            key = plugin_for(item.kind).exclusive_key(item)
            if key is None:
                continue
            length = getattr(item, "duration_s", None)
            if length is None:
                length = getattr(item, "effect_s", None)
            # Without a duration the fault lasts until recovery: it excludes everything after it.
            end = item.at_s + length if length is not None else float("inf")
            for other_key, start, other_end, text in windows:
                if other_key == key and item.at_s < other_end and start < end:
                    raise ValueError(
                        f"faults overlap on {key}: '{text}' (from {start:g} s) and '{item.describe()}' "
                        f"(from {item.at_s:g} s); give one a duration_s that ends before the other starts"
                    )
            windows.append((key, item.at_s, end, item.describe()))
        return self

    @model_validator(mode="after")
    def _schedule_fits(self) -> Scenario:
        if self.stabilisation_s >= self.max_duration_s:
            raise ValueError(
                f"stabilisation_s {self.stabilisation_s:g} leaves no time to recover within "
                f"max_duration_s {self.max_duration_s:g}"
            )
        for item in self.schedule:
            duration = getattr(item, "duration_s", None)
            if duration is not None and item.at_s + duration >= self.max_duration_s:
                raise ValueError(
                    f"'{item.describe()}' lasts until {item.at_s + duration:g} s, past max_duration_s = "
                    f"{self.max_duration_s:g} s: the run could never see the recovery"
                )
            if item.at_s >= self.max_duration_s:
                raise ValueError(
                    f"'{item.describe()}' at {item.at_s:g} s would never happen: the run gives up "
                    f"after max_duration_s = {self.max_duration_s:g} s"
                )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = [slo.name for slo in self.slos]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"SLO names must be unique; repeated: {duplicates}")
        if not any(not isinstance(item, BACKUP_ITEMS) for item in self.schedule):
            raise ValueError("the schedule needs at least one fault")
        for index, condition in enumerate(self.stop_when):
            slo = getattr(condition, "slo", None)
            if slo is not None and slo not in names:
                raise ValueError(
                    f"stop_when[{index}] names the SLO {slo!r}; this scenario's SLOs are {names}"
                )
        backups = {item.name for item in self.schedule if isinstance(item, TakeCatalogBackup)}
        if isinstance(self.recovery, Runbook):
            kinds = [step.kind for step in self.recovery.steps]
            for index, kind in enumerate(kinds):
                if kind != "replay_kafka":
                    continue
                paused = [
                    i
                    for i, step in enumerate(self.recovery.steps)
                    if isinstance(step, PauseComponent) and step.component == "sink" and i < index
                ]
                resumed = [
                    i
                    for i, step in enumerate(self.recovery.steps)
                    if isinstance(step, ResumeComponent) and step.component == "sink" and i > index
                ]
                if not paused or not resumed:
                    raise ValueError(
                        "replay_kafka writes the sink's table: pause the sink before it and resume it after "
                        "(PauseComponent(component='sink'), ..., ReplayKafka(), ResumeComponent(component='sink'))"
                    )
            for step in _all_steps(self.recovery.steps):
                if isinstance(step, RestoreCatalogBackup) and step.backup not in backups:
                    raise ValueError(
                        f"recovery restores backup {step.backup!r} but the schedule takes "
                        f"{sorted(backups) or 'no backups'}"
                    )
            reserves = {item.name for item in self.schedule if isinstance(item, TakeReserveCopy)}
            for step in _all_steps(self.recovery.steps):
                reserve = getattr(step, "reserve", None)
                if step.kind == "backfill_from_reserve" and reserve not in reserves:
                    raise ValueError(
                        f"recovery backfills from reserve {reserve!r} but the schedule takes "
                        f"{sorted(reserves) or 'no reserve copies'} (TakeReserveCopy(at_s=..., name=...))"
                    )
        return self

    @property
    def faults(self) -> tuple[ScheduleItem, ...]:
        return tuple(item for item in self.schedule if not isinstance(item, BACKUP_ITEMS))


def _all_steps(steps: tuple[Any, ...]) -> tuple[Any, ...]:
    """The runbook's steps and those of the paths a step holds (``Compare``), in order."""
    found: list[Any] = []
    for step in steps:
        found.append(step)
        for path in getattr(step, "paths", ()):
            found.extend(_all_steps(tuple(getattr(path, "steps", ()))))
    return tuple(found)
