"""A Kafka consumer group's committed offsets: read them, resolve where to move them
(earliest, latest, a timestamp) and commit new ones, the way ``kafka-consumer-groups
--reset-offsets`` does, on any cluster, librdkafka's mock included.

What each cluster offers, and what is done instead where it lacks it:

- ``ListOffsets`` (AdminClient ``list_offsets``) answers earliest and latest everywhere;
  librdkafka's mock answers a timestamp with -1 ("FIXME: by timestamp" in its handler), so
  when the answer is -1 but the partition's last message is not older than the timestamp,
  the offset is found by a binary search over the messages' timestamps instead.
- ``DescribeGroups`` says whether the group is inactive and names its members; the mock
  does not serve it. ``OffsetCommit`` from outside the group (AdminClient
  ``alter_consumer_group_offsets``) needs an inactive group on a real broker and is refused
  by the mock for any group it has seen (``UNKNOWN_MEMBER_ID``). Where either is missing,
  the offsets are committed by a member: a consumer joins the group, and only when it is
  handed every partition of the topic (no one else is in the group) commits and leaves.

Example::

    reset = reset_group("127.0.0.1:9092", "enricher", "orders.v1", "earliest", timeout_s=30)
    reset.describe()   # "group enricher on orders.v1: p0 120→0, p1 118→0 ...; 358 messages to reprocess"
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from datadrill.errors import StackError

# Where to move a group: the log start, the log end, or the first message at or after
# this many milliseconds since the epoch.
OffsetTo = Literal["earliest", "latest"] | int

_UNKNOWN_MEMBER_ID = 25

# librdkafka's default session.timeout.ms: what a group's consumers most likely use. The
# member that commits on a cluster refusing outside commits joins with the group's own
# session timeout: librdkafka's mock keeps a group rebalancing for (the session timeout of
# its latest member - 1 s) after a member leaves, and expires a member that waits longer
# than its own session, so a shorter one than the group's never gets its partitions.
SESSION_TIMEOUT_MS = 45_000


class GroupActive(StackError):
    """The group has members: its offsets can only be moved while it is inactive."""


@dataclass(frozen=True)
class PartitionMove:
    """One partition's committed offset before and after, and the log around it."""

    partition: int
    before: int | None  # None: nothing committed
    after: int
    start: int  # log start offset
    end: int  # log end offset (high watermark)

    @property
    def reprocess(self) -> int:
        """Messages read again (negative: skipped) compared with the offset committed before;
        with nothing committed, every message from ``after`` to the end."""
        return (self.before if self.before is not None else self.end) - self.after


@dataclass(frozen=True)
class GroupMove:
    """What a reset did to a group on one topic, and how."""

    group: str
    topic: str
    partitions: tuple[PartitionMove, ...]
    how: str

    @property
    def reprocess(self) -> int:
        return sum(p.reprocess for p in self.partitions)

    def describe(self) -> str:
        moves = ", ".join(
            f"p{p.partition} {'none' if p.before is None else p.before}→{p.after}" for p in self.partitions
        )
        verb = "to reprocess" if self.reprocess >= 0 else "skipped"
        count = f"{abs(self.reprocess):,} messages {verb}"
        return f"group {self.group} on {self.topic}: {moves}; {count} ({self.how})"

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "topic": self.topic,
            "how": self.how,
            "reprocess": self.reprocess,
            "partitions": [
                {
                    "partition": p.partition,
                    "before": p.before,
                    "after": p.after,
                    "start": p.start,
                    "end": p.end,
                }
                for p in self.partitions
            ],
        }


def parse_to(value: object) -> OffsetTo:
    """``"earliest"``, ``"latest"``, epoch milliseconds (an int, or digits), or an ISO-8601
    time with a zone (``2026-11-29T10:00:00Z``); ValueError saying what is allowed."""
    if isinstance(value, bool):
        raise ValueError(f"expected 'earliest', 'latest', epoch ms or an ISO-8601 time, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"epoch milliseconds are >= 0, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected 'earliest', 'latest', epoch ms or an ISO-8601 time, got {value!r}")
    text = value.strip()
    if text in ("earliest", "latest"):
        return "earliest" if text == "earliest" else "latest"
    if text.isdigit():
        return int(text)
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected 'earliest', 'latest', epoch ms or an ISO-8601 time "
            f"(e.g. 2026-11-29T10:00:00Z), got {value!r}"
        ) from None
    if moment.tzinfo is None:
        # A time without a zone means different instants on different machines.
        raise ValueError(f"an ISO-8601 time needs a zone (Z or +HH:MM), got {value!r}")
    return int(moment.timestamp() * 1000)


