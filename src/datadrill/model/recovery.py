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
from datadrill.model.faults import TABLE_PATTERN
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
    """Re-ingest Kafka into the table, from the offsets the table's snapshot records (or
    from a timestamp), up to the high watermarks seen when the step starts, with
    ``workers`` partitions in parallel."""

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


Recovery = Automatic | Runbook
