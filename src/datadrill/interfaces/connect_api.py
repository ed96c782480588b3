"""Kafka Connect's REST API for the stack's connectors, as a Connect worker serves it on 8083.

The outbox relay is the source connector ``relay``, the sink the sink connector ``sink``;
each has one task (task 0), which is the supervised process. The workload is not a
connector. Every declared process component (``[components.NAME]`` with a ``command``)
is a connector too, of class ``datadrill.process``: a sink when it consumes with a
``group``, else a source; its one task is the process. States map onto the supervisor
(:mod:`datadrill.platform.supervisor`):

=================  ===========================  =====================================
supervisor         connector state              task 0 state
=================  ===========================  =====================================
running            RUNNING                      RUNNING
exited, restarting RUNNING                      RESTARTING (the supervisor restarts it)
paused             PAUSED                       PAUSED
stopped            STOPPED                      (none: a stopped connector has no tasks)
failed             RUNNING (PAUSED, STOPPED)    FAILED, with ``trace``
=================  ===========================  =====================================

Routes (codes and bodies as the Apache Kafka Connect REST docs give them; errors are
Connect's ``{"error_code": ..., "message": ...}``)::

    GET  /                                   version, commit, kafka_cluster_id
    GET  /connectors[?expand=status|info]    names, or documents by name
    GET  /connectors/{name}                  name, config, tasks, type
    GET  /connectors/{name}/config|status|tasks|offsets
    GET  /connectors/{name}/tasks/{id}/status
    PUT  /connectors/{name}/pause|resume     202
    PUT  /connectors/{name}/stop             204
    POST /connectors/{name}/restart[?includeTasks=&onlyFailed=]   204, or 202 + status
    POST /connectors/{name}/tasks/{id}/restart                    204
    PATCH  /connectors/{name}/offsets        200 + message (a STOPPED connector; else 400)
    DELETE /connectors/{name}/offsets        200 + message (a STOPPED connector; else 400)

Offsets: the sink's are the Kafka offsets its newest Iceberg snapshot records (the next
offset of each partition, as a consumer group commits them), in Connect's sink shape
``{"partition": {"kafka_topic", "kafka_partition"}, "offset": {"kafka_offset"}}``; the
relay's is its source position, the last outbox event id it marked:
``{"partition": {"source": "outbox"}, "offset": {"event_id"}}``.

Example::

    server = ConnectServer(supervisor, paths, config, bootstrap_servers="127.0.0.1:9092")
    server.start()
    httpx.get(server.url + "/connectors/sink/status").json()["tasks"][0]["state"]   # RUNNING
    httpx.put(server.url + "/connectors/sink/pause").status_code                     # 202
    server.stop()
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from datadrill import __version__
from datadrill.errors import DrillError
from datadrill.interfaces.http_server import ControlServer, Handler, Reply
from datadrill.platform.supervisor import ProcessStatus

if TYPE_CHECKING:
    from datadrill.config import StackConfig
    from datadrill.paths import StatePaths

Params = dict[str, str]
Body = dict[str, Any]

# What Connect's RESTARTING state covers here: the supervisor restarts an exited process
# after its backoff; a restart request is answered while the new process starts.
RUNNING, PAUSED, STOPPED, FAILED, RESTARTING, UNASSIGNED = (
    "RUNNING",
    "PAUSED",
    "STOPPED",
    "FAILED",
    "RESTARTING",
    "UNASSIGNED",
)


class Supervised(Protocol):
    """What the API needs of :class:`~datadrill.platform.supervisor.Supervisor`."""

    @property
    def names(self) -> list[str]: ...

    def status(self) -> list[ProcessStatus]: ...

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> int: ...

    def release(self, name: str) -> None: ...

    def stop(self, name: str) -> None: ...

    def restart(self, name: str) -> int | None: ...


class ConnectRestError(DrillError):
    """An error Connect answers with its own document and status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status


def error_document(status: int, message: str) -> dict[str, Any]:
    """Connect's error body (``ConnectExceptionMapper``)."""
    return {"error_code": status, "message": message}


@dataclass(frozen=True)
class Connector:
    """One connector of the stack: its Connect type and config (strings, as Connect's are)."""

    name: str
    type: str  # "source" or "sink"
    config: dict[str, str]


