"""Kafka data loss: retention deleting what a replay still needed, and a topic deleted and
created again, empty.

Neither comes back: a revert makes sure the topic exists (a runner killed between the
delete and the create leaves it missing) and says what stays lost. Both are seen from a
client's side of the cluster (watermarks and the cluster metadata, over the stack's
bootstrap servers); the deletion itself goes through the stack's Kafka port, because the
embedded stack's mock cluster answers neither DeleteRecords nor DeleteTopics over the wire
and is driven in-process by the stack (librdkafka's ``rd_kafka_mock_partition_delete_records``
and ``rd_kafka_mock_topic_delete``); a real cluster gets the admin API's calls.

Where retention cuts: per partition, the first record whose timestamp is within
``keep_newest_s`` of the fault. A real broker answers that with ListOffsets by timestamp
(``offsets_for_times``); the mock answers every timestamp with -1, so there the cut is
found by binary search over the partition's offsets, one fetch per step for all partitions
at once (about log2(records) fetches).

Example::

    handle = inject(KafkaRetention(at_s=0, keep_newest_s=5), context, ledger=ledger)
    handle.landed   # "low watermarks moved to the cut: p0 0→1,204, p1 0→1,187, ..."
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from datadrill.errors import ConfigError, StackError
from datadrill.faults.base import DrillContext, RevertData, Seen, await_effect, look_timeout
from datadrill.model.faults import KafkaRetention, TopicDeleted
from datadrill.stack.port import KafkaCapability

# How long one metadata or watermark request may take (apply; target).
REQUEST_TIMEOUT_S = 10.0
# How long one binary-search fetch waits for the record at the probed offset.
PROBE_TIMEOUT_S = 10.0
# A watermark request right after a topic is created may meet NOT_LEADER while the
# cluster's metadata settles (about a second on the mock): tried this often, this far apart.
WATERMARK_ATTEMPTS = 20
WATERMARK_RETRY_S = 0.25

Watermarks = dict[int, tuple[int, int]]


def _consumer(bootstrap: str) -> Any:
    from confluent_kafka import Consumer

    # A consumer never auto-creates a topic (allow.auto.create.topics is off for consumers):
    # looking at a deleted topic must not bring it back.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "datadrill-retention",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 20,
            "log_level": 0,
        }
    )


def topic_partitions(consumer: Any, topic: str, *, timeout_s: float) -> list[int] | None:
    """The topic's partitions from the cluster metadata; None when the topic does not exist.
    The metadata of every topic is asked for, not the topic's: a request naming it could
    create it again on a cluster that auto-creates topics."""
    listed = consumer.list_topics(timeout=timeout_s).topics.get(topic)
    if listed is None or listed.error is not None or not listed.partitions:
        return None
    return sorted(listed.partitions)


def watermarks(consumer: Any, topic: str, partitions: list[int], *, timeout_s: float) -> Watermarks:
    """(low, high) of each partition, as the leaders report them now (not cached)."""
    from confluent_kafka import TopicPartition

    return {
        p: tuple(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s, cached=False))
        for p in partitions
    }


def settled_watermarks(context: DrillContext, consumer: Any, topic: str) -> tuple[list[int], Watermarks]:
    """The topic's partitions and watermarks, retried while the cluster settles; raises
    StackError naming the topic when it does not exist or never answers."""
    from confluent_kafka import KafkaException

    last = "never asked"
    for _ in range(WATERMARK_ATTEMPTS):
        try:
            partitions = topic_partitions(consumer, topic, timeout_s=REQUEST_TIMEOUT_S)
            if partitions is None:
                last = f"topic {topic} is not in the cluster metadata"
            else:
                return partitions, watermarks(consumer, topic, partitions, timeout_s=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            last = str(exc.args[0].str() if exc.args else exc)
        context.clock.sleep(WATERMARK_RETRY_S)
    raise StackError(f"no watermarks for topic {topic} at {context.stack.bootstrap_servers}: {last}")


def cut_by_timestamps(
    marks: Watermarks, cutoff_ms: int, timestamps: Callable[[dict[int, int]], dict[int, int]]
) -> dict[int, int]:
    """Per partition, the first offset in [low, high) whose timestamp is at or after
    ``cutoff_ms`` (high when every record is older), by binary search. ``timestamps``
    answers a round of probes, ``{partition: offset} -> {partition: timestamp ms}``; record
    timestamps are taken to grow with the offset, as a producer's CreateTime does."""
    bounds = {p: [low, high] for p, (low, high) in marks.items()}
    while True:
        probes = {p: (lo + hi) // 2 for p, (lo, hi) in bounds.items() if lo < hi}
        if not probes:
            return {p: lo for p, (lo, _) in bounds.items()}
        for partition, stamp in timestamps(probes).items():
            middle = probes[partition]
            if stamp >= cutoff_ms:
                bounds[partition][1] = middle
            else:
                bounds[partition][0] = middle + 1


class TimestampProbe:
    """Answers a round of binary-search probes with one consumer: assigns every probed
    partition at its offset and reads the first record of each (only a deleted record is
    skipped, so that is the record at the offset)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = _consumer(bootstrap)

    def __call__(self, probes: dict[int, int]) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        wanted = [TopicPartition(self.topic, p, o) for p, o in probes.items()]
        # A pause outlives a new assignment in librdkafka: lift the last round's first.
        self._consumer.resume(wanted)
        self._consumer.assign(wanted)
        found: dict[int, int] = {}
        # The machine's own clock bounds a fetch, as for any network request.
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while len(found) < len(probes):
            if time.monotonic() >= deadline:
                missing = {p: probes[p] for p in sorted(set(probes) - set(found))}
                raise StackError(
                    f"no record of {self.topic} at offsets {missing} within {PROBE_TIMEOUT_S:g} s "
                    "while finding the retention cut"
                )
            for msg in self._consumer.consume(num_messages=1_000, timeout=0.2):
                partition = msg.partition()
                if msg.error() or partition not in probes or partition in found:
                    continue
                found[partition] = int(msg.timestamp()[1])
                # Its later records are not wanted: stop fetching them.
                self._consumer.pause([TopicPartition(self.topic, partition)])
        return found

    def close(self) -> None:
        self._consumer.close()


def retention_cut(
    context: DrillContext, topic: str, keep_newest_s: float
) -> tuple[Watermarks, dict[int, int], int]:
    """The watermarks now, each partition's cut, and the cutoff (epoch ms).

    ListOffsets by timestamp first (a real broker's answer). Its -1 ("no record at or after
    the cutoff") is checked against the partition's last record, because librdkafka's mock
    answers -1 to every timestamp: a last record newer than the cutoff sends the partition
    to the binary search instead."""
    bootstrap = context.stack.bootstrap_servers
    cutoff_ms = int((context.clock.wall() - keep_newest_s) * 1000)
    consumer = _consumer(bootstrap)
    try:
        _, marks = settled_watermarks(context, consumer, topic)
        listed = _list_offsets(consumer, topic, marks, cutoff_ms)
    finally:
        consumer.close()
    cuts: dict[int, int] = {}
    unsure: Watermarks = {}
    for partition, (low, high) in marks.items():
        answer = listed.get(partition, -1)
        if high <= low:
            cuts[partition] = low
        elif answer >= 0:
            cuts[partition] = min(max(answer, low), high)
        else:
            unsure[partition] = (low, high)
    if unsure:
        probe = TimestampProbe(bootstrap, topic)
        try:
            last = probe({p: high - 1 for p, (_, high) in unsure.items()})
            cuts.update({p: high for p, (_, high) in unsure.items() if last[p] < cutoff_ms})
            search = {p: unsure[p] for p in unsure if last[p] >= cutoff_ms}
            cuts.update(cut_by_timestamps(search, cutoff_ms, probe))
        finally:
            probe.close()
    return marks, cuts, cutoff_ms


def _list_offsets(consumer: Any, topic: str, marks: Watermarks, cutoff_ms: int) -> dict[int, int]:
    """ListOffsets by timestamp: per partition, the earliest offset whose timestamp is at or
    after the cutoff, or -1 when there is none (or the cluster does not say)."""
    from confluent_kafka import TopicPartition

    answer = consumer.offsets_for_times(
        [TopicPartition(topic, p, cutoff_ms) for p in sorted(marks)], timeout=REQUEST_TIMEOUT_S
    )
    return {tp.partition: int(tp.offset) if tp.error is None else -1 for tp in answer}


def _topic(spec: KafkaRetention | TopicDeleted, context: DrillContext) -> str:
    return spec.topic or context.stack.topic


def _ranges(marks: Watermarks) -> str:
    return ", ".join(f"p{p} {low:,}..{high:,}" for p, (low, high) in sorted(marks.items()))


def _existing_topic(context: DrillContext, topic: str, field: str) -> tuple[list[int], Watermarks]:
    consumer = _consumer(context.stack.bootstrap_servers)
    try:
        partitions = topic_partitions(consumer, topic, timeout_s=REQUEST_TIMEOUT_S)
        if partitions is None:
            raise ConfigError(
                "scenario",
                field,
                topic,
                f"a topic of the cluster at {context.stack.bootstrap_servers} (empty: the stack's topic "
                f"{context.stack.topic})",
            )
        return partitions, watermarks(consumer, topic, partitions, timeout_s=REQUEST_TIMEOUT_S)
    finally:
        consumer.close()


class KafkaRetentionFault:
    """Delete, per partition, the records older than ``keep_newest_s``; nothing to revert."""

    kind = "kafka.retention"
    spec_type = KafkaRetention
    requires = frozenset({KafkaCapability.DELETE_RECORDS})

    def prepare(self, spec: KafkaRetention, context: DrillContext) -> RevertData:
        return {"topic": _topic(spec, context), "keep_newest_s": spec.keep_newest_s}

    def apply(self, spec: KafkaRetention, context: DrillContext, data: RevertData) -> RevertData:
        topic = data["topic"]
        marks, cuts, cutoff_ms = retention_cut(context, topic, spec.keep_newest_s)
        moving = {p: cut for p, cut in cuts.items() if cut > marks[p][0]}
        low_after = context.stack.kafka.delete_records(topic, moving) if moving else {}
        return {
            "cutoff_ms": cutoff_ms,
            "cut": {str(p): c for p, c in sorted(cuts.items())},
            "low_before": {str(p): low for p, (low, _) in sorted(marks.items())},
            "high_before": {str(p): high for p, (_, high) in sorted(marks.items())},
            "low_after": {str(p): low for p, low in sorted(low_after.items())},
            "deleted": sum(cut - marks[p][0] for p, cut in moving.items()),
        }

    def revert(self, data: RevertData, context: DrillContext) -> str:
        if "cut" not in data:  # the apply did not finish: what it deleted before failing is unknown
            return (
                f"nothing to put back on {data['topic']}: the retention fault did not complete, and "
                "records it deleted before it failed, if any, stay deleted"
            )
        return (
            f"nothing to put back: {int(data.get('deleted', 0)):,} records of {data['topic']} deleted "
            "by retention stay deleted (a replay cannot reach them; the source or a reserve must)"
        )

    def exclusive_key(self, spec: KafkaRetention) -> str | None:
        return f"kafka.topic:{spec.topic or 'stack'}"

    def confirm(self, spec: KafkaRetention, context: DrillContext, data: RevertData, within_s: float) -> str:
        """Each partition's low watermark is at or past its cut (a real broker's own
        retention may have moved it further since)."""
        topic = data["topic"]
        cuts = {int(p): int(c) for p, c in dict(data.get("cut") or {}).items()}
        before = {int(p): int(c) for p, c in dict(data.get("low_before") or {}).items()}
        timeout_s = look_timeout(within_s)

        def look() -> Seen:
            if not cuts:
                return Seen(False, f"no retention cut was made on {topic}")
            consumer = _consumer(context.stack.bootstrap_servers)
            try:
                marks = watermarks(consumer, topic, sorted(cuts), timeout_s=timeout_s)
            finally:
                consumer.close()
            short = {p: marks[p][0] for p in cuts if marks[p][0] < cuts[p]}
            if short:
                return Seen(
                    False,
                    "low watermarks below the cut: "
                    + ", ".join(f"p{p} at {low:,} (cut {cuts[p]:,})" for p, low in sorted(short.items())),
                )
            moved = ", ".join(f"p{p} {before.get(p, 0):,}→{marks[p][0]:,}" for p in sorted(cuts))
            return Seen(
                True,
                f"low watermarks of {topic} at the cut ({moved}; {int(data.get('deleted', 0)):,} records deleted)",
            )

        return await_effect(
            context, within_s, expected=f"the low watermarks of {topic} at the retention cut", look=look
        )

    def target(self, spec: KafkaRetention, context: DrillContext) -> str:
        topic = _topic(spec, context)
        partitions, marks = _existing_topic(context, topic, "KafkaRetention.topic")
        return (
            f"topic {topic} at {context.stack.bootstrap_servers} ({len(partitions)} partitions, offsets "
            f"{_ranges(marks)}): records older than {spec.keep_newest_s:g} s deleted"
        )


class TopicDeletedFault:
    """Delete the topic and create it again, empty, with the same partitions. Reverting
    makes sure it exists; its records stay lost."""

    kind = "kafka.topic_deleted"
    spec_type = TopicDeleted
    requires = frozenset({KafkaCapability.TOPIC_RECREATE})

    def prepare(self, spec: TopicDeleted, context: DrillContext) -> RevertData:
        return {"topic": _topic(spec, context)}

    def apply(self, spec: TopicDeleted, context: DrillContext, data: RevertData) -> RevertData:
        topic = data["topic"]
        consumer = _consumer(context.stack.bootstrap_servers)
        try:
            _, marks = settled_watermarks(context, consumer, topic)
        finally:
            consumer.close()
        # Read just before the delete: what is lost is at most what these ranges held.
        created = context.stack.kafka.recreate_topic(topic)
        return {
            "recreated": True,
            "partitions": created["partitions"],
            "high_before": {str(p): high for p, (_, high) in sorted(marks.items())},
            "lost": sum(high - low for low, high in marks.values()),
        }

    def revert(self, data: RevertData, context: DrillContext) -> str:
        topic = data["topic"]
        consumer = _consumer(context.stack.bootstrap_servers)
        try:
            exists = topic_partitions(consumer, topic, timeout_s=REQUEST_TIMEOUT_S) is not None
        finally:
            consumer.close()
        lost = (
            f"its {int(data['lost']):,} records stay lost"
            if "lost" in data
            else "the fault did not complete; records deleted before it failed, if any, stay lost"
        )
        if exists:
            return f"nothing to put back: topic {topic} exists ({lost})"
        context.stack.kafka.recreate_topic(topic)
        return f"topic {topic} created again, empty ({lost})"

    def exclusive_key(self, spec: TopicDeleted) -> str | None:
        return f"kafka.topic:{spec.topic or 'stack'}"

    def confirm(self, spec: TopicDeleted, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The topic exists with its partitions, and each partition that held records has
        its high watermark restarted below where it was before the delete (an empty one may
        already hold new records)."""
        topic = data["topic"]
        before = {int(p): int(h) for p, h in dict(data.get("high_before") or {}).items()}
        timeout_s = look_timeout(within_s)

        def look() -> Seen:
            if not data.get("recreated"):
                return Seen(False, f"topic {topic} was not deleted")
            consumer = _consumer(context.stack.bootstrap_servers)
            try:
                partitions = topic_partitions(consumer, topic, timeout_s=timeout_s)
                if partitions is None:
                    return Seen(False, f"topic {topic} is not in the cluster metadata")
                if set(partitions) != set(before):
                    return Seen(False, f"topic {topic} has partitions {partitions}, not {sorted(before)}")
                marks = watermarks(consumer, topic, partitions, timeout_s=timeout_s)
            finally:
                consumer.close()
            higher = [p for p in partitions if before[p] > 0 and marks[p][1] >= before[p]]
            if higher:
                return Seen(
                    False, f"high watermarks not restarted: {_ranges(marks)} (before: highs {before})"
                )
            now = ", ".join(f"p{p} {before[p]:,}→{marks[p][1]:,}" for p in partitions)
            return Seen(True, f"topic {topic} exists again and its high watermarks restarted ({now})")

        return await_effect(
            context, within_s, expected=f"topic {topic} back, empty (high watermarks restarted)", look=look
        )

    def target(self, spec: TopicDeleted, context: DrillContext) -> str:
        topic = _topic(spec, context)
        partitions, marks = _existing_topic(context, topic, "TopicDeleted.topic")
        held = sum(high - low for low, high in marks.values())
        return (
            f"topic {topic} at {context.stack.bootstrap_servers} ({len(partitions)} partitions, "
            f"{held:,} records now): deleted and created again, empty"
        )
