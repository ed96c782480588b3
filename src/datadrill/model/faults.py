"""Fault specs: plain data. Implementations live in :mod:`datadrill.faults`.

``at_s`` counts from the end of the steady state. A fault with ``duration_s`` is reverted
when it elapses; without one it stays until the recovery fixes it (and is reverted, if
still needed, when the run ends, whatever happens).

Example::

    DeleteCatalogEntry(at_s=10, table="dwh.orders")
    KillComponent(at_s=5, component="sink")
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Strict, model_validator
from pydantic.dataclasses import dataclass

from datadrill.config import COMPONENT_NAME_PATTERN
from datadrill.model._base import MODEL_CONFIG

TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"
# The components with crash points (KillComponent(moment="mid_commit")).
MID_COMMIT_COMPONENTS = ("relay", "sink")


@dataclass(frozen=True, config=MODEL_CONFIG)
class DeleteCatalogEntry:
    """Delete the table's row from the catalog (the metastore forgets the table)."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    duration_s: Annotated[float | None, Strict(), Field(gt=0)] = None
    kind: Literal["metadata.catalog_entry"] = "metadata.catalog_entry"

    def describe(self) -> str:
        return f"catalog entry of {self.table} deleted"


@dataclass(frozen=True, config=MODEL_CONFIG)
class DeleteMetadataFiles:
    """Delete every ``*.metadata.json`` of the table (the catalog row now dangles)."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    keep_newest: Annotated[
        int, Strict(), Field(ge=0, description="metadata files that survive, newest first")
    ] = 0
    duration_s: Annotated[float | None, Strict(), Field(gt=0)] = None
    kind: Literal["metadata.files"] = "metadata.files"

    def describe(self) -> str:
        kept = f", newest {self.keep_newest} kept" if self.keep_newest else ""
        return f"metadata files of {self.table} deleted{kept}"


@dataclass(frozen=True, config=MODEL_CONFIG)
class HideTable:
    """Rename the table away in the catalog for ``duration_s``, then back: readers fail
    for an exactly known time. Used to calibrate detection and recovery measurements."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    kind: Literal["calibration.hide_table"] = "calibration.hide_table"

    def describe(self) -> str:
        return f"{self.table} hidden from the catalog for {self.duration_s:g} s"


@dataclass(frozen=True, config=MODEL_CONFIG)
class KillComponent:
    """SIGKILL a component's process, once or as a crash loop (``times`` kills,
    ``every_s`` apart); the supervisor restarts it each time. ``component`` is any
    component of the stack: the reference ``relay``/``sink``/``workload`` or one declared
    under ``[components.NAME]`` (a connector of a real Kafka Connect cluster is restarted
    through its REST API instead)."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    component: Annotated[str, Field(pattern=COMPONENT_NAME_PATTERN)] = "sink"
    times: Annotated[int, Strict(), Field(ge=1, le=1000)] = 1
    every_s: Annotated[float, Strict(), Field(ge=0)] = 0.0
    duration_s: Annotated[float | None, Strict(), Field(gt=0)] = None
    # "mid_commit": the process kills itself at its worst moment — the sink with data files
    # written and the catalog not yet pointing at them, the relay with a batch published
    # and not yet marked — so the crash is deterministic (a schedule search relies on it).
    moment: Literal["any", "mid_commit"] = "any"
    kind: Literal["connector.crash"] = "connector.crash"

    @model_validator(mode="after")
    def _loop_has_a_period(self) -> KillComponent:
        if self.times > 1 and self.every_s <= 0:
            raise ValueError(f"a crash loop of {self.times} kills needs every_s > 0")
        if self.moment == "mid_commit" and self.component not in MID_COMMIT_COMPONENTS:
            # Only the reference relay and sink have crash points to stop at.
            raise ValueError(
                f"moment='mid_commit' is for the relay or the sink (they have crash points; "
                f"{self.component!r} has none): use moment='any' for it"
            )
        if self.moment == "mid_commit" and self.times > 1:
            raise ValueError("moment='mid_commit' is for one kill of the relay or the sink, not a crash loop")
        return self

    def describe(self) -> str:
        if self.moment == "mid_commit":
            return f"{self.component} killed mid-commit (SIGKILL)"
        if self.times == 1:
            return f"{self.component} killed (SIGKILL)"
        return f"{self.component} crash loop: {self.times} kills {self.every_s:g} s apart"

    @property
    def effect_s(self) -> float:
        return (self.times - 1) * self.every_s


@dataclass(frozen=True, config=MODEL_CONFIG)
class ConnectorTaskFailure:
    """A connector's task goes FAILED, as Kafka Connect reports it, and stays failed (no
    supervisor restart) until a :class:`~datadrill.model.recovery.RestartConnector` step or
    an operator restarts it (``POST /connectors/{name}/restart``). With ``duration_s`` the
    drill restarts it itself when that elapses. ``component`` is any connector the stack's
    own Connect API lists (``relay``, ``sink``, declared components). Embedded stack only: a
    real Connect cluster's task cannot be failed through its REST API."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    component: Annotated[str, Field(pattern=COMPONENT_NAME_PATTERN)] = "sink"
    duration_s: Annotated[float | None, Strict(), Field(gt=0)] = None
    kind: Literal["connector.task_failure"] = "connector.task_failure"

    def describe(self) -> str:
        return f"{self.component}'s task FAILED (stays failed until restarted)"