# The connector class of declared process components (their task 0 is the process).
PROCESS_CONNECTOR_CLASS = "datadrill.process"


def stack_connectors(config: StackConfig) -> dict[str, Connector]:
    """The reference platform's connectors, configured as the stack runs them, then every
    declared process component's."""
    topic = config.kafka.topic
    return {**_reference_connectors(config, topic), **declared_connectors(config)}


def declared_connectors(config: StackConfig) -> dict[str, Connector]:
    """Declared process components as connectors: "sink" when they consume with a group."""
    out: dict[str, Connector] = {}
    for name, component in config.components.items():
        if not component.command:
            continue  # a connector of a real Connect cluster, listed there
        settings = {
            "name": name,
            "connector.class": PROCESS_CONNECTOR_CLASS,
            "tasks.max": "1",
            "command": " ".join(component.command),
        }
        if component.group:
            settings["consumer.group.id"] = component.group
        out[name] = Connector(name, "sink" if component.group else "source", settings)
    return out


def _reference_connectors(config: StackConfig, topic: str) -> dict[str, Connector]:
    return {
        "relay": Connector(
            "relay",
            "source",
            {
                "name": "relay",
                "connector.class": "datadrill.platform.relay",
                "tasks.max": "1",
                "topic": topic,
                "source": "outbox",
                "batch.max.records": str(config.relay.batch_max_records),
                "poll.interval.ms": str(config.relay.poll_interval_ms),
            },
        ),
        "sink": Connector(
            "sink",
            "sink",
            {
                "name": "sink",
                "connector.class": "datadrill.platform.sink",
                "tasks.max": "1",
                "topics": topic,
                "consumer.group.id": config.sink.group_id,
                "table": config.catalog.table,
                "guarantee": config.sink.guarantee,
            },
        ),
    }


def _flag(params: Params, name: str) -> bool:
    raw = params.get(name, "false").strip().lower()
    if raw not in ("true", "false", ""):
        raise ConnectRestError(400, f"query parameter {name} must be true or false, got {raw!r}")
    return raw == "true"


