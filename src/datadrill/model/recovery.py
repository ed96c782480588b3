"""Recovery: automatic (the platform heals itself) or a runbook of timed steps.

Example::

    Runbook(steps=(PauseComponent(component="sink"), RestoreCatalogBackup(backup="nightly"),
                   ReplayKafka(workers=4), ResumeComponent(component="sink"),
                   Reconcile(repair=True)),
            response_delay_s=2)

A third-party step is any frozen dataclass following :class:`StepSpec` with a kind of its
own, run by an implementation registered for that kind (``datadrill.recovery`` entry points).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol, get_args, runtime_checkable

from pydantic import Field, PlainValidator, Strict, model_validator
from pydantic.dataclasses import dataclass

from datadrill.config import COMPONENT_NAME_PATTERN
from datadrill.model._base import MODEL_CONFIG
from datadrill.model.faults import RESERVE_NAME_PATTERN, TABLE_PATTERN
from datadrill.model.slo import DEFAULT_SOURCE_QUERY, Target, spec_kind


@runtime_checkable
class StepSpec(Protocol):
    """What the runner needs of a runbook step, built-in or a plugin's: the kind that picks
    its implementation (see :mod:`datadrill.recovery.registry`) and a phrase for reports."""

    @property
    def kind(self) -> str: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, config=MODEL_CONFIG)
class RestoreCatalogBackup:
    """Point the catalog back at the metadata of a backup taken earlier in the run."""

    backup: Annotated[str, Field(min_length=1)] = "nightly"
    kind: Literal["restore_catalog_backup"] = "restore_catalog_backup"

    def describe(self) -> str:
        return f"restore the catalog from backup '{self.backup}'"


@dataclass(frozen=True, config=MODEL_CONFIG)
class ReregisterFromMetadata:
    """Register the table again from its newest surviving ``*.metadata.json``."""

    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    kind: Literal["reregister_from_metadata"] = "reregister_from_metadata"

    def describe(self) -> str:
        return f"re-register {self.table} from its newest surviving metadata file"


@dataclass(frozen=True, config=MODEL_CONFIG)
class ReplayKafka:
    """Re-ingest Kafka into the table, from the offsets the table's snapshot records
    (``start="table_offsets"``) or from each partition's low watermark (``"earliest"``: what
    retention left), up to the high watermarks seen when the step starts, with ``workers``
    partitions in parallel; either way the table's event ids drop what it already holds.
    The step reports the offsets it could not reach (retention deleted them first, or the
    topic was recreated): those rows need the source or a reserve."""

    workers: Annotated[int, Strict(), Field(ge=1, le=64)] = 4
    start: Literal["table_offsets", "earliest"] = "table_offsets"
    batch_rows: Annotated[int, Strict(), Field(ge=1)] = 200_000
    kind: Literal["replay_kafka"] = "replay_kafka"

    def describe(self) -> str:
        return f"replay Kafka from {self.start.replace('_', ' ')} with {self.workers} workers"


@dataclass(frozen=True, config=MODEL_CONFIG)
class Reconcile:
    """Compare source and sink (counts per key range, then hash bisection to rows) and,
    with ``repair``, delete duplicates and unexpected rows and insert omissions."""

    repair: bool = True
    buckets: Annotated[int, Strict(), Field(ge=2, le=65_536)] = 64
    kind: Literal["reconcile"] = "reconcile"
    # What is compared: target.source_query against target.table, on target.key_column and
    # target.columns (datadrill.integrity.targets). The default is the reference platform's.
    target: Target = Target()

    @model_validator(mode="after")
    def _repair_only_the_reference(self) -> Reconcile:
        # A repair writes rows in the reference table's schema, built from the orders source
        # (integrity.repair): on any other table it would write wrong rows, so it is refused.
        t = self.target
        reference = (t.table, t.key_column, t.columns, t.source_query) == (
            "dwh.orders",
            "order_id",
            (),
            DEFAULT_SOURCE_QUERY,
        )
        if self.repair and not reference:
            raise ValueError(
                f"repair=True rewrites rows of the reference table (dwh.orders, from the orders "
                f"source) and cannot repair {t.table}; set repair=False to reconcile it and "
                "report what differs"
            )
        return self

    def describe(self) -> str:
        what = "source against sink" if self.target == Target() else f"{self.target.table} against its source"
        return f"reconcile {what}" + (" and repair" if self.repair else "")


@dataclass(frozen=True, config=MODEL_CONFIG)
class PauseComponent:
    """Stop a component (SIGTERM) and keep it stopped until resumed: any component of the
    stack, reference or declared (a Kafka Connect connector: ``PUT .../pause``)."""

    component: Annotated[str, Field(pattern=COMPONENT_NAME_PATTERN)] = "sink"
    kind: Literal["pause_component"] = "pause_component"

    def describe(self) -> str:
        return f"pause the {self.component}"


@dataclass(frozen=True, config=MODEL_CONFIG)
class ResumeComponent:
    """Start a paused component again (a Kafka Connect connector: ``PUT .../resume``)."""

    component: Annotated[str, Field(pattern=COMPONENT_NAME_PATTERN)] = "sink"
    kind: Literal["resume_component"] = "resume_component"

    def describe(self) -> str:
        return f"resume the {self.component}"


@dataclass(frozen=True, config=MODEL_CONFIG)
class RestartConnector:
    """Restart a connector's failed tasks through Kafka Connect's REST API
    (``POST /connectors/{component}/restart?includeTasks=true&onlyFailed=true``) and wait
    up to ``timeout_s`` until its tasks run. ``component`` is a connector's name: ``relay``
    or ``sink`` on the embedded stack, any of the cluster's with ``[connect] url``."""

    component: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = "sink"
    timeout_s: Annotated[float, Strict(), Field(gt=0, le=3600)] = 60.0
    kind: Literal["restart_connector"] = "restart_connector"

    def describe(self) -> str:
        return f"restart the {self.component} connector's failed tasks"