@dataclass(frozen=True, config=MODEL_CONFIG)
class HangComponent:
    """The component hangs for ``duration_s``: its process is stopped (SIGSTOP) and then
    continued (SIGCONT). A hung consumer keeps its partitions (its session does not end
    while the broker waits for it) and makes no progress, which a crash never shows. A
    connector of a real Kafka Connect cluster is paused and resumed through its REST API
    instead (a paused task keeps its partitions too).

    Example::

        HangComponent("enricher", at_s=5, duration_s=20)
    """

    component: Annotated[str, Field(pattern=COMPONENT_NAME_PATTERN)]
    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    kind: Literal["component.hang"] = "component.hang"

    def describe(self) -> str:
        return f"{self.component} hung (SIGSTOP) for {self.duration_s:g} s"


@dataclass(frozen=True, config=MODEL_CONFIG)
class LagSpike:
    """The producer bursts to ``burst_factor`` × its rate while the sink is paused (or
    throttled to ``throttle_rows_per_s``) for ``duration_s``: a consumer-lag spike."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    burst_factor: Annotated[float, Strict(), Field(ge=1, le=1000)] = 10.0
    mode: Literal["pause", "throttle"] = "pause"
    throttle_rows_per_s: Annotated[float, Strict(), Field(gt=0)] = 100.0
    kind: Literal["consumer.lag_spike"] = "consumer.lag_spike"

    def describe(self) -> str:
        how = "paused" if self.mode == "pause" else f"throttled to {self.throttle_rows_per_s:g} rows/s"
        return f"producer burst ×{self.burst_factor:g} with the sink {how} for {self.duration_s:g} s"


@dataclass(frozen=True, config=MODEL_CONFIG)
class BrokerLoss:
    """A broker goes down for ``duration_s``; the stack elects new leaders after its
    election delay; then the broker comes back."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    broker: Annotated[int, Strict(), Field(ge=1, le=9)] = 1
    kind: Literal["kafka.broker_loss"] = "kafka.broker_loss"

    def describe(self) -> str:
        return f"broker {self.broker} down for {self.duration_s:g} s"


KAFKA_ERRORS = {
    "NOT_LEADER_OR_FOLLOWER": 6,
    "REQUEST_TIMED_OUT": 7,
    "NOT_ENOUGH_REPLICAS": 19,
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND": 20,
    "LEADER_NOT_AVAILABLE": 5,
    "NETWORK_EXCEPTION": 13,
    "UNKNOWN_TOPIC_OR_PARTITION": 3,
}
KAFKA_APIS = {"produce": 0, "fetch": 1, "offset_commit": 8, "metadata": 3}