class ConnectServer:
    """Kafka Connect's REST API over the stack's supervisor, on its own port (127.0.0.1)."""

    def __init__(
        self,
        supervisor: Supervised,
        paths: StatePaths,
        config: StackConfig,
        *,
        bootstrap_servers: str,
        on_event: Callable[..., None] | None = None,
        source: str = "",
    ) -> None:
        self.supervisor = supervisor
        self.paths = paths
        # The source database the relay reads (a SQLite file's path or a PostgreSQL URI).
        self.source = source or str(paths.source_db)
        self.config = config
        self.bootstrap_servers = bootstrap_servers
        self._all_connectors = stack_connectors(config)
        self._on_event = on_event
        self._cluster_id: str | None = None
        self._lock = threading.Lock()
        self._server = ControlServer(self.routes(), query_params=True, error_document=error_document)

    @property
    def connectors(self) -> dict[str, Connector]:
        """The connectors whose process the supervisor runs (read on each request: declared
        components join the supervisor after this API starts)."""
        names = self.supervisor.names
        return {n: c for n, c in self._all_connectors.items() if n in names}

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def worker_id(self) -> str:
        return self.url.removeprefix("http://")

    def start(self) -> str:
        self._server.start()
        return self.url

    def stop(self) -> None:
        self._server.stop()

    def _event(self, name: str, **fields: Any) -> None:
        if self._on_event is not None:
            self._on_event(name, **fields)

    # -- states --------------------------------------------------------------------------
    def _connector(self, name: str) -> Connector:
        connector = self.connectors.get(name)
        if connector is None:
            raise ConnectRestError(404, f"Connector {name} not found")
        return connector

    def _process(self, name: str) -> ProcessStatus:
        for proc in self.supervisor.status():
            if proc.name == name:
                return proc
        raise ConnectRestError(404, f"Connector {name} not found")

    def _task_state(self, proc: ProcessStatus) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": 0, "worker_id": self.worker_id}
        if proc.failed_trace is not None:
            entry.update(state=FAILED, trace=proc.failed_trace)
        elif proc.paused:
            entry["state"] = PAUSED
        elif proc.running:
            entry["state"] = RUNNING
        elif proc.last_exit is not None:
            entry["state"] = RESTARTING
        else:
            entry["state"] = UNASSIGNED
        return entry

    def status(self, name: str) -> dict[str, Any]:
        connector = self._connector(name)
        proc = self._process(name)
        if proc.stopped:
            state, tasks = STOPPED, []
        else:
            state = PAUSED if proc.paused else RUNNING
            tasks = [self._task_state(proc)]
        return {
            "name": name,
            "connector": {"state": state, "worker_id": self.worker_id},
            "tasks": tasks,
            "type": connector.type,
        }

    def statuses(self) -> list[dict[str, Any]]:
        """Every connector's status document (what ``?expand=status`` lists), e.g. for metrics."""
        return [self.status(name) for name in self.connectors]

    def _task(self, name: str, task: str) -> dict[str, Any]:
        for entry in self.status(name)["tasks"]:
            if str(entry["id"]) == task:
                return dict(entry)
        raise ConnectRestError(404, f"Task {name}-{task} not found")

    def info(self, name: str) -> dict[str, Any]:
        connector = self._connector(name)
        stopped = self._process(name).stopped
        return {
            "name": name,
            "config": dict(connector.config),
            "tasks": [] if stopped else [{"connector": name, "task": 0}],
            "type": connector.type,
        }

    def offsets(self, name: str) -> dict[str, Any]:
        connector = self._connector(name)
        if connector.config.get("connector.class") == PROCESS_CONNECTOR_CLASS:
            return self.declared_offsets(connector)
        if connector.type == "sink":
            return {"offsets": self._sink_offsets()}
        return {"offsets": self._relay_offsets()}

    def declared_offsets(self, connector: Connector) -> dict[str, Any]:
        """Offsets of a declared process component: its consumer group's committed offsets
        on every topic it committed on, in Connect's sink shape; never the reference sink's."""
        from datadrill.platform import group_offsets

        group = self._declared_group(connector.name)
        try:
            committed = group_offsets.group_topics(self.bootstrap_servers, group)
        except DrillError as exc:
            raise ConnectRestError(
                500, f"Failed to retrieve offsets for connector {connector.name}: {exc}"
            ) from exc
        return {
            "offsets": [
                {
                    "partition": {"kafka_topic": topic, "kafka_partition": partition},
                    "offset": {"kafka_offset": offset},
                }
                for topic, offsets in sorted(committed.items())
                for partition, offset in sorted(offsets.items())
            ]
        }

    # -- offsets (KIP-875) ---------------------------------------------------------------
    def _declared_group(self, name: str) -> str:
        """The consumer group of declared process component ``name``; Connect's answer for a
        connector whose offsets cannot be modified from outside when it has none."""
        declared = self.config.components.get(name)
        if declared is None or not declared.group:
            raise ConnectRestError(
                500,
                f"Failed to modify offsets for connector {name} because it doesn't support external "
                f"modification of offsets: [components.{name}] names no consumer group (group = ...)",
            )
        return declared.group

    def _modifiable(self, name: str) -> str:
        """The group whose offsets a PATCH/DELETE of connector ``name`` moves; Connect's 400
        for a connector that is not STOPPED; Connect's answer for a connector that does not
        let its offsets be modified (the reference relay and sink: see :meth:`_own_offsets`)."""
        connector = self._connector(name)
        if not self._process(name).stopped:
            raise ConnectRestError(
                400,
                "Connectors must be in the STOPPED state before their offsets can be modified. This can "
                f"be done for the specified connector by issuing a 'PUT' request to the "
                f"'/connectors/{name}/stop' endpoint",
            )
        if connector.config.get("connector.class") != PROCESS_CONNECTOR_CLASS:
            raise ConnectRestError(500, self._own_offsets(connector))
        return self._declared_group(name)

    def _own_offsets(self, connector: Connector) -> str:
        # What a Connect worker answers when SinkConnector/SourceConnector.alterOffsets
        # throws UnsupportedOperationException (Worker.modifySinkConnectorOffsets), with why.
        head = (
            f"Failed to modify offsets for connector {connector.name} because it doesn't support "
            "external modification of offsets"
        )
        if connector.type == "sink":
            return (
                f"{head}: its offsets are the Kafka offsets each Iceberg snapshot of "
                f"{self.config.catalog.table} records, committed atomically with the rows (exactly once), "
                "and it drops any event at or below the highest event id a partition's snapshot records, "
                "so moving them back re-reads without rewriting and moving them forward loses rows; "
                "to re-ingest, use the ReplayKafka step"
            )
        return (
            f"{head}: its position is the outbox, whose rows it deletes once published, so there is "
            "nothing behind it to publish again; to re-emit orders, use ReprocessDeadLetters or a replay"
        )

    def alter_offsets(self, name: str, body: Body) -> Reply:
        """``PATCH /connectors/{name}/offsets``: commit the named partitions' offsets for the
        component's group (an offset of null: the partition's log start, which is where a
        consumer whose committed offset was deleted starts with auto.offset.reset=earliest)."""
        entries = body.get("offsets")
        if not isinstance(entries, list) or not entries:
            raise ConnectRestError(
                400, "Partitions / offsets need to be provided for an alter offsets request"
            )
        wanted = _parse_sink_offsets(entries)
        group = self._modifiable(name)
        moves = []
        for topic, offsets in sorted(wanted.items()):
            moves.append(self._move(name, group, topic, offsets))
        self._event("connector_offsets_altered", connector=name, moves=[m.to_json() for m in moves])
        return Reply(200, {"message": _FRAMEWORK_MESSAGE.format(verb="altered")})

    def reset_offsets(self, name: str) -> Reply:
        """``DELETE /connectors/{name}/offsets``: every partition the component's group
        committed goes back to the log start (a Connect worker deletes the group; librdkafka's
        mock cannot, and a group with no offsets starts at its auto.offset.reset, which for
        a sink's consumer is earliest)."""
        from datadrill.platform import group_offsets

        group = self._modifiable(name)
        try:
            committed = group_offsets.group_topics(self.bootstrap_servers, group)
        except DrillError as exc:
            raise ConnectRestError(500, f"Failed to reset offsets for connector {name}: {exc}") from exc
        moves = []
        for topic, offsets in sorted(committed.items()):
            marks = group_offsets.watermarks(self.bootstrap_servers, topic, sorted(offsets))
            moves.append(self._move(name, group, topic, {p: None for p in offsets}, marks))
        self._event("connector_offsets_reset", connector=name, moves=[m.to_json() for m in moves])
        return Reply(200, {"message": _FRAMEWORK_MESSAGE.format(verb="reset")})

    def _move(
        self,
        name: str,
        group: str,
        topic: str,
        offsets: dict[int, int | None],
        marks: dict[int, tuple[int, int]] | None = None,
    ) -> Any:
        from datadrill.platform import group_offsets

        try:
            if marks is None and any(o is None for o in offsets.values()):
                marks = group_offsets.watermarks(self.bootstrap_servers, topic, sorted(offsets))
            starts = {p: lo for p, (lo, _) in (marks or {}).items()}
            target = {p: (o if o is not None else starts[p]) for p, o in offsets.items()}
            return group_offsets.move_group(
                self.bootstrap_servers, group, topic, target, timeout_s=OFFSETS_TIMEOUT_S
            )
        except group_offsets.GroupActive as exc:
            # Connect's words for a group that still has members (zombie tasks), with ours.
            raise ConnectRestError(
                500,
                f"Failed to alter consumer group offsets for connector {name} either because its tasks "
                f"haven't stopped completely yet or the connector was resumed before the request to alter "
                f"its offsets could be successfully completed: {exc}",
            ) from exc
        except DrillError as exc:
            raise ConnectRestError(
                500, f"Failed to alter consumer group offsets for connector {name}: {exc}"
            ) from exc

    def _sink_offsets(self) -> list[dict[str, Any]]:
        from datadrill.platform.catalog import open_stack_catalog, sink_state

        try:
            table = open_stack_catalog(self.config, self.paths).load_table(self.config.catalog.table)
        except Exception as exc:  # a lost table is the drill's business: say so
            raise ConnectRestError(
                500, f"cannot read the sink's offsets: table {self.config.catalog.table}: {exc}"
            ) from exc
        offsets, _ = sink_state(table)
        topic = self.config.kafka.topic
        return [
            {
                "partition": {"kafka_topic": topic, "kafka_partition": partition},
                "offset": {"kafka_offset": offset},
            }
            for partition, offset in sorted(offsets.items())
        ]

    def _relay_offsets(self) -> list[dict[str, Any]]:
        from datadrill.platform import source_db

        db = source_db.connect(self.source)
        try:
            # The relay deletes what it marked: its position is just below the oldest event
            # still waiting in the outbox (or the newest ever handed out, when none waits).
            row = db.execute("SELECT min(event_id) FROM outbox").fetchone()
            marked = int(row[0]) - 1 if row and row[0] is not None else source_db.last_event_id(db)
        finally:
            db.close()
        return [{"partition": {"source": "outbox"}, "offset": {"event_id": marked}}]

    def version(self) -> dict[str, Any]:
        with self._lock:
            if self._cluster_id is None:
                self._cluster_id = _cluster_id(self.bootstrap_servers)
            cluster = self._cluster_id
        return {"version": __version__, "commit": "datadrill", "kafka_cluster_id": cluster}

    # -- actions -------------------------------------------------------------------------
    def pause_connector(self, name: str) -> Reply:
        self._connector(name)
        proc = self._process(name)
        if not proc.paused:
            self.supervisor.pause(name)
            self._event("connector_paused", connector=name)
        return Reply(202)

    def resume_connector(self, name: str) -> Reply:
        self._connector(name)
        proc = self._process(name)
        if proc.paused or proc.stopped:
            if proc.failed_trace is not None:
                # Connect resumes the connector's target state; a failed task stays FAILED.
                self.supervisor.release(name)
            else:
                self.supervisor.resume(name)
            self._event("connector_resumed", connector=name)
        return Reply(202)

    def stop_connector(self, name: str) -> Reply:
        self._connector(name)
        if not self._process(name).stopped:
            self.supervisor.stop(name)
            self._event("connector_stopped", connector=name)
        return Reply(204)

    def restart_connector(self, name: str, params: Params) -> Reply:
        """Without ``includeTasks``/``onlyFailed``: restart the connector instance, 204.
        With either: 202 and the status with RESTARTING for what is restarted. The one task
        *is* the connector's process here, so restarting the connector instance alone
        restarts nothing (204, as Connect answers it); its task is restarted when
        ``includeTasks`` is set and, with ``onlyFailed``, only if it is FAILED."""
        self._connector(name)
        include_tasks, only_failed = _flag(params, "includeTasks"), _flag(params, "onlyFailed")
        if not include_tasks and not only_failed:
            self._event("connector_restarted", connector=name, tasks=[])
            return Reply(204)
        status = self.status(name)
        restarting = [
            t for t in status["tasks"] if include_tasks and (not only_failed or t["state"] == FAILED)
        ]
        for task in restarting:
            task["state"] = RESTARTING
            task.pop("trace", None)
        if restarting:
            self.supervisor.restart(name)
        self._event("connector_restarted", connector=name, tasks=[t["id"] for t in restarting])
        return Reply(202, status)

    def restart_task(self, name: str, task: str) -> Reply:
        self._task(name, task)
        self.supervisor.restart(name)
        self._event("connector_restarted", connector=name, tasks=[int(task)])
        return Reply(204)

    def connectors_document(self, params: Params) -> Any:
        expand = {e.strip() for e in params.get("expand", "").split(",") if e.strip()}
        unknown = expand - {"status", "info"}
        if unknown:
            # Connect ignores what it does not expand; an unknown value is answered as such.
            expand -= unknown
        if not expand:
            return list(self.connectors)
        out: dict[str, Any] = {}
        for name in self.connectors:
            entry: dict[str, Any] = {}
            if "status" in expand:
                entry["status"] = self.status(name)
            if "info" in expand:
                entry["info"] = self.info(name)
            out[name] = entry
        return out

    def routes(self) -> list[tuple[str, str, Handler]]:
        name = r"(?P<name>[^/]+)"
        task = r"(?P<task>[^/]+)"
        return [
            ("GET", "/", lambda p, b: self.version()),
            ("GET", "/connectors/?", lambda p, b: Reply(200, self.connectors_document(p))),
            ("GET", f"/connectors/{name}/?", lambda p, b: self.info(p["name"])),
            ("GET", f"/connectors/{name}/config", lambda p, b: dict(self._connector(p["name"]).config)),
            ("GET", f"/connectors/{name}/status", lambda p, b: self.status(p["name"])),
            (
                "GET",
                f"/connectors/{name}/tasks",
                lambda p, b: Reply(
                    200,
                    [
                        {"id": t, "config": {**self._connector(p["name"]).config, "task.id": "0"}}
                        for t in self.info(p["name"])["tasks"]
                    ],
                ),
            ),
            ("GET", f"/connectors/{name}/tasks/{task}/status", lambda p, b: self._task(p["name"], p["task"])),
            ("GET", f"/connectors/{name}/offsets", lambda p, b: self.offsets(p["name"])),
            ("PATCH", f"/connectors/{name}/offsets", lambda p, b: self.alter_offsets(p["name"], b)),
            ("DELETE", f"/connectors/{name}/offsets", lambda p, b: self.reset_offsets(p["name"])),
            ("PUT", f"/connectors/{name}/pause", lambda p, b: self.pause_connector(p["name"])),
            ("PUT", f"/connectors/{name}/resume", lambda p, b: self.resume_connector(p["name"])),
            ("PUT", f"/connectors/{name}/stop", lambda p, b: self.stop_connector(p["name"])),
            ("POST", f"/connectors/{name}/restart", lambda p, b: self.restart_connector(p["name"], p)),
            (
                "POST",
                f"/connectors/{name}/tasks/{task}/restart",
                lambda p, b: self.restart_task(p["name"], p["task"]),
            ),
        ]


