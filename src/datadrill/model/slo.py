"""SLIs, SLOs and alert rules, stated in user terms.

Example::

    SLO("mart freshness", sli=Freshness(max_age_s=30), objective=0.999,
        alert=ThresholdAlert(for_s=5))
    # "orders in dwh.orders no older than 30 s, 99.9% of the time"

Every SLI states its ``threshold`` and ``direction`` (good below, above, or a plain
success). A third-party SLI is any frozen dataclass following :class:`SLISpec` with a kind
of its own, measured by a probe registered for that kind (``datadrill.probes`` entry points).
"""

from __future__ import annotations

import enum
import re
import string
from typing import Annotated, Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

from pydantic import Field, PlainValidator, Strict, model_validator
from pydantic.dataclasses import dataclass

from datadrill.model._base import MODEL_CONFIG

# Mart queries go over the network (see datadrill.platform.query_service); one that takes
# longer than this counts as failed, as a dashboard's would.
QUERY_TIMEOUT_S = 5.0

# What a QuerySuccess query may name of its target.
QUERY_PLACEHOLDERS = ("table", "event_time_column", "key_column")

DEFAULT_SOURCE_QUERY = (
    "SELECT order_id, customer_id, amount_cents, currency, status, created_at_us FROM orders"
)


class Direction(enum.StrEnum):
    """Which side of an SLI's threshold is good."""

    MAX = "max"  # good while the value is at most the threshold (an age, a lag, a rate)
    MIN = "min"  # good while the value is at least the threshold (a throughput, a ratio)
    OK = "ok"  # a success: 1 good, 0 bad; no threshold


@runtime_checkable
class SLISpec(Protocol):
    """What the harness needs of an SLI spec, built-in or a plugin's: the kind that picks
    its probe (see :mod:`datadrill.probes.registry`), a unit, a sentence for reports, and
    the threshold with its direction.

    Example::

        Freshness(max_age_s=30).threshold    # 30.0
        Freshness(max_age_s=30).direction    # Direction.MAX: good while age <= 30 s
    """

    @property
    def kind(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def threshold(self) -> float | None: ...

    @property
    def direction(self) -> Direction: ...

    def statement(self) -> str: ...


@dataclass(frozen=True, config=MODEL_CONFIG)
class Target:
    """What an SLI measures. The reference platform is only the default: point these at
    your own topic, consumer group, table and source to measure your pipeline.

    ``event_time_unit`` says what ``event_time_column`` holds: ``"timestamp"`` (a
    timestamp, with or without a zone: without one it is read as UTC; a date counts from
    its midnight UTC) or seconds / milliseconds / microseconds / nanoseconds since the
    epoch (``"s"``, ``"ms"``, ``"us"``, ``"ns"``) for a number column.

    Example::

        Target(topic="clicks", group="sessionizer", table="analytics.sessions",
               event_time_column="ended_at_ms", event_time_unit="ms", key_column="session_id")
    """

    topic: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")] = "orders.v1"
    group: Annotated[str, Field(min_length=1)] = "datadrill-sink"
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")] = "dwh.orders"
    event_time_column: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "created_at"
    event_time_unit: Literal["timestamp", "s", "ms", "us", "ns"] = "timestamp"
    key_column: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "order_id"
    source_query: str = DEFAULT_SOURCE_QUERY
    # The columns DataIntegrity and Reconcile compare besides the key, by name in the table
    # and in source_query (alias them there); empty: the reference table's columns
    # (datadrill.integrity.targets.REFERENCE_COLUMNS).
    columns: tuple[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], ...] = ()


@dataclass(frozen=True, config=MODEL_CONFIG)
class Freshness:
    """Age of the newest row a mart query sees: now − ``max(target.event_time_column)`` of
    ``target.table`` (read as ``target.event_time_unit`` says). Good while the age is at
    most ``max_age_s``; a failing query, an empty table or an event time that cannot be
    one (before 1990, or more than a day ahead: a wrong unit) is bad."""

    max_age_s: Annotated[float, Strict(), Field(gt=0)]
    timeout_s: Annotated[
        float, Strict(), Field(gt=0, le=300, description="a mart query slower than this fails")
    ] = QUERY_TIMEOUT_S
    target: Target = Target()
    kind: Literal["freshness"] = "freshness"

    def statement(self) -> str:
        return (
            f"newest {self.target.event_time_column} in {self.target.table} no older than {self.max_age_s:g} s"
        )

    unit: ClassVar[str] = "s"

    @property
    def threshold(self) -> float:
        return self.max_age_s

    @property
    def direction(self) -> Direction:
        return Direction.MAX