@dataclass(frozen=True, config=MODEL_CONFIG)
class KafkaRequestErrors:
    """The next ``count`` requests of ``api`` fail with ``error`` (a retriable Kafka error
    by default)."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    api: Literal["produce", "fetch", "offset_commit", "metadata"] = "produce"
    error: Literal[
        "NOT_LEADER_OR_FOLLOWER",
        "REQUEST_TIMED_OUT",
        "NOT_ENOUGH_REPLICAS",
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        "LEADER_NOT_AVAILABLE",
        "NETWORK_EXCEPTION",
        "UNKNOWN_TOPIC_OR_PARTITION",
    ] = "NOT_LEADER_OR_FOLLOWER"
    count: Annotated[int, Strict(), Field(ge=1, le=100_000)] = 100
    duration_s: Annotated[float | None, Strict(), Field(gt=0)] = None
    kind: Literal["kafka.request_errors"] = "kafka.request_errors"

    def describe(self) -> str:
        return f"{self.count} {self.api} requests fail with {self.error}"


@dataclass(frozen=True, config=MODEL_CONFIG)
class BrokerLatency:
    """Every response of ``broker`` (-1: all) is delayed by ``rtt_ms`` for ``duration_s``."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    rtt_ms: Annotated[int, Strict(), Field(gt=0, le=600_000)] = 200
    broker: Annotated[int, Strict(), Field(ge=-1, le=9)] = -1
    kind: Literal["kafka.broker_latency"] = "kafka.broker_latency"

    @model_validator(mode="after")
    def _real_broker(self) -> BrokerLatency:
        if self.broker == 0:
            raise ValueError("broker ids start at 1 (-1 means every broker)")
        return self

    def describe(self) -> str:
        which = "every broker" if self.broker == -1 else f"broker {self.broker}"
        return f"{which} answers {self.rtt_ms} ms late for {self.duration_s:g} s"


@dataclass(frozen=True, config=MODEL_CONFIG)
class CatalogOutage:
    """The catalog database is locked (held in an exclusive transaction) for
    ``duration_s``: every catalog read and commit waits or fails."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    mode: Literal["lock"] = "lock"
    kind: Literal["catalog.outage"] = "catalog.outage"

    def describe(self) -> str:
        return f"catalog database locked for {self.duration_s:g} s"


@dataclass(frozen=True, config=MODEL_CONFIG)
class TakeCatalogBackup:
    """Not a fault: back up the catalog entry (and the metadata file it points at) at
    ``at_s``, as a nightly metastore backup would. Restores name it."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    name: Annotated[str, Field(min_length=1)] = "nightly"
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    kind: Literal["backup.catalog"] = "backup.catalog"

    def describe(self) -> str:
        return f"catalog backup '{self.name}' of {self.table}"


# A reserve's name is a directory under the state dir's reserves/: no separators, no dots first.
RESERVE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


@dataclass(frozen=True, config=MODEL_CONFIG)
class TakeReserveCopy:
    """Not a fault: dump the table's rows at its current snapshot to Parquet files with a
    manifest (snapshot, row count, key range), outside the catalog and the warehouse, at
    ``at_s``: the reserve copy history is restored from when the catalog entry and the
    topic are both gone. ``BackfillFromReserve`` steps name it.

        TakeReserveCopy(at_s=0, name="reserve")
    """

    at_s: Annotated[float, Strict(), Field(ge=0)]
    name: Annotated[str, Field(pattern=RESERVE_NAME_PATTERN)] = "reserve"
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    kind: Literal["backup.reserve"] = "backup.reserve"

    def describe(self) -> str:
        return f"reserve copy '{self.name}' of {self.table}"


@dataclass(frozen=True, config=MODEL_CONFIG)
class SchemaDrift:
    """The producer switches to a writer schema that renames, retypes or drops a field.
    With contract ``enforcement`` the relay rejects such records to the dead-letter topic;
    without it they reach the table. Reverting rolls the producer back."""

    at_s: Annotated[float, Strict(), Field(ge=0)]
    change: Literal["rename", "retype", "drop"] = "rename"
    enforcement: bool = True
    duration_s: Annotated[float | None, Strict(), Field(gt=0)] = None
    kind: Literal["contract.schema_drift"] = "contract.schema_drift"

    def describe(self) -> str:
        what = {
            "rename": "renames amount_cents",
            "retype": "retypes amount_cents to a string",
            "drop": "drops currency",
        }[self.change]
        mode = "enforced" if self.enforcement else "NOT enforced"
        return f"producer writer schema {what} (contract {mode})"


NETWORK_TOXICS = ("latency", "bandwidth", "timeout", "reset_peer", "slow_close", "limit_data", "down")