def describe_to(to: OffsetTo) -> str:
    if isinstance(to, int):
        from datetime import UTC, datetime

        return f"{datetime.fromtimestamp(to / 1000, UTC).isoformat(timespec='milliseconds')} ({to} ms)"
    return to


def _admin(bootstrap_servers: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 3})


def _metadata(bootstrap_servers: str, topic: str | None, timeout_s: float) -> Any:
    from confluent_kafka import KafkaException

    try:
        return _admin(bootstrap_servers).list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise StackError(f"Kafka at {bootstrap_servers} did not answer a metadata request: {exc}") from exc


def partitions_of(bootstrap_servers: str, topic: str, *, timeout_s: float = 10.0) -> list[int]:
    """The topic's partitions; StackError when the cluster does not have it."""
    metadata = _metadata(bootstrap_servers, topic, timeout_s)
    entry = metadata.topics.get(topic)
    if entry is None or entry.error is not None or not entry.partitions:
        why = entry.error if entry is not None and entry.error is not None else "no partitions"
        raise StackError(f"topic {topic!r} on {bootstrap_servers}: {why}")
    return sorted(entry.partitions)


def topics_of(bootstrap_servers: str, *, timeout_s: float = 10.0) -> list[str]:
    metadata = _metadata(bootstrap_servers, None, timeout_s)
    return sorted(t for t in metadata.topics if not t.startswith("__"))


def _consumer(bootstrap_servers: str, group: str, *, session_timeout_ms: int = SESSION_TIMEOUT_MS) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "session.timeout.ms": session_timeout_ms,
            "log_level": 3,
        }
    )


def committed(
    bootstrap_servers: str, group: str, topic: str, partitions: list[int], *, timeout_s: float = 10.0
) -> dict[int, int | None]:
    """The group's committed offset of each partition (None: nothing committed). Asked for
    explicit partitions (``OffsetFetch`` for all of a group's topics is not in the mock)."""
    from confluent_kafka import TopicPartition

    consumer = _consumer(bootstrap_servers, group)
    try:
        answer = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s)
    finally:
        consumer.close()
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in answer}


def watermarks(
    bootstrap_servers: str, topic: str, partitions: list[int], *, timeout_s: float = 10.0
) -> dict[int, tuple[int, int]]:
    """(log start, log end) of each partition."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    admin = _admin(bootstrap_servers)
    out: dict[int, list[int]] = {p: [0, 0] for p in partitions}
    specs = (OffsetSpec.earliest(), OffsetSpec.latest())  # type: ignore[no-untyped-call]
    for index, spec in enumerate(specs):
        answer = admin.list_offsets(
            {TopicPartition(topic, p): spec for p in partitions}, request_timeout=timeout_s
        )
        for tp, future in answer.items():
            out[tp.partition][index] = int(future.result().offset)
    return {p: (lo, hi) for p, (lo, hi) in out.items()}


def resolve(
    bootstrap_servers: str,
    topic: str,
    to: OffsetTo,
    marks: Mapping[int, tuple[int, int]],
    *,
    timeout_s: float = 10.0,
) -> dict[int, int]:
    """The offset of each partition that ``to`` names. A timestamp with no message at or after
    it resolves to the log end (as ``kafka-consumer-groups --to-datetime`` does)."""
    if to == "earliest":
        return {p: lo for p, (lo, _) in marks.items()}
    if to == "latest":
        return {p: hi for p, (_, hi) in marks.items()}
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    admin = _admin(bootstrap_servers)  # held until the futures resolve: a collected client cancels them
    answer = admin.list_offsets(
        {TopicPartition(topic, p): OffsetSpec.for_timestamp(to) for p in marks}, request_timeout=timeout_s
    )
    found = {tp.partition: int(future.result().offset) for tp, future in answer.items()}
    out: dict[int, int] = {}
    searcher: _TimeSearch | None = None
    try:
        for partition, (lo, hi) in sorted(marks.items()):
            offset = found.get(partition, -1)
            if offset >= 0:
                out[partition] = offset
                continue
            if hi <= lo:
                out[partition] = hi
                continue
            searcher = searcher or _TimeSearch(bootstrap_servers, topic, timeout_s)
            # -1 is right when every message is older; a broker that does not look up
            # timestamps (the mock) says -1 regardless: then search the log itself.
            if searcher.timestamp(partition, hi - 1) < to:
                out[partition] = hi
            else:
                out[partition] = searcher.first_at_or_after(partition, lo, hi - 1, to)
    finally:
        if searcher is not None:
            searcher.close()
    return out


class _TimeSearch:
    """Reads single messages by offset to binary-search a partition by timestamp (the
    messages' timestamps are taken as non-decreasing, as Kafka's time index assumes)."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout_s: float) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self.timeout_s = timeout_s
        # No group: assign() and read, nothing committed.
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": "datadrill-offset-search",
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )

    def timestamp(self, partition: int, offset: int) -> int:
        from confluent_kafka import TopicPartition

        self.consumer.assign([TopicPartition(self.topic, partition, offset)])
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            return int(msg.timestamp()[1])
        raise StackError(f"{self.topic}[{partition}]@{offset}: no message read within {self.timeout_s:g} s")

    def first_at_or_after(self, partition: int, lo: int, hi: int, to: int) -> int:
        """The smallest offset in [lo, hi] whose timestamp is >= ``to`` (hi's is)."""
        while lo < hi:
            mid = (lo + hi) // 2
            if self.timestamp(partition, mid) >= to:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def close(self) -> None:
        self.consumer.close()


