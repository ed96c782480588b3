"""Replay Kafka into the table: the incident's "parallel ingestion".

From the offsets the table's current snapshot records (or the earliest offsets) up to the
high watermarks seen when the replay starts, ``workers`` threads each consume a share of
the partitions and decode with the sink's own exactly-once rules; the coordinator commits
their batches, each commit recording the offsets it covers. The sink must be paused while
this runs (the scenario model enforces pause → replay → resume).

While it works, the replay reports how many of the offsets to cover its workers have read
(``DrillContext.report_progress``, at most every :data:`PROGRESS_EVERY_S`): a batch is
committed only once it holds ``batch_rows`` rows, so commits alone would show nothing
until the end.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition

from datadrill.engine.cost_model import COST_POINTS_KEY
from datadrill.faults.base import DrillContext
from datadrill.model.recovery import ReplayKafka
from datadrill.platform.catalog import sink_state
from datadrill.platform.registry import SchemaIds, schema_ids
from datadrill.platform.sink import Batch, EventDecoder, snapshot_properties
from datadrill.platform.transactions import transaction
from datadrill.recovery.result import StepResult


@dataclass(frozen=True)
class ReplayResult:
    rows: int
    messages: int
    duplicates: int
    partitions: int
    workers: int
    elapsed_s: float
    commits: int
    # Per partition, the offsets the table recorded that Kafka no longer holds: retention
    # (or DeleteRecords) moved the low watermark past them before the replay, (from, to).
    unreachable: dict[int, tuple[int, int]] = field(default_factory=dict)
    # Per partition, a recorded offset beyond the high watermark: the topic was deleted and
    # created again, so the table's offsets name records of a topic that is gone.
    recreated: dict[int, int] = field(default_factory=dict)
    # (messages read so far, seconds since the step began), stamped as the workers read and
    # once at the end: several sizes of the same replay, so its projection is a fixed part
    # (setup, the last commit) plus a per-message part instead of a line through one point.
    cost_points: tuple[tuple[int, float], ...] = ()

    @property
    def unreachable_total(self) -> int:
        return sum(to - start for start, to in self.unreachable.values())

    @property
    def rate_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


_DONE = object()

# How often a long step tells the run how far it is: the live view redraws four times a
# second, so reporting more often would cost work and show nothing more.
PROGRESS_EVERY_S = 0.2
MAX_COST_POINTS = 64


class ThrottledProgress:
    """Passes a long step's progress to the run (``DrillContext.report_progress``) at most
    every ``every_s`` seconds by the run's clock, so a loop can call it on every batch.

    Example::

        progress = ThrottledProgress(context, total=21_213, unit="messages")
        for batch in batches:
            done += len(batch)
            progress(done)
    """

    def __init__(
        self,
        context: DrillContext,
        *,
        total: int | None = None,
        unit: str = "rows",
        every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        self.context = context
        self.total = total
        self.unit = unit
        self.every_s = every_s
        self._last: float | None = None

    def __call__(self, done: int, *, force: bool = False) -> None:
        now = self.context.clock.monotonic()
        if not force and self._last is not None and now - self._last < self.every_s:
            return
        self._last = now
        self.context.report_progress(done, self.total, self.unit)


@dataclass
class _Read:
    """Messages the workers have read so far, added up across their threads."""

    messages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, n: int) -> None:
        with self._lock:
            self.messages += n


def _worker(
    bootstrap: str,
    topic: str,
    starts: dict[int, int],
    ends: dict[int, int],
    high_ids: dict[int, int],
    batch_rows: int,
    out: queue.Queue[object],
    deadline: float,
    ids: SchemaIds,
    read: _Read,
) -> tuple[int, int]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "datadrill-replay",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
            "client.id": "datadrill-replay",
        }
    )
    decoder = EventDecoder(ids)
    messages = duplicates = 0
    remaining = {p for p in starts if starts[p] < ends[p]}
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in remaining])
    high = dict(high_ids)
    batch = Batch(started=time.monotonic())
    try:
        while remaining and time.monotonic() < deadline:
            wanted = []
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error():
                    continue
                partition, offset = msg.partition(), msg.offset()
                assert partition is not None and offset is not None
                if partition not in remaining or offset >= ends[partition]:
                    continue
                wanted.append(msg)
                if offset + 1 >= ends[partition]:
                    remaining.discard(partition)
            if wanted:
                outcomes = decoder.add_many(batch, wanted, high, time.time_ns() // 1000)
                messages += len(wanted)
                duplicates += outcomes.count("duplicate")
                read.add(len(wanted))
            if batch.rows >= batch_rows:
                high.update(batch.max_ids)
                out.put(batch)
                batch = Batch(started=time.monotonic())
        if remaining:
            raise TimeoutError(f"replay did not reach the end offsets of partitions {sorted(remaining)}")
        if batch.messages:
            out.put(batch)
    finally:
        consumer.close()
    return messages, duplicates


def _commit_group_offsets(bootstrap: str, topic: str, group: str, offsets: dict[int, int]) -> None:
    """Tell the sink's consumer group how far the table now is, so lag reflects the replay."""
    if not offsets:
        return
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def replay_kafka(
    step: ReplayKafka, context: DrillContext, *, timeout_s: float = 600.0, apply: bool = True
) -> ReplayResult:
    """Replay Kafka into the table. ``apply=False`` is the measurement mode (``Compare``):
    the same offsets consumed and decoded by the same workers, with no commit to the table
    or the sink's group; ``rows`` are those the replay would have written."""
    stack = context.stack
    began = time.monotonic()
    points: list[tuple[int, float]] = []
    catalog = stack.catalog()
    table = catalog.load_table(stack.table)
    # The table's event ids apply to either start: what it already holds is dropped.
    offsets, max_ids = sink_state(table)
    probe = Consumer({"bootstrap.servers": stack.bootstrap_servers, "group.id": "datadrill-replay"})
    try:
        metadata = probe.list_topics(stack.topic, timeout=10)
        partitions = sorted(metadata.topics[stack.topic].partitions)
        watermarks = {
            p: probe.get_watermark_offsets(TopicPartition(stack.topic, p), timeout=10) for p in partitions
        }
    finally:
        probe.close()
    unreachable, recreated = reach(offsets, watermarks)
    if step.start == "table_offsets":
        starts = {
            p: watermarks[p][0] if p in recreated else max(offsets.get(p, watermarks[p][0]), watermarks[p][0])
            for p in partitions
        }
    else:
        starts = {p: watermarks[p][0] for p in partitions}
    ends = {p: watermarks[p][1] for p in partitions}
    # Progress counts offsets, not rows: the offsets to cover are known before the first
    # read, and duplicates the decoder drops cover offsets without making rows.
    progress = ThrottledProgress(context, total=sum(ends[p] - starts[p] for p in partitions), unit="messages")
    read = _Read()
    shares: list[list[int]] = [partitions[i :: step.workers] for i in range(step.workers)]
    shares = [s for s in shares if s]
    out: queue.Queue[object] = queue.Queue(maxsize=step.workers * 2)
    started = time.monotonic()
    deadline = started + timeout_s
    rows = commits = 0
    committed_offsets, committed_ids = dict(offsets), dict(max_ids)
    # One registry client for every worker (it caches the schemas it has fetched).
    ids = schema_ids(stack.config)
    with ThreadPoolExecutor(max_workers=len(shares), thread_name_prefix="replay") as pool:
        futures = [
            pool.submit(
                _worker,
                stack.bootstrap_servers,
                stack.topic,
                {p: starts[p] for p in share},
                {p: ends[p] for p in share},
                {p: max_ids[p] for p in share if p in max_ids},
                step.batch_rows,
                out,
                deadline,
                ids,
                read,
            )
            for share in shares
        ]
        finished = threading.Event()

        def _watch() -> None:
            for future in futures:
                future.exception()
            out.put(_DONE)
            finished.set()

        threading.Thread(target=_watch, daemon=True).start()
        # One writer: Iceberg commits are serialised here, each carrying the offsets and
        # event ids of the partitions its batches cover. Batches wait until they hold
        # batch_rows rows or the workers are done: an Iceberg commit costs as much as
        # decoding tens of thousands of messages, so the workers' batches go in together.
        progress(0, force=True)
        pending: list[Batch] = []
        while True:
            try:
                item = out.get(timeout=PROGRESS_EVERY_S)
            except queue.Empty:
                progress(read.messages)
                _stamp(points, read.messages, began)
                continue
            progress(read.messages)
            _stamp(points, read.messages, began)
            done = item is _DONE
            if not done:
                assert isinstance(item, Batch)
                pending.append(item)
                if sum(b.rows for b in pending) < step.batch_rows:
                    continue
            for batch in pending:
                committed_offsets.update(batch.offsets)
                committed_ids.update(batch.max_ids)
            arrows = [batch.arrow() for batch in pending if batch.rows]
            pending = []
            if arrows:
                if apply:
                    with transaction(table) as tx:
                        tx.append(
                            pa.concat_tables(arrows),
                            snapshot_properties=snapshot_properties(committed_offsets, committed_ids),
                        )
                    commits += 1
                rows += sum(len(a) for a in arrows)
            if done:
                break
        results = [future.result() for future in futures]  # re-raises a worker's failure
    if apply:
        _commit_group_offsets(stack.bootstrap_servers, stack.topic, stack.config.sink.group_id, committed_offsets)
    elapsed = time.monotonic() - started
    messages = sum(r[0] for r in results)
    _stamp(points, messages, began)
    return ReplayResult(
        rows=rows,
        messages=sum(r[0] for r in results),
        duplicates=sum(r[1] for r in results),
        partitions=len(partitions),
        workers=len(shares),
        elapsed_s=elapsed,
        commits=commits,
        unreachable=unreachable,
        recreated=recreated,
        cost_points=tuple(points),
    )