@dataclass(frozen=True, config=MODEL_CONFIG)
class NetworkFault:
    """A network fault on one of the stack's proxied paths, through Toxiproxy's API, for
    ``duration_s``. ``path`` names the proxy: ``query`` (clients → query engine) or
    ``catalog`` (platform → catalog database; PostgreSQL catalogs only). ``toxic`` is a
    Toxiproxy toxic type, or ``down`` for the proxy refusing connections; ``attributes``
    are the toxic's own, in Toxiproxy's names and units (``latency``/``jitter`` ms,
    ``rate`` KB/s, ``timeout`` ms, ``delay`` ms, ``bytes``).

    Example::

        NetworkFault(at_s=5, duration_s=10, toxic="latency", attributes={"latency": 1500, "jitter": 200})
    """

    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    toxic: Literal["latency", "bandwidth", "timeout", "reset_peer", "slow_close", "limit_data", "down"]
    path: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")] = "query"
    attributes: dict[str, int] = Field(default_factory=dict)
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: Annotated[float, Strict(), Field(ge=0, le=1)] = 1.0
    kind: Literal["network.toxic"] = "network.toxic"

    @model_validator(mode="after")
    def _valid_toxic(self) -> NetworkFault:
        from datadrill.errors import ConfigError
        from datadrill.netfaults.spec import parse_toxic

        if self.toxic == "down":
            if self.attributes:
                raise ValueError("a 'down' network fault takes no attributes")
            return self
        try:
            parse_toxic(
                {
                    "type": self.toxic,
                    "stream": self.stream,
                    "toxicity": self.toxicity,
                    "attributes": dict(self.attributes),
                }
            )
        except ConfigError as exc:
            # Toxiproxy's attribute rules, named as the scenario spells them.
            raise ValueError(f"{exc.field} = {exc.value!r}: {exc.allowed}") from None
        return self

    @property
    def toxic_name(self) -> str:
        """The toxic's name on the proxy: one per type and direction, as exclusivity keeps it."""
        return f"datadrill_{self.toxic}_{self.stream}"

    def describe(self) -> str:
        if self.toxic == "down":
            return f"{self.path} path down for {self.duration_s:g} s"
        settings = ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items()))
        share = f" on {self.toxicity:.0%} of connections" if self.toxicity < 1 else ""
        detail = f" ({settings})" if settings else ""
        return (
            f"{self.toxic} on the {self.path} path{detail}, {self.stream}{share}, for {self.duration_s:g} s"
        )


# A PostgreSQL replication slot's name (``[relay] slot`` takes the same); empty: the stack's
# CDC relay's slot.
SLOT_PATTERN = r"^([a-z0-9_]{1,63})?$"


@dataclass(frozen=True, config=MODEL_CONFIG)
class DropReplicationSlot:
    """The CDC relay's replication slot is dropped while the relay runs, as an operator
    cleaning up or a failover to a replica without the slot would: the walsender holding it
    is terminated and the slot dropped. Instantaneous. Nothing is put back: the relay
    recreates its slot and goes on from *now*, so the outbox events written in between never
    reach Kafka, and ``DataIntegrity`` counts them as holes. ``slot`` empty: the stack's
    ``[relay] slot``. Needs ``[relay] mode = "cdc"`` on a PostgreSQL source.

    Example::

        DropReplicationSlot(at_s=10)
    """

    at_s: Annotated[float, Strict(), Field(ge=0)]
    slot: Annotated[str, Field(pattern=SLOT_PATTERN)] = ""
    kind: Literal["source.drop_replication_slot"] = "source.drop_replication_slot"

    def describe(self) -> str:
        which = f"replication slot {self.slot}" if self.slot else "the CDC relay's replication slot"
        return (
            f"{which} dropped (nothing to put back: the relay starts a new slot from now, and the "
            "events written in between never reach Kafka)"
        )


@dataclass(frozen=True, config=MODEL_CONFIG)
class ReplicationSlotStall:
    """The CDC relay stops reading its replication slot and confirms nothing for
    ``duration_s``: the server keeps the WAL from the slot's confirmed LSN on, so
    ``ReplicationLag`` grows, and freshness and canaries go stale; afterwards the backlog
    drains. Needs ``[relay] mode = "cdc"`` on a PostgreSQL source.

    Example::

        ReplicationSlotStall(at_s=5, duration_s=20)
    """

    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    kind: Literal["source.replication_slot_stall"] = "source.replication_slot_stall"

    def describe(self) -> str:
        return f"CDC relay stops reading and confirming its replication slot for {self.duration_s:g} s"