# Connect's answer when the framework moved the offsets it manages and the connector's
# alterOffsets did not claim its own (Worker.completeModifyOffsetsCallback): here the
# group's offsets are moved; a component keeping offsets elsewhere must move those itself.
_FRAMEWORK_MESSAGE = (
    "The Connect framework-managed offsets for this connector have been {verb} successfully. However, if "
    "this connector manages offsets externally, they will need to be manually {verb} in the system that "
    "the connector uses."
)

# Under a Connect worker's REST request timeout (90 s): on librdkafka's mock a member must
# wait out the group's rebalance delay (its session timeout) before it may commit.
OFFSETS_TIMEOUT_S = 85.0


def _parse_sink_offsets(entries: list[Any]) -> dict[str, dict[int, int | None]]:
    """Connect's sink offsets (``SinkUtils.parseSinkConnectorOffsets``) by topic and
    partition; None: reset the partition. Connect's 400 for a malformed entry."""
    out: dict[str, dict[int, int | None]] = {}
    for entry in entries:
        partition = entry.get("partition") if isinstance(entry, dict) else None
        if not isinstance(partition, dict):
            raise ConnectRestError(400, "The partition for a sink connector offset cannot be null or missing")
        if "kafka_topic" not in partition or "kafka_partition" not in partition:
            raise ConnectRestError(
                400,
                "The partition for a sink connector offset must contain the keys 'kafka_topic' and "
                "'kafka_partition'",
            )
        topic = partition["kafka_topic"]
        if not isinstance(topic, str) or not topic:
            raise ConnectRestError(400, "Kafka topic names must be valid strings and may not be null")
        number = partition["kafka_partition"]
        if isinstance(number, bool) or not isinstance(number, (int, str)) or not str(number).isdigit():
            raise ConnectRestError(
                400,
                f"Failed to parse the following Kafka partition value in the provided offsets: '{number}'. "
                "Partition values for sink connectors need to be integers.",
            )
        offset = entry.get("offset")
        value: int | None
        if offset is None:
            value = None
        elif not isinstance(offset, dict) or "kafka_offset" not in offset:
            raise ConnectRestError(
                400, "The offset for a sink connector should either be null or contain the key 'kafka_offset'"
            )
        else:
            raw = offset["kafka_offset"]
            if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).isdigit():
                raise ConnectRestError(
                    400,
                    f"Failed to parse the following Kafka offset value in the provided offsets: '{raw}'. "
                    "Offset values for sink connectors need to be integers.",
                )
            value = int(raw)
        out.setdefault(topic, {})[int(number)] = value
    return out


def _cluster_id(bootstrap_servers: str) -> str:
    """The Kafka cluster's id, as a Connect worker reports the cluster it works with."""
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(timeout=3)
    except Exception:  # noqa: BLE001 - the id is a label; a cluster that does not answer has none
        return ""
    return str(metadata.cluster_id or "")