@dataclass(frozen=True, config=MODEL_CONFIG)
class CanaryLatency:
    """End-to-end latency of canary rows, source write → visible to a query. Good while
    the newest canaries arrive within ``max_latency_s`` and none is overdue.

    The canaries are the reference platform's: its workload writes them to its source
    database and they flow through ``orders.v1``; the probe looks for them in
    ``target.table`` (``is_canary`` rows, keyed by ``target.key_column``). A stack without
    the reference platform (``[platform] reference = false``) has none: the run is refused."""

    max_latency_s: Annotated[float, Strict(), Field(gt=0)]
    timeout_s: Annotated[
        float, Strict(), Field(gt=0, le=300, description="a mart query slower than this fails")
    ] = QUERY_TIMEOUT_S
    target: Target = Target()
    kind: Literal["canary_latency"] = "canary_latency"

    def statement(self) -> str:
        return f"canaries visible in {self.target.table} within {self.max_latency_s:g} s"

    unit: ClassVar[str] = "s"

    @property
    def threshold(self) -> float:
        return self.max_latency_s

    @property
    def direction(self) -> Direction:
        return Direction.MAX


@dataclass(frozen=True, config=MODEL_CONFIG)
class ConsumerLag:
    """Messages between ``target.group``'s committed offsets and the high watermarks of
    ``target.topic``, summed over every partition. A partition the group has committed
    no offset on counts from its low watermark (everything on it is still to consume)."""

    max_messages: Annotated[int, Strict(), Field(ge=0)]
    target: Target = Target()
    kind: Literal["consumer_lag"] = "consumer_lag"

    def statement(self) -> str:
        return (
            f"consumer group {self.target.group} at most {self.max_messages:,} messages behind on "
            f"{self.target.topic}"
        )

    unit: ClassVar[str] = "messages"

    @property
    def threshold(self) -> float:
        return float(self.max_messages)

    @property
    def direction(self) -> Direction:
        return Direction.MAX


@dataclass(frozen=True, config=MODEL_CONFIG)
class QuerySuccess:
    """Does the mart query succeed? Each probe is one query: 1 on success, 0 on failure.
    ``query`` may name ``{table}``, ``{event_time_column}`` and ``{key_column}`` of
    ``target``; the tables it reads resolve through the catalog, any of them."""

    query: str = "SELECT count(*), max({event_time_column}) FROM {table}"
    timeout_s: Annotated[
        float, Strict(), Field(gt=0, le=300, description="a mart query slower than this fails")
    ] = QUERY_TIMEOUT_S
    target: Target = Target()
    kind: Literal["query_success"] = "query_success"

    @model_validator(mode="after")
    def _known_placeholders(self) -> QuerySuccess:
        allowed = ", ".join("{" + name + "}" for name in QUERY_PLACEHOLDERS)
        try:
            named = [name for _, name, _, _ in string.Formatter().parse(self.query) if name is not None]
        except ValueError as exc:
            raise ValueError(f"{self.query!r} is not a query template ({exc}); it may name {allowed}") from None
        unknown = sorted({name for name in named if name not in QUERY_PLACEHOLDERS})
        if unknown:
            listed = ", ".join("{" + name + "}" for name in unknown)
            raise ValueError(f"the query names {listed}; it may name {allowed} (a literal brace is {{{{ or }}}})")
        return self

    def sql(self) -> str:
        """The query with its target's names filled in."""
        target = self.target
        return self.query.format(
            table=target.table, event_time_column=target.event_time_column, key_column=target.key_column
        )

    def statement(self) -> str:
        return f"mart queries on {self.target.table} succeed"

    unit: ClassVar[str] = "ok"

    @property
    def threshold(self) -> None:
        return None

    @property
    def direction(self) -> Direction:
        return Direction.OK


@dataclass(frozen=True, config=MODEL_CONFIG)
class ConnectorErrorRate:
    """Errors per second reported by the reference platform's relay and sink (failed
    commits, rejected records, failed deliveries) from their heartbeat counters. Your own
    components report no such counters: measure them with :class:`RestartRate` or
    :class:`ConnectorHealth`; a stack without the reference platform refuses this SLI."""

    max_per_s: Annotated[float, Strict(), Field(ge=0)]
    target: Target = Target()
    kind: Literal["connector_error_rate"] = "connector_error_rate"

    def statement(self) -> str:
        return f"relay and sink errors at most {self.max_per_s:g}/s"

    unit: ClassVar[str] = "errors/s"

    @property
    def threshold(self) -> float:
        return self.max_per_s

    @property
    def direction(self) -> Direction:
        return Direction.MAX