@dataclass(frozen=True, config=MODEL_CONFIG)
class SourceOutage:
    """The source database refuses connections for ``duration_s``: the fault proxy's
    ``source`` path (platform → PostgreSQL) is disabled, which drops the open connections
    of the workload and the relay too. The harness keeps its own direct way to the database
    (probes still measure). Needs a PostgreSQL source behind the fault proxy (``datadrill
    stack up --source postgresql``).

    Example::

        SourceOutage(at_s=5, duration_s=10)
    """

    at_s: Annotated[float, Strict(), Field(ge=0)]
    duration_s: Annotated[float, Strict(), Field(gt=0)]
    kind: Literal["source.outage"] = "source.outage"

    def describe(self) -> str:
        return f"source database refuses connections for {self.duration_s:g} s"


# A Kafka topic's name (Kafka's legal characters, at most 249); empty: the stack's topic.
TOPIC_PATTERN = r"^([A-Za-z0-9._-]{1,249})?$"


@dataclass(frozen=True, config=MODEL_CONFIG)
class KafkaRetention:
    """Records older than ``keep_newest_s`` are deleted from every partition of the topic,
    as ``retention.ms`` would delete them: each partition's log start moves to its first
    record written within ``keep_newest_s`` of the fault (DeleteRecords on a real cluster,
    the mock's own call on the embedded one). Instantaneous, and nothing comes back: a
    replay can no longer reach what was deleted (``ReplayKafka`` reports the offsets it
    could not reach). ``topic`` empty: the stack's topic.

    Example::

        KafkaRetention(at_s=10, keep_newest_s=5)
    """

    at_s: Annotated[float, Strict(), Field(ge=0)]
    keep_newest_s: Annotated[float, Strict(), Field(ge=0)]
    topic: Annotated[str, Field(pattern=TOPIC_PATTERN)] = ""
    kind: Literal["kafka.retention"] = "kafka.retention"

    def describe(self) -> str:
        which = f"topic {self.topic}" if self.topic else "the stack's topic"
        return (
            f"records older than {self.keep_newest_s:g} s deleted from every partition of {which}, as "
            "retention.ms would (what was deleted stays deleted: a replay cannot reach it)"
        )


@dataclass(frozen=True, config=MODEL_CONFIG)
class TopicDeleted:
    """The topic is deleted and comes back empty with the same partitions (DeleteTopics and
    CreateTopics on a real cluster, the mock's own calls on the embedded one): the accident
    everyone with Kafka has had or fears. Every record in it is gone, the ones no consumer
    had read yet too; offsets start again at 0. ``topic`` empty: the stack's topic.

    Example::

        TopicDeleted(at_s=10)
    """

    at_s: Annotated[float, Strict(), Field(ge=0)]
    topic: Annotated[str, Field(pattern=TOPIC_PATTERN)] = ""
    kind: Literal["kafka.topic_deleted"] = "kafka.topic_deleted"

    def describe(self) -> str:
        which = f"topic {self.topic}" if self.topic else "the stack's topic"
        return (
            f"{which} deleted and created again, empty (its records stay lost; offsets restart at 0)"
        )


FaultSpec = (
    DeleteCatalogEntry
    | DeleteMetadataFiles
    | HideTable
    | KillComponent
    | ConnectorTaskFailure
    | HangComponent
    | LagSpike
    | BrokerLoss
    | KafkaRequestErrors
    | BrokerLatency
    | CatalogOutage
    | SchemaDrift
    | NetworkFault
    | DropReplicationSlot
    | ReplicationSlotStall
    | SourceOutage
    | KafkaRetention
    | TopicDeleted
)
ScheduleItem = FaultSpec | TakeCatalogBackup | TakeReserveCopy
# Schedule items that copy data rather than break something: not faults.
BACKUP_ITEMS: tuple[type[Any], ...] = (TakeCatalogBackup, TakeReserveCopy)
