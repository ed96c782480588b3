"""``ResetOffsets``: make a pipeline reprocess (or skip) by moving its consumer offsets.

Three ways, by what the step names:

- ``group=``: a plain consumer group, through the admin API (``list_offsets``,
  ``describe_consumer_groups``, ``alter_consumer_group_offsets``); it must be inactive —
  a group with members is refused, naming them where the cluster describes groups. See
  :mod:`datadrill.platform.group_offsets` for what stands in where librdkafka's mock lacks
  an API.
- ``component=`` a declared process component with a ``group``: the component is paused
  (the stack's components port), its group moved, and the component resumed — also when
  the move fails.
- ``component=`` a connector (the stack's Connect API: the relay, the sink; or
  ``[components.NAME] connector`` on ``[connect] url``): ``PUT /connectors/{name}/stop``,
  then ``DELETE /connectors/{name}/offsets`` (earliest) or ``PATCH`` with each partition's
  offset, then ``PUT .../resume`` (also when the offsets request fails).

Example::

    result = run_step(ResetOffsets(component="enricher", to="earliest"), context)
    result.detail  # "enricher paused; group enricher on orders.v1: p0 1200→0, ...; 3,600 messages to reprocess ..."
"""

from __future__ import annotations

from typing import Any

from datadrill.engine.wait import wait_until
from datadrill.errors import ConfigError, ControlError, WaitTimeout
from datadrill.faults.base import DrillContext
from datadrill.faults.connector import connector_name, connector_port, declared_component
from datadrill.interfaces.connect_client import ConnectOffset
from datadrill.model.recovery import ResetOffsets
from datadrill.platform import group_offsets
from datadrill.platform.group_offsets import GroupMove, OffsetTo
from datadrill.recovery.result import StepResult
from datadrill.stack.port import ConnectPort

FIELD = "ResetOffsets"


def run_reset_offsets(step: ResetOffsets, context: DrillContext) -> StepResult:
    to = group_offsets.parse_to(step.to)
    if step.group:
        _refuse_reference_sink_group(step, context)
        moves = _move_group(step, context, step.group, to)
        return _result(f"consumer group {step.group}", moves, to)
    declared = declared_component(context, step.component)
    if declared is not None and declared.command:
        if not declared.group:
            raise ConfigError(
                "scenario",
                f"{FIELD}.component",
                step.component,
                f"a component that consumes with a group: [components.{step.component}] names none "
                '(add group = "..."), or name the group with ResetOffsets(group=...)',
            )
        return _reset_component(step, context, declared.group, to)
    if step.component == "workload":
        raise ConfigError(
            "scenario",
            f"{FIELD}.component",
            "workload",
            "a consumer: the workload produces, it has no offsets",
        )
    connect = connector_port(context, step.component)
    if connect is None:
        known = ", ".join(context.stack.config.component_names) or "none"
        raise ConfigError(
            "scenario",
            f"{FIELD}.component",
            step.component,
            f"a declared component with a group, or a connector of a Kafka Connect API; components: {known}",
        )
    return _reset_connector(step, context, connect, connector_name(context, step.component), to)


def _refuse_reference_sink_group(step: ResetOffsets, context: DrillContext) -> None:
    config = context.stack.config
    if config.platform.reference and step.group == config.sink.group_id:
        # Its committed offsets only feed the lag SLI: the sink resumes from its table.
        raise ConfigError(
            "scenario",
            f"{FIELD}.group",
            step.group,
            "a group whose consumer resumes from it; the reference sink's group only reports lag "
            "(the sink resumes from the offsets its Iceberg snapshots record): use ReplayKafka to re-ingest",
        )


def _topics(step: ResetOffsets, context: DrillContext, group: str) -> list[str]:
    if step.topic:
        return [step.topic]
    committed = group_offsets.group_topics(context.stack.bootstrap_servers, group)
    return sorted(committed) or [context.stack.topic]


def _move_group(step: ResetOffsets, context: DrillContext, group: str, to: OffsetTo) -> list[GroupMove]:
    return [
        group_offsets.move_group(
            context.stack.bootstrap_servers,
            group,
            topic,
            to,
            timeout_s=step.timeout_s,
            session_timeout_ms=step.session_timeout_ms,
        )
        for topic in _topics(step, context, group)
    ]


def _reset_component(step: ResetOffsets, context: DrillContext, group: str, to: OffsetTo) -> StepResult:
    components = context.stack.components
    name = step.component
    was_paused = components.get(name).paused
    if not was_paused:
        components.pause(name)
    try:
        moves = _move_group(step, context, group, to)
    finally:
        # The component runs again whether or not the move worked: a runbook step must not
        # leave the pipeline stopped.
        pid = components.resume(name) if not was_paused else None
    again = f"; {name} resumed (pid {pid})" if pid is not None else f"; {name} left paused, as it was"
    return _result(f"{name} paused; consumer group {group}", moves, to, tail=again)


def _result(what: str, moves: list[GroupMove], to: OffsetTo, *, tail: str = "") -> StepResult:
    reprocess = sum(m.reprocess for m in moves)
    detail = (
        f"{what} reset to {group_offsets.describe_to(to)}: " + "; ".join(m.describe() for m in moves) + tail
    )
    return StepResult(
        detail,
        rows=reprocess,
        extra={"moves": [m.to_json() for m in moves], "reprocess": reprocess},
    )