@dataclass(frozen=True, config=MODEL_CONFIG)
class RollbackProducer:
    """Put the producer back on the contract's own writer schema (and enforcement on)."""

    kind: Literal["rollback_producer"] = "rollback_producer"

    def describe(self) -> str:
        return "roll the producer back to the contract's writer schema"


@dataclass(frozen=True, config=MODEL_CONFIG)
class ReprocessDeadLetters:
    """Re-emit every dead-lettered order from the source through the outbox, so it flows
    again under the contract (new event ids: the sink's ordering rules hold)."""

    kind: Literal["reprocess_dead_letters"] = "reprocess_dead_letters"

    def describe(self) -> str:
        return "reprocess the dead letters"


@dataclass(frozen=True, config=MODEL_CONFIG)
class ResnapshotFromSource:
    """The CDC way back, like Debezium's incremental snapshot: find the source rows the
    sink lacks (a reconciliation), re-read them in key-range chunks of ``chunk_rows`` with
    ``workers`` connections in parallel and write each chunk into the outbox in one
    transaction, so the relay publishes it under the contract with fresh event ids; done
    when the table holds every one of them, failed if writing them and the table's taking
    them in last longer than ``timeout_s``."""

    workers: Annotated[int, Strict(), Field(ge=1, le=64)] = 4
    chunk_rows: Annotated[int, Strict(), Field(ge=1, le=100_000)] = 5000
    timeout_s: Annotated[float, Strict(), Field(gt=0, le=3600)] = 600.0
    kind: Literal["resnapshot_from_source"] = "resnapshot_from_source"

    def describe(self) -> str:
        return (
            f"re-snapshot the missing rows from the source in chunks of {self.chunk_rows:,} rows "
            f"with {self.workers} workers"
        )


@dataclass(frozen=True, config=MODEL_CONFIG)
class BackfillFromReserve:
    """Load from a reserve copy (``TakeReserveCopy``) the rows ``table`` lacks: the
    reserve's key range is split into ``workers`` ranges read in parallel, each anti-joined
    against the table's keys in its range, and what is missing is appended in one Iceberg
    commit, so no key the table holds is written twice. The sink's exactly-once state in
    the snapshot summary is carried over (see :mod:`datadrill.recovery.backfill`).

        BackfillFromReserve(reserve="reserve", workers=4)
    """

    reserve: Annotated[str, Field(pattern=RESERVE_NAME_PATTERN)] = "reserve"
    workers: Annotated[int, Strict(), Field(ge=1, le=64)] = 4
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    kind: Literal["backfill_from_reserve"] = "backfill_from_reserve"

    def describe(self) -> str:
        return f"backfill {self.table} from reserve '{self.reserve}' with {self.workers} workers"


def _check_offset_to(value: Any) -> Any:
    from datadrill.platform.group_offsets import parse_to

    parse_to(value)  # ValueError says what is allowed
    return value