def _stamp(points: list[tuple[int, float]], messages: int, began: float) -> None:
    """One (size, seconds) point when the size grew since the last one; past
    :data:`MAX_COST_POINTS` every other point goes (a long replay keeps its shape, and the
    journal stays small)."""
    if messages > 0 and (not points or messages > points[-1][0]):
        points.append((messages, round(time.monotonic() - began, 6)))
        if len(points) > MAX_COST_POINTS:
            del points[1:-1:2]


def reach(
    recorded: dict[int, int], watermarks: dict[int, tuple[int, int]]
) -> tuple[dict[int, tuple[int, int]], dict[int, int]]:
    """What a replay cannot reach, per partition: the offsets from the table's recorded one
    up to the low watermark (deleted before the replay), and recorded offsets beyond the
    high watermark (the topic was recreated: its offsets restarted below them).

    Example::

        reach({0: 100, 1: 900}, {0: (1_334, 2_000), 1: (0, 40)})
        # ({0: (100, 1334)}, {1: 900})
    """
    unreachable: dict[int, tuple[int, int]] = {}
    recreated: dict[int, int] = {}
    for partition, (low, high) in sorted(watermarks.items()):
        offset = recorded.get(partition)
        if offset is None:
            continue
        if offset > high:
            recreated[partition] = offset
        elif offset < low:
            unreachable[partition] = (offset, low)
    return unreachable, recreated