def members(bootstrap_servers: str, group: str, *, timeout_s: float = 10.0) -> list[str] | None:
    """The group's members (``client_id@host (member_id)``), [] when it is inactive, or None
    when the cluster cannot describe groups (librdkafka's mock)."""
    from confluent_kafka import ConsumerGroupState, KafkaException

    admin = _admin(bootstrap_servers)  # held until the future resolves
    future = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group]
    try:
        description = future.result()
    except KafkaException as exc:
        if exc.args and exc.args[0].code() in (-165, 35):  # _UNSUPPORTED_FEATURE, UNSUPPORTED_VERSION
            return None
        raise StackError(f"describing consumer group {group!r} on {bootstrap_servers}: {exc}") from exc
    if description.state in (ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD):
        return []
    return [f"{m.client_id}@{m.host} ({m.member_id})" for m in description.members] or [
        f"(state {description.state.name}, members not listed)"
    ]


def commit(
    bootstrap_servers: str,
    group: str,
    topic: str,
    offsets: Mapping[int, int],
    *,
    timeout_s: float,
    session_timeout_ms: int = SESSION_TIMEOUT_MS,
    partitions: list[int] | None = None,
) -> str:
    """Commit ``offsets`` for an inactive group; returns how. GroupActive when the group has
    members (named where the cluster describes groups). ``partitions``: all of the topic's
    (default: those in ``offsets``), which a lone member joining the group is handed."""
    listed = members(bootstrap_servers, group, timeout_s=timeout_s)
    if listed:
        raise GroupActive(
            f"consumer group {group!r} has active members: {', '.join(listed)}; its offsets can be "
            "reset only while it is inactive (stop its consumers, or name the component with "
            "component= so the step pauses it)"
        )
    if listed is not None and _commit_as_admin(bootstrap_servers, group, topic, offsets, timeout_s):
        return "AdminClient alter_consumer_group_offsets"
    every = sorted(partitions) if partitions is not None else sorted(offsets)
    _commit_as_member(bootstrap_servers, group, topic, offsets, every, timeout_s, session_timeout_ms)
    return "committed by a member of the group (the cluster takes no commit from outside it)"