@dataclass(frozen=True, config=MODEL_CONFIG)
class ResetOffsets:
    """Move a consumer group's committed offsets so the pipeline reprocesses (or skips):
    ``to`` is ``"earliest"``, ``"latest"``, epoch milliseconds or an ISO-8601 time with a
    zone (the first message at or after it). Name either ``group`` (a plain consumer group;
    it must be inactive) or ``component``: a declared component with a ``group`` is paused,
    its group moved and the component resumed; a connector (the stack's Connect API, or
    ``[components.NAME] connector`` on ``[connect] url``) is stopped, its offsets moved
    through Kafka Connect's offsets API (``DELETE``/``PATCH /connectors/{name}/offsets``)
    and resumed. ``topic``: the group's topic (default: every topic it committed on, or the
    stack's topic when it committed nowhere). ``session_timeout_ms``: the group's consumers'
    session timeout, used by the member that commits on clusters taking no commit from
    outside a group (librdkafka's mock)."""

    group: Annotated[str, Field(pattern=r"^([A-Za-z0-9._-]+)?$")] = ""
    component: Annotated[str, Field(pattern=r"^(" + COMPONENT_NAME_PATTERN.strip("^$") + r")?$")] = ""
    to: Annotated[str | int, PlainValidator(_check_offset_to)] = "earliest"
    topic: Annotated[str, Field(pattern=r"^([A-Za-z0-9._-]+)?$")] = ""
    timeout_s: Annotated[float, Strict(), Field(gt=0, le=3600)] = 120.0
    session_timeout_ms: Annotated[int, Strict(), Field(ge=1000, le=3_600_000)] = 45_000
    kind: Literal["reset_offsets"] = "reset_offsets"

    @model_validator(mode="after")
    def _group_or_component(self) -> ResetOffsets:
        if bool(self.group) == bool(self.component):
            raise ValueError(
                "name either group='...' (a consumer group) or component='...', not both or neither"
            )
        return self

    def describe(self) -> str:
        what = f"consumer group {self.group}" if self.group else f"{self.component}'s offsets"
        return f"reset {what} to {self.to}"


# Step kinds whose implementation can measure the read side of its work without changing
# anything (a ``measure(step, context)``; see datadrill.recovery.compare): the only
# built-in steps a path that Compare measures but does not apply may hold. A plugin's kind
# is checked against its implementation before the run starts.
MEASURABLE_STEP_KINDS = frozenset({"resnapshot_from_source", "replay_kafka", "backfill_from_reserve"})


def _check_path_steps(value: Any) -> tuple[Any, ...]:
    return check_steps(value)  # looked up when called: check_steps is defined below


@dataclass(frozen=True, config=MODEL_CONFIG)
class RecoveryPath:
    """One way back from a loss, named for the report: the steps it takes, in order.

    Example::

        RecoveryPath("CDC re-snapshot", steps=(ResnapshotFromSource(workers=4),))
    """

    name: Annotated[str, Field(min_length=1, max_length=80)]
    steps: Annotated[tuple[StepSpec, ...], PlainValidator(_check_path_steps)]

    def describe(self) -> str:
        return f"{self.name} ({'; '.join(step.describe() for step in self.steps)})"


@dataclass(frozen=True, config=MODEL_CONFIG)
class Compare:
    """Measure several recovery paths on the same loss and apply one of them: the paths
    not applied run first, in a dry measurement mode (each step does the read side of its
    work, e.g. a replay consumes and decodes without committing, and reports rows and
    rate), so the loss they measure is the one the applied path then repairs for real.
    The report sets the paths side by side, projected to production volume, and says which
    meets ``expectations.recover_within_s``.

    Example::

        Compare(
            paths=(
                RecoveryPath("CDC re-snapshot", steps=(ResnapshotFromSource(workers=4),)),
                RecoveryPath("Kafka replay + reserve backfill",
                             steps=(ReplayKafka(start="earliest", workers=4), BackfillFromReserve())),
            ),
            apply="Kafka replay + reserve backfill",
        )
    """

    paths: Annotated[tuple[RecoveryPath, ...], Field(min_length=2, max_length=8)]
    apply: Annotated[str, Field(min_length=1)]
    kind: Literal["compare"] = "compare"

    @model_validator(mode="after")
    def _one_applied_measurable_rest(self) -> Compare:
        names = [path.name for path in self.paths]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"path names must be unique; repeated: {repeated}")
        if self.apply not in names:
            raise ValueError(f"apply={self.apply!r} names no path; the paths are {names}")
        builtin = {spec_kind(t) for t in BUILTIN_STEPS}
        for path in self.paths:
            for step in path.steps:
                if step.kind == "compare":
                    raise ValueError(f"path {path.name!r} holds a Compare: paths cannot nest")
                measured = path.name != self.apply
                if measured and step.kind in builtin and step.kind not in MEASURABLE_STEP_KINDS:
                    raise ValueError(
                        f"path {path.name!r} is measured, not applied, and {type(step).__name__} "
                        f"({step.kind}) has no measurement mode; steps a measured path may hold: "
                        f"{', '.join(sorted(MEASURABLE_STEP_KINDS))} (or apply this path)"
                    )
        return self

    @property
    def applied(self) -> RecoveryPath:
        return next(path for path in self.paths if path.name == self.apply)

    @property
    def measured(self) -> tuple[RecoveryPath, ...]:
        return tuple(path for path in self.paths if path.name != self.apply)

    def describe(self) -> str:
        others = ", ".join(path.name for path in self.measured)
        return f"compare recovery paths on the same loss: {others} measured, {self.apply} applied"