# -- connectors through Kafka Connect's offsets API ------------------------------------------
def _reset_connector(
    step: ResetOffsets, context: DrillContext, connect: ConnectPort, name: str, to: OffsetTo
) -> StepResult:
    status = connect.status(name)
    before = connect.offsets(name)
    kafka_before = _kafka_offsets(before)
    if status.type == "source" and to != "earliest":
        raise ConfigError(
            "scenario",
            f"{FIELD}.to",
            step.to,
            f"'earliest' for the source connector {name}: its offsets are its own positions, not "
            "Kafka offsets, so only DELETE /connectors/{name}/offsets (earliest) applies",
        )
    body: list[ConnectOffset] = []
    if to != "earliest":
        body = _sink_offsets_for(step, context, connect, name, kafka_before, to)
    connect.stop(name)
    _wait_state(connect, name, "STOPPED", step.timeout_s, context)
    try:
        message = connect.alter_offsets(name, body) if body else connect.reset_offsets(name)
    finally:
        connect.resume(name)
    after = _kafka_offsets(connect.offsets(name))
    rows, moves = _connector_moves(context, kafka_before, after, body)
    how = "PATCH" if body else "DELETE"
    detail = (
        f"connector {name} at {connect.url}: stopped, {how} /connectors/{name}/offsets "
        f"({group_offsets.describe_to(to)}), resumed; {moves or 'no partitions had offsets'}; "
        f"{rows:,} messages to reprocess; Connect: {message}"
    )
    return StepResult(
        detail,
        rows=rows,
        extra={
            "connector": name,
            "connect_url": connect.url,
            "before": [{"partition": dict(o.partition), "offset": dict(o.offset)} for o in before],
            "after": [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(after.items())],
            "reprocess": rows,
            "message": message,
        },
    )


def _kafka_offsets(offsets: tuple[ConnectOffset, ...]) -> dict[tuple[str, int], int]:
    """A sink connector's offsets by (topic, partition); a source's positions have none."""
    out: dict[tuple[str, int], int] = {}
    for entry in offsets:
        topic, partition = entry.partition.get("kafka_topic"), entry.partition.get("kafka_partition")
        offset = entry.offset.get("kafka_offset")
        if isinstance(topic, str) and partition is not None and offset is not None:
            out[(topic, int(partition))] = int(offset)
    return out


def _sink_offsets_for(
    step: ResetOffsets,
    context: DrillContext,
    connect: ConnectPort,
    name: str,
    before: dict[tuple[str, int], int],
    to: OffsetTo,
) -> list[ConnectOffset]:
    """Each partition's offset for ``to`` (latest or a timestamp), over the topics the
    connector has offsets on (or ``step.topic``, or the stack's topic)."""
    bootstrap = context.stack.bootstrap_servers
    topics = [step.topic] if step.topic else sorted({t for t, _ in before}) or [context.stack.topic]
    out: list[ConnectOffset] = []
    for topic in topics:
        partitions = group_offsets.partitions_of(bootstrap, topic)
        marks = group_offsets.watermarks(bootstrap, topic, partitions)
        for partition, offset in sorted(group_offsets.resolve(bootstrap, topic, to, marks).items()):
            out.append(
                ConnectOffset({"kafka_topic": topic, "kafka_partition": partition}, {"kafka_offset": offset})
            )
    return out


def _connector_moves(
    context: DrillContext,
    before: dict[tuple[str, int], int],
    after: dict[tuple[str, int], int],
    body: list[ConnectOffset],
) -> tuple[int, str]:
    """Messages to reprocess and ``topic[p] before→after`` for each partition. After a DELETE
    a real Connect cluster lists no offsets (the group is gone): the partition restarts at
    its log start, which is what is counted."""
    sent = _kafka_offsets(tuple(body))
    keys = sorted(set(before) | set(after) | set(sent))
    starts: dict[tuple[str, int], int] = {}
    for topic in sorted({t for t, _ in keys}):
        partitions = [p for t, p in keys if t == topic]
        marks = group_offsets.watermarks(context.stack.bootstrap_servers, topic, partitions)
        starts.update({(topic, p): lo for p, (lo, _) in marks.items()})
    rows = 0
    parts: list[str] = []
    for key in keys:
        now = after.get(key, sent.get(key, starts.get(key)))
        was = before.get(key)
        if now is not None and was is not None:
            rows += was - now
        parts.append(f"{key[0]}[{key[1]}] {'none' if was is None else was}→{'?' if now is None else now}")
    return rows, ", ".join(parts)


def _wait_state(connect: ConnectPort, name: str, state: str, timeout_s: float, context: DrillContext) -> None:
    seen: list[Any] = []

    def reached() -> bool:
        status = connect.status(name)
        seen.append(status.describe())
        return status.state == state and not status.tasks

    try:
        wait_until(
            reached, timeout=timeout_s, interval=0.1, what=f"connector {name} {state}", clock=context.clock
        )
    except (WaitTimeout, ControlError) as exc:
        connect.resume(name)
        raise WaitTimeout(
            f"{exc}; Kafka Connect at {connect.url} last reported {seen[-1] if seen else 'nothing'}"
        ) from None