@dataclass(frozen=True, config=MODEL_CONFIG)
class ConnectorHealth:
    """Is a connector healthy, as Kafka Connect's REST API reports it: bad (0) while the
    connector or any of its tasks is not RUNNING (paused, stopped, failed, restarting),
    good (1) otherwise. ``component`` is the connector's name: ``relay`` or ``sink`` of the
    reference platform, any declared component (the stack's Connect API lists each as a
    connector), or a connector of the cluster at ``[connect] url``."""

    component: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = "sink"
    target: Target = Target()
    kind: Literal["connector_health"] = "connector_health"

    def statement(self) -> str:
        return f"the {self.component} connector and its tasks RUNNING"

    unit: ClassVar[str] = "ok"

    @property
    def threshold(self) -> None:
        return None

    @property
    def direction(self) -> Direction:
        return Direction.OK


@dataclass(frozen=True, config=MODEL_CONFIG)
class RestartRate:
    """Component restarts per minute, counted over a sliding window (60 s by default): exits
    the supervisor restarts, and Kafka Connect task failures (each waits for a restart).
    ``component`` names one supervised component (reference or declared); empty: every one."""

    max_per_min: Annotated[float, Strict(), Field(ge=0)]
    window_s: Annotated[float, Strict(), Field(gt=0, le=3600)] = 60.0
    component: Annotated[str, Field(pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*)?$")] = ""
    target: Target = Target()
    kind: Literal["restart_rate"] = "restart_rate"

    def statement(self) -> str:
        which = f"restarts of {self.component}" if self.component else "component restarts"
        return f"{which} at most {self.max_per_min:g}/min"

    unit: ClassVar[str] = "restarts/min"

    @property
    def threshold(self) -> float:
        return self.max_per_min

    @property
    def direction(self) -> Direction:
        return Direction.MAX


@dataclass(frozen=True, config=MODEL_CONFIG)
class DataIntegrity:
    """Rows in the sink that are duplicated, differ from the source, or have no source row,
    from reconciling source against sink (up to the sink's newest key, so rows still in
    flight do not count) every ``every_s`` seconds. ``scope="run"`` reconciles the keys
    written since the run's first sample (cheap on a big table, and what the drill can
    have damaged); ``"table"`` reconciles every key.

    With ``holes`` (the default) it also counts *holes*: source rows the sink lacks although
    rows with higher keys have landed, once they were written more than ``hole_grace_s``
    before now and before the sink's newest row (when the table records a
    ``kafka_partition``, as the reference sink does: its slowest partition's newest row) —
    a gap in the middle, such as a dropped replication slot leaves, not rows still in
    flight. The write time is the source's
    ``created_at_us`` for the reference platform, else ``target.event_time_column`` read
    as ``target.event_time_unit``; a source query without that column counts no holes."""

    max_bad_rows: Annotated[int, Strict(), Field(ge=0)] = 0
    every_s: Annotated[float, Strict(), Field(gt=0, le=3600)] = 5.0
    scope: Literal["run", "table"] = "run"
    holes: bool = True
    hole_grace_s: Annotated[float, Strict(), Field(ge=0, le=86_400)] = 5.0
    target: Target = Target()
    kind: Literal["data_integrity"] = "data_integrity"

    @property
    def hole_time_column(self) -> tuple[str, str] | None:
        """(source column, unit) that dates a source row for holes, or None when holes are
        not counted (off, or the source query names no such column)."""
        if not self.holes:
            return None
        if self.target.source_query == DEFAULT_SOURCE_QUERY:
            return "created_at_us", "us"
        column = self.target.event_time_column
        # A cheap reading of the query's text: the probe checks the columns it really returns.
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\*", self.target.source_query))
        if column in words or "*" in words:
            return column, self.target.event_time_unit
        return None

    def statement(self) -> str:
        rows = f"at most {self.max_bad_rows:,} duplicated or wrong rows in {self.target.table}"
        if not self.holes:
            return rows
        if self.hole_time_column is None:
            return (
                f"{rows} (holes not counted: the source query returns no "
                f"{self.target.event_time_column} to date its rows)"
            )
        return f"{rows}, holes older than {self.hole_grace_s:g} s included"

    unit: ClassVar[str] = "rows"

    @property
    def threshold(self) -> float:
        return float(self.max_bad_rows)

    @property
    def direction(self) -> Direction:
        return Direction.MAX


@dataclass(frozen=True, config=MODEL_CONFIG)
class ReplicationLag:
    """Bytes of WAL between the source server's current LSN and a logical replication
    slot's confirmed flush LSN (``pg_current_wal_lsn() - confirmed_flush_lsn`` from
    ``pg_replication_slots``): what the server keeps for a CDC consumer that has not
    confirmed it. A slot that is missing, or whose ``wal_status`` is ``lost`` (the server
    removed WAL it still needed), is a bad sample that says so. ``slot`` empty: the stack's
    CDC relay's (``[relay] slot``). Needs a PostgreSQL source.

    Example::

        ReplicationLag(max_bytes=4_000_000)
    """

    max_bytes: Annotated[int, Strict(), Field(ge=0)]
    slot: Annotated[str, Field(pattern=r"^([a-z0-9_]{1,63})?$")] = ""
    target: Target = Target()
    kind: Literal["replication_lag"] = "replication_lag"

    def statement(self) -> str:
        which = f"replication slot {self.slot}" if self.slot else "the CDC relay's replication slot"
        return f"{which} at most {self.max_bytes:,} bytes of WAL behind"

    unit: ClassVar[str] = "bytes"

    @property
    def threshold(self) -> float:
        return float(self.max_bytes)

    @property
    def direction(self) -> Direction:
        return Direction.MAX


SLI = (
    DataIntegrity
    | Freshness
    | CanaryLatency
    | ConsumerLag
    | QuerySuccess
    | ConnectorErrorRate
    | RestartRate
    | ConnectorHealth
    | ReplicationLag
)
BUILTIN_SLIS: tuple[type[Any], ...] = get_args(SLI)


def spec_kind(spec_type: type[Any]) -> str:
    """The ``kind`` a spec class declares (its field's default): ``spec_kind(Freshness)``
    is ``"freshness"``."""
    return str(spec_type.__dataclass_fields__["kind"].default)


def check_sli(value: Any) -> Any:
    """``value`` if it is an SLI a scenario may use: a built-in SLI, or a plugin's spec
    following :class:`SLISpec` under a kind of its own. Whether a probe is registered for
    a plugin's kind is checked when the scenario loads (``engine.loader``) and again when
    the run builds its probes."""
    if isinstance(value, BUILTIN_SLIS):
        return value
    known = ", ".join(sorted(t.__name__ for t in BUILTIN_SLIS))
    if not isinstance(value, SLISpec):
        raise ValueError(
            f"{value!r} is not an SLI: expected one of {known}, or a plugin's SLI spec "
            "(kind, unit, statement(), threshold, direction)"
        )
    builtin = {spec_kind(t): t.__name__ for t in BUILTIN_SLIS}
    if value.kind in builtin:
        raise ValueError(
            f"{value!r} claims the kind {value.kind!r} of the built-in {builtin[value.kind]}; "
            "a plugin's SLI needs a kind of its own"
        )
    return value


@dataclass(frozen=True, config=MODEL_CONFIG)
class ThresholdAlert:
    """Fire when the SLI has been bad continuously for ``for_s`` seconds."""

    for_s: Annotated[float, Strict(), Field(ge=0)]
    kind: Literal["threshold"] = "threshold"

    def describe(self) -> str:
        return f"bad for {self.for_s:g} s"


@dataclass(frozen=True, config=MODEL_CONFIG)
class BurnRateAlert:
    """Multi-window burn rate (Google SRE workbook): fire when the error-budget burn rate
    over both the long and the short window exceeds ``factor``."""

    long_window_s: Annotated[float, Strict(), Field(gt=0)]
    short_window_s: Annotated[float, Strict(), Field(gt=0)]
    factor: Annotated[float, Strict(), Field(gt=0)]
    kind: Literal["burn_rate"] = "burn_rate"

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnRateAlert:
        if self.short_window_s > self.long_window_s:
            raise ValueError(
                f"short_window_s {self.short_window_s:g} must not exceed long_window_s {self.long_window_s:g}"
            )
        return self

    def describe(self) -> str:
        return f"burn rate > {self.factor:g}x over {self.long_window_s:g} s and {self.short_window_s:g} s"


Alert = ThresholdAlert | BurnRateAlert


@dataclass(frozen=True, config=MODEL_CONFIG)
class SLO:
    """An objective over an SLI: the fraction of time the SLI must be good."""

    name: Annotated[str, Field(min_length=1)]
    # A built-in SLI or a plugin's: checked by check_sli, so plugins need no change here.
    sli: Annotated[SLISpec, PlainValidator(check_sli)]
    objective: Annotated[float, Strict(), Field(gt=0, lt=1)]
    alert: Alert = ThresholdAlert(for_s=5)

    def statement(self) -> str:
        return f"{self.sli.statement()}, {self.objective * 100:g}% of the time"


@dataclass(frozen=True, config=MODEL_CONFIG)
class ErrorBudgetPolicy:
    """What a burn means for the team: budgets are per ``period_days``; an incident that
    burns ``postmortem_at`` of a period's budget needs a postmortem, and a burn of
    ``freeze_at`` freezes releases."""

    period_days: Annotated[float, Strict(), Field(gt=0)] = 28
    postmortem_at: Annotated[float, Strict(), Field(gt=0)] = 0.2
    freeze_at: Annotated[float, Strict(), Field(gt=0)] = 1.0