def unreachable_text(result: ReplayResult) -> str:
    """The report's sentence on what the replay could not reach ("" when it reached all)."""
    parts = []
    if result.unreachable:
        each = "; ".join(
            f"{to - start:,} offsets of partition {p} ({start:,}..{to - 1:,})"
            for p, (start, to) in sorted(result.unreachable.items())
        )
        parts.append(
            f"{each} were deleted by retention before the replay: those rows need the source or a reserve"
        )
    if result.recreated:
        which = ", ".join(str(p) for p in sorted(result.recreated))
        parts.append(
            f"the table's offsets of partition{'s' if len(result.recreated) > 1 else ''} {which} lie beyond "
            "the high watermark: the topic was recreated and its earlier records are gone (replayed from "
            "the low watermark; the rows of the old topic need the source or a reserve)"
        )
    return "; ".join(parts)


def run_replay_kafka(step: ReplayKafka, context: DrillContext) -> StepResult:
    result = replay_kafka(step, context)
    missed = unreachable_text(result)
    return StepResult(
        f"{result.rows:,} rows replayed from {result.messages:,} messages on {result.partitions} "
        f"partitions with {result.workers} workers ({result.duplicates:,} duplicates dropped, "
        f"{result.commits} commit{'' if result.commits == 1 else 's'})" + (f"; {missed}" if missed else ""),
        rows=result.rows,
        rate_per_s=result.rate_per_s,
        extra=_extra(step, result),
    )


def _extra(step: ReplayKafka, result: ReplayResult) -> dict[str, object]:
    """What the journal keeps of a replay, applied or measured: a measured one is projected
    with the same model (its sizes, its partitions) as the one applied."""
    return {
        "replay_rows": result.rows,
        "replay_rate_per_s": result.rate_per_s,
        "workers": result.workers,
        "replay_start": step.start,
        # Per partition (as a string key, JSON's): the offsets retention took first.
        "unreachable_offsets": {
            str(p): {"from": start, "to": to, "count": to - start}
            for p, (start, to) in sorted(result.unreachable.items())
        },
        "unreachable_total": result.unreachable_total,
        "recreated_partitions": {str(p): o for p, o in sorted(result.recreated.items())},
        # Several sizes of this replay (messages read, seconds): its projection's fit.
        COST_POINTS_KEY: [list(p) for p in result.cost_points],
        "partitions": result.partitions,
    }


def measure_replay_kafka(step: ReplayKafka, context: DrillContext) -> StepResult:
    """The replay's measurement mode (``Compare``): consume and decode what it would
    replay, commit nothing. The Iceberg commits are not in its time."""
    result = replay_kafka(step, context, apply=False)
    return StepResult(
        f"measured, not applied: {result.rows:,} rows decoded from {result.messages:,} messages on "
        f"{result.partitions} partitions with {result.workers} workers ({result.duplicates:,} duplicates "
        "dropped); nothing was committed",
        rows=result.rows,
        rate_per_s=result.rate_per_s,
        extra=_extra(step, result),
    )