Step = (
    RollbackProducer
    | ReprocessDeadLetters
    | RestoreCatalogBackup
    | ReregisterFromMetadata
    | ReplayKafka
    | Reconcile
    | PauseComponent
    | ResumeComponent
    | RestartConnector
    | ResetOffsets
    | ResnapshotFromSource
    | BackfillFromReserve
    | Compare
)
BUILTIN_STEPS: tuple[type[Any], ...] = get_args(Step)


def check_step(value: Any) -> Any:
    """``value`` if it is a step a runbook may hold: a built-in step, or a plugin's spec
    following :class:`StepSpec` under a kind of its own. Whether an implementation is
    registered for a plugin's kind is checked when the scenario loads (``engine.loader``)."""
    if isinstance(value, BUILTIN_STEPS):
        return value
    known = ", ".join(sorted(t.__name__ for t in BUILTIN_STEPS))
    if not isinstance(value, StepSpec):
        raise ValueError(
            f"{value!r} is not a runbook step: expected one of {known}, or a plugin's step spec "
            "(kind, describe())"
        )
    builtin = {spec_kind(t): t.__name__ for t in BUILTIN_STEPS}
    if value.kind in builtin:
        raise ValueError(
            f"{value!r} claims the kind {value.kind!r} of the built-in {builtin[value.kind]}; "
            "a plugin's step needs a kind of its own"
        )
    return value


def check_steps(value: Any) -> tuple[Any, ...]:
    """``value`` as a tuple if it is a non-empty sequence of steps (see :func:`check_step`)."""
    if not isinstance(value, (tuple, list)) or not value:
        raise ValueError(f"expected a non-empty tuple of steps, got {value!r}")
    for index, step in enumerate(value):
        try:
            check_step(step)
        except ValueError as exc:
            raise ValueError(f"steps[{index}]: {exc}") from None
    return tuple(value)


@dataclass(frozen=True, config=MODEL_CONFIG)
class Automatic:
    """No runbook: wait for the platform (and the faults' own durations) to heal."""

    kind: Literal["automatic"] = "automatic"


@dataclass(frozen=True, config=MODEL_CONFIG)
class Runbook:
    """Steps run in order once the first alert fires, after ``response_delay_s`` (the
    time a person takes to respond), each timed as its own phase."""

    # Built-in steps or plugins': checked by check_steps, so plugins need no change here.
    steps: Annotated[tuple[StepSpec, ...], PlainValidator(check_steps)]
    response_delay_s: Annotated[float, Strict(), Field(ge=0)] = 0.0
    kind: Literal["runbook"] = "runbook"

    @model_validator(mode="after")
    def _compare_replays_with_the_sink_paused(self) -> Runbook:
        # The scenario checks pause → replay → resume among the runbook's own steps; a
        # replay that a Compare applies writes the table just the same.
        for index, step in enumerate(self.steps):
            if not isinstance(step, Compare):
                continue
            if not any(s.kind == "replay_kafka" for s in step.applied.steps):
                continue
            before = any(
                isinstance(s, PauseComponent) and s.component == "sink" for s in self.steps[:index]
            )
            after = any(
                isinstance(s, ResumeComponent) and s.component == "sink" for s in self.steps[index + 1 :]
            )
            if not before or not after:
                raise ValueError(
                    f"the applied path {step.apply!r} replays Kafka into the sink's table: pause the sink "
                    "before the Compare and resume it after (PauseComponent(component='sink'), Compare(...), "
                    "ResumeComponent(component='sink'))"
                )
        return self


Recovery = Automatic | Runbook