def _commit_as_admin(
    bootstrap_servers: str, group: str, topic: str, offsets: Mapping[int, int], timeout_s: float
) -> bool:
    """True when the admin API committed; False when the broker wants a member to."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in offsets.items()])
    try:
        admin = _admin(bootstrap_servers)  # held until the future resolves
        result = admin.alter_consumer_group_offsets([request], request_timeout=timeout_s)
        answer = result[group].result()
    except KafkaException as exc:
        if exc.args and exc.args[0].code() == _UNKNOWN_MEMBER_ID:
            return False
        raise StackError(f"committing offsets of group {group!r}: {exc}") from exc
    errors = [tp for tp in answer.topic_partitions if tp.error is not None]
    if any(tp.error.code() == _UNKNOWN_MEMBER_ID for tp in errors):
        return False
    if errors:
        raise StackError(f"committing offsets of group {group!r}: {[str(tp.error) for tp in errors]}")
    return True


def _commit_as_member(
    bootstrap_servers: str,
    group: str,
    topic: str,
    offsets: Mapping[int, int],
    every: list[int],
    timeout_s: float,
    session_timeout_ms: int,
) -> None:
    from confluent_kafka import TopicPartition

    consumer = _consumer(bootstrap_servers, group, session_timeout_ms=session_timeout_ms)
    assigned: list[list[int]] = []

    def on_assign(_consumer: Any, partitions: list[Any]) -> None:
        assigned.append(sorted(tp.partition for tp in partitions))

    try:
        consumer.subscribe([topic], on_assign=on_assign)
        deadline = time.monotonic() + timeout_s
        while not assigned:
            if time.monotonic() >= deadline:
                raise GroupActive(
                    f"consumer group {group!r}: no partitions of {topic} assigned to a new member within "
                    f"{timeout_s:g} s (a rebalance waiting on members that do not answer?)"
                )
            consumer.poll(0.2)  # messages it fetches are never committed (auto commit off)
        mine = assigned[-1]
        if set(mine) != set(every):
            raise GroupActive(
                f"consumer group {group!r} has other active members: a member joining it got "
                f"partitions {mine} of {every} on {topic} (this cluster cannot describe "
                "groups to name them); its offsets can be reset only while it is inactive"
            )
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in sorted(offsets.items())], asynchronous=False
        )
    finally:
        with contextlib.suppress(Exception):  # leaving the group is best effort once committed
            consumer.close()


def move_group(
    bootstrap_servers: str,
    group: str,
    topic: str,
    to: OffsetTo | Mapping[int, int],
    *,
    timeout_s: float,
    session_timeout_ms: int = SESSION_TIMEOUT_MS,
) -> GroupMove:
    """Move ``group`` on ``topic`` to ``to`` (a target, or explicit offsets by partition);
    reads the committed offsets back to report before → after."""
    partitions = partitions_of(bootstrap_servers, topic, timeout_s=timeout_s)
    marks = watermarks(bootstrap_servers, topic, partitions, timeout_s=timeout_s)
    before = committed(bootstrap_servers, group, topic, partitions, timeout_s=timeout_s)
    if isinstance(to, Mapping):
        unknown = sorted(set(to) - set(partitions))
        if unknown:
            raise StackError(f"topic {topic} has partitions {partitions}, not {unknown}")
        # Partitions not named keep their committed offset (PATCH semantics).
        target = {p: int(o) for p, o in to.items()}
    else:
        target = resolve(bootstrap_servers, topic, to, marks, timeout_s=timeout_s)
    how = commit(
        bootstrap_servers,
        group,
        topic,
        target,
        timeout_s=timeout_s,
        session_timeout_ms=session_timeout_ms,
        partitions=partitions,
    )
    after = committed(bootstrap_servers, group, topic, sorted(target), timeout_s=timeout_s)
    return GroupMove(
        group,
        topic,
        tuple(
            PartitionMove(p, before.get(p), _or(after.get(p), target[p]), *marks[p]) for p in sorted(target)
        ),
        how,
    )


def group_topics(bootstrap_servers: str, group: str, *, timeout_s: float = 10.0) -> dict[str, dict[int, int]]:
    """Every topic on which ``group`` has committed offsets, with them (asked partition by
    partition, which every cluster answers)."""
    out: dict[str, dict[int, int]] = {}
    for topic in topics_of(bootstrap_servers, timeout_s=timeout_s):
        offsets = committed(
            bootstrap_servers,
            group,
            topic,
            partitions_of(bootstrap_servers, topic, timeout_s=timeout_s),
            timeout_s=timeout_s,
        )
        found = {p: o for p, o in offsets.items() if o is not None}
        if found:
            out[topic] = found
    return out


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
