"""Re-snapshot from the source: the CDC way back, like Debezium's incremental snapshot.

A reconciliation (:func:`~datadrill.recovery.reconcile_step.live_reconcile`) names the
source rows the table lacks: the gap a dropped replication slot (or any lost stretch of
events) left. Those keys are split, in key order, into chunks of ``chunk_rows``;
``workers`` threads, each on its own source connection, take chunks in turn and write each
one into the outbox in one transaction::

    INSERT INTO outbox (order_id, ...) SELECT order_id, ... FROM orders WHERE <chunk keys>

So the re-read rows travel the way every change does: the relay (poll or CDC) publishes
them under the data contract, with its headers and fresh event ids, and the sink ingests
them with its exactly-once rule. Nothing writes the table behind the pipeline's back.

**The watermark.** A chunk is read and written in one transaction, so its events take
their place in the change stream at its commit: a change to those rows committed before
is older in the stream, one committed after is newer. That is what Debezium's low and high
watermarks achieve for a snapshot read outside the log; here the outbox is the log, and
the read is inside the write.

**Event ids follow commit order.** The sink drops an event whose id is not above its
partition's high-water id, so an event id handed out before another but committed after
it would be lost. On PostgreSQL each chunk's transaction takes ``LOCK TABLE outbox IN
SHARE ROW EXCLUSIVE MODE`` before it inserts: the lock conflicts with the ROW EXCLUSIVE
lock every INSERT takes, so it waits for the workload's insert in flight to commit and
holds the next one back until the chunk commits (so do the other workers' chunks). Before
the lock, the chunk's rows are read ``FOR SHARE``, by all workers at once: that pins their
values until the commit, and the insert re-reads them from the buffer cache. On SQLite
``BEGIN IMMEDIATE`` (:meth:`SourceConnection.transaction`) takes the database's one write
lock: writers already take turns. The reads are parallel; the short writes take turns.

The step ends when the table holds every re-snapshotted key (polled through the stack's
query engine, only for the keys still missing), or fails ``timeout_s`` after the gap was
found, naming how many are still missing. Its rate is rows over the whole phase: finding the gap, writing
it and the pipeline carrying it into the table.

Example::

    run_step(ResnapshotFromSource(workers=4, chunk_rows=5000), context).detail
    # "12,000 missing rows re-snapshotted from the source (keys 40001..52000) in 3 chunks
    #  with 4 workers through the outbox; the table held them all after 6.1 s"
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg2.errors

from datadrill.clock import Clock
from datadrill.errors import WaitTimeout
from datadrill.faults.base import DrillContext
from datadrill.integrity.dialects import quote_table
from datadrill.integrity.targets import SinkEngine, open_sink
from datadrill.model.recovery import ResnapshotFromSource
from datadrill.platform.source_conn import SOURCE_ERRORS, SourceConnection, as_source
from datadrill.platform.source_db import hold_event_order
from datadrill.recovery.reconcile_step import live_reconcile
from datadrill.recovery.replay import ThrottledProgress
from datadrill.recovery.result import StepResult

KEY = "order_id"
OUTBOX_COLUMNS = "order_id, customer_id, amount_cents, currency, status, created_at_us, is_canary"
# A predicate ORs at most this many BETWEEN ranges: SQLite refuses expression trees deeper
# than 1,000, and an OR chain is as deep as it is long.
MAX_RANGES_PER_PREDICATE = 64
# Scattered keys go in IN lists of at most this many literals (one statement each).
MAX_KEYS_PER_IN_LIST = 10_000
# How often the table is asked which of the keys have landed.
POLL_INTERVAL_S = 0.5
# How many gap ranges the journal keeps (a scattered gap has thousands).
RANGES_REPORTED = 20


def key_runs(keys: Sequence[int]) -> list[tuple[int, int]]:
    """The runs of consecutive integers in ``keys`` (sorted, duplicates dropped), as
    ``(first, last)`` pairs.

    Example::

        key_runs([5, 1, 2, 3, 9, 10])   # [(1, 3), (5, 5), (9, 10)]
    """
    runs: list[tuple[int, int]] = []
    for key in sorted(set(keys)):
        if runs and key == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], key)
        else:
            runs.append((key, key))
    return runs


def chunks_of(keys: Sequence[int], chunk_rows: int) -> list[tuple[int, ...]]:
    """``keys`` sorted and cut into key-range chunks of at most ``chunk_rows`` keys."""
    ordered = sorted(set(keys))
    return [tuple(ordered[i : i + chunk_rows]) for i in range(0, len(ordered), chunk_rows)]


def key_predicates(column: str, keys: Sequence[int]) -> list[str]:
    """SQL predicates on ``column`` that together select exactly ``keys``: runs of two or
    more keys as ``BETWEEN`` ranges (a contiguous gap is one range), single keys in ``IN``
    lists. The keys are integers written as literals, so the same text runs on SQLite,
    PostgreSQL, DuckDB and Trino without a placeholder limit.

    Example::

        key_predicates("order_id", [1, 2, 3, 7])
        # ['(order_id BETWEEN 1 AND 3)', 'order_id IN (7)']
    """
    runs = key_runs([int(k) for k in keys])
    ranges = [(lo, hi) for lo, hi in runs if hi > lo]
    singles = [lo for lo, hi in runs if hi == lo]
    predicates = []
    for i in range(0, len(ranges), MAX_RANGES_PER_PREDICATE):
        group = ranges[i : i + MAX_RANGES_PER_PREDICATE]
        predicates.append("(" + " OR ".join(f"{column} BETWEEN {lo} AND {hi}" for lo, hi in group) + ")")
    for i in range(0, len(singles), MAX_KEYS_PER_IN_LIST):
        group_keys = singles[i : i + MAX_KEYS_PER_IN_LIST]
        predicates.append(f"{column} IN ({', '.join(str(k) for k in group_keys)})")
    return predicates


def describe_ranges(runs: Sequence[tuple[int, int]]) -> str:
    """``keys 1..3, 7`` (the first few runs, then how many more)."""
    shown = ", ".join(f"{lo}..{hi}" if hi > lo else str(lo) for lo, hi in runs[:3])
    more = f" and {len(runs) - 3:,} more ranges" if len(runs) > 3 else ""
    return f"keys {shown}{more}" if runs else "no keys"


def write_chunk(db: SourceConnection, keys: Sequence[int]) -> list[int]:
    """Read the chunk's orders and write them into the outbox in one transaction; return
    the keys the source held (a row deleted since the gap was found is not re-snapshotted)."""
    predicates = key_predicates(KEY, keys)
    found: list[int] = []
    with db.transaction():
        for predicate in predicates:
            # FOR SHARE: the rows' values stay as read until the commit (see the module's
            # docstring); other workers read theirs at the same time.
            lock = " FOR SHARE" if db.is_postgres else ""
            found.extend(int(r[0]) for r in db.execute(f"SELECT {KEY} FROM orders WHERE {predicate}{lock}"))
        hold_event_order(db)
        for predicate in predicates:
            db.execute(
                f"INSERT INTO outbox ({OUTBOX_COLUMNS}) SELECT {OUTBOX_COLUMNS} FROM orders "
                f"WHERE {predicate} ORDER BY {KEY}"
            )
    return found


def _busy(exc: Exception) -> bool:
    """Did a chunk fail only because other writers held the source too long? SQLite's busy
    timeout ran out (``database is locked``), or PostgreSQL chose this transaction as a
    deadlock's victim or could not get a lock: the chunk rolled back and can be tried again."""
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    return isinstance(
        exc,
        (
            psycopg2.errors.DeadlockDetected,
            psycopg2.errors.LockNotAvailable,
            psycopg2.errors.SerializationFailure,
        ),
    )


def _write_retrying(db: SourceConnection, keys: Sequence[int], *, clock: Clock, deadline: float) -> list[int]:
    """:func:`write_chunk`, tried again while the source is only busy (a loaded source must
    slow the re-snapshot down, not fail it) until ``deadline``."""
    while True:
        try:
            return write_chunk(db, keys)
        except SOURCE_ERRORS as exc:
            if not _busy(exc) or clock.monotonic() >= deadline:
                raise
        clock.sleep(0.1)


@dataclass(frozen=True)
class ResnapshotResult:
    rows: int
    """Keys written into the outbox (and found in the table at the end)."""
    gap: int
    """Keys the reconciliation found missing (``rows`` less those the source no longer held)."""
    chunks: int
    workers: int
    runs: tuple[tuple[int, int], ...]
    find_s: float
    """Finding the gap (the reconciliation), when the caller's ``started`` was before it."""
    write_s: float
    elapsed_s: float
    engine: str
    source: str

    @property
    def rate_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _Written:
    """Keys the workers have written so far, added up across their threads."""

    def __init__(self) -> None:
        self.keys: list[int] = []
        self._lock = threading.Lock()

    def add(self, keys: Sequence[int]) -> None:
        with self._lock:
            self.keys.extend(keys)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.keys)


def keys_present(sink: SinkEngine, table: str, keys: Sequence[int]) -> set[int]:
    """Which of ``keys`` the table holds, asked through the stack's query engine."""
    found: set[int] = set()
    for predicate in key_predicates(KEY, keys):
        rows = sink.rows(f"SELECT DISTINCT {KEY} FROM {quote_table(table)} WHERE {predicate}", table=table)
        found.update(int(r[0]) for r in rows)
    return found


def resnapshot(
    context: DrillContext,
    gap: Sequence[int],
    *,
    workers: int = 4,
    chunk_rows: int = 5000,
    timeout_s: float = 600.0,
    started: float | None = None,
) -> ResnapshotResult:
    """Re-snapshot the source's ``gap`` keys through the outbox and wait until the table
    holds them. ``started``: when the phase began by ``context.clock`` (default: now), so
    that finding the gap counts in its time. Raises :class:`WaitTimeout` when writing the
    gap and the table's taking it in last longer than ``timeout_s``, naming how many keys
    are still missing."""
    clock = context.clock
    stack = context.stack
    writing = clock.monotonic()
    started = writing if started is None else started
    # The gap is known: finding it had bounds of its own (the reconciliation's catch-up).
    deadline = writing + timeout_s
    chunks = chunks_of(gap, chunk_rows)
    runs = tuple(key_runs(gap))
    todo: queue.SimpleQueue[tuple[int, ...]] = queue.SimpleQueue()
    for chunk in chunks:
        todo.put(chunk)
    written = _Written()
    progress = ThrottledProgress(context, total=len(gap), unit="rows written")
    progress(0, force=True)

    def work() -> str:
        with contextlib.closing(as_source(stack.source())) as db:
            while clock.monotonic() < deadline:
                try:
                    chunk = todo.get_nowait()
                except queue.Empty:
                    break
                written.add(_write_retrying(db, chunk, clock=clock, deadline=deadline))
            return db.dialect

    threads = max(1, min(workers, len(chunks)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="resnapshot") as pool:
        futures = [pool.submit(work) for _ in range(threads)]
        while not all(f.done() for f in futures):
            progress(written.count)
            clock.sleep(0.05)
        dialects = [f.result() for f in futures]  # re-raises a worker's failure
    wrote_s = clock.monotonic() - writing
    keys = sorted(written.keys)
    progress(len(keys), force=True)
    if not todo.empty():
        raise WaitTimeout(
            f"re-snapshot: wrote {len(keys):,} of {len(gap):,} rows into the outbox in {timeout_s:g} s "
            f"({len(chunks)} chunks of {chunk_rows:,}, {threads} workers); hint: more workers or time "
            "(timeout_s), or a source slowed by the fault"
        )

    table = stack.table
    missing = set(keys)
    landed = ThrottledProgress(context, total=len(keys), unit="rows in the table")
    with open_sink(stack) as sink:
        while True:
            missing -= keys_present(sink, table, sorted(missing))
            landed(len(keys) - len(missing))
            if not missing:
                break
            if clock.monotonic() >= deadline:
                still = key_runs(sorted(missing))
                raise WaitTimeout(
                    f"re-snapshot: {table} holds {len(keys) - len(missing):,} of the {len(keys):,} rows "
                    f"re-snapshotted through the outbox after {timeout_s:g} s; {len(missing):,} still "
                    f"missing ({describe_ranges(still)}); hint: is the relay publishing and the sink "
                    "running? (datadrill stack status)"
                )
            clock.sleep(POLL_INTERVAL_S)
        engine = sink.where
    landed(len(keys), force=True)
    return ResnapshotResult(
        rows=len(keys),
        gap=len(gap),
        chunks=len(chunks),
        workers=threads,
        runs=runs,
        find_s=writing - started,
        write_s=wrote_s,
        elapsed_s=clock.monotonic() - started,
        engine=engine,
        source=dialects[0] if dialects else "",
    )


def find_gap(context: DrillContext) -> tuple[list[int], str]:
    """The source keys the table lacks, and the reconciliation's description.

    A key whose event still waits in the outbox is in flight, not lost: re-snapshotting it
    would publish the order twice, so it is left out. Both relays delete the outbox rows up
    to the newest event id they published (the CDC relay after Kafka acknowledged, so the
    events a dropped slot skipped go with the next batch's rows)."""
    stack = context.stack
    result = live_reconcile(context)
    gap = sorted(result.omissions)
    if gap:
        with contextlib.closing(as_source(stack.source())) as db:
            pending: set[int] = set()
            for predicate in key_predicates(KEY, gap):
                pending.update(int(r[0]) for r in db.execute(f"SELECT {KEY} FROM outbox WHERE {predicate}"))
        gap = [k for k in gap if k not in pending]
    return gap, result.describe()


def run_resnapshot_from_source(step: ResnapshotFromSource, context: DrillContext) -> StepResult:
    started = context.clock.monotonic()
    gap, found = find_gap(context)
    if not gap:
        return StepResult(f"nothing to re-snapshot: {found}", rows=0, extra={"chunks": 0, "workers": 0})
    result = resnapshot(
        context,
        gap,
        workers=step.workers,
        chunk_rows=step.chunk_rows,
        timeout_s=step.timeout_s,
        started=started,
    )
    ranges = [[lo, hi] for lo, hi in result.runs[:RANGES_REPORTED]]
    return StepResult(
        f"{result.rows:,} missing rows re-snapshotted from the source ({describe_ranges(result.runs)}) in "
        f"{result.chunks} chunks with {result.workers} workers through the outbox; the table held them "
        f"all after {result.elapsed_s:.1f} s (finding the gap took {result.find_s:.1f} s, writing it "
        f"{result.write_s:.1f} s)",
        rows=result.rows,
        rate_per_s=result.rate_per_s,
        extra={
            "resnapshot_rows": result.rows,
            "resnapshot_rate_per_s": result.rate_per_s,
            "gap_rows": result.gap,
            "chunks": result.chunks,
            "workers": result.workers,
            "gap_ranges": ranges,
            "gap_range_count": len(result.runs),
            "find_s": result.find_s,
            "write_s": result.write_s,
            "engine": result.engine,
            "source": result.source,
        },
    )


def _measure_gap(context: DrillContext) -> list[int]:
    """:func:`find_gap` without waiting for the sink: under a Compare the sink is usually
    paused (a replay is about to write the table), so waiting for it to catch up would only
    add the reconciliation's catch-up time. Rows still in Kafka count as gap: a re-snapshot
    applied now would have to bring them back too."""
    from datadrill.integrity.reconcile import reconcile
    from datadrill.integrity.targets import source_max_key, target_sides
    from datadrill.model.slo import Target

    stack = context.stack
    target = Target()
    with contextlib.closing(as_source(stack.source())) as db, open_sink(stack) as sink:
        cutoff = source_max_key(db, target)
        source, sink_side = target_sides(target, db, sink, table=stack.table)
        result = reconcile(source, sink_side, key_range=(0, cutoff), progress=context.report_progress)
        gap = sorted(result.omissions)
        pending: set[int] = set()
        for predicate in key_predicates(KEY, gap):
            pending.update(int(r[0]) for r in db.execute(f"SELECT {KEY} FROM outbox WHERE {predicate}"))
    return [k for k in gap if k not in pending]


def read_chunk(db: SourceConnection, keys: Sequence[int]) -> int:
    """Read the chunk's orders as :func:`write_chunk` would, and write nothing: the rows read."""
    rows = 0
    for predicate in key_predicates(KEY, keys):
        rows += len(db.execute(f"SELECT {OUTBOX_COLUMNS} FROM orders WHERE {predicate} ORDER BY {KEY}").fetchall())
    return rows


def measure_resnapshot_from_source(step: ResnapshotFromSource, context: DrillContext) -> StepResult:
    """The re-snapshot's measurement mode (``Compare``): find the gap and read its rows from
    the source in chunks of ``chunk_rows`` with ``workers`` connections, as the step would,
    and write nothing. Its rate is rows over finding and reading them: the writes into the
    outbox and the pipeline carrying them (most of a real re-snapshot's time) are not in it."""
    clock = context.clock
    started = clock.monotonic()
    gap = _measure_gap(context)
    found = clock.monotonic()
    chunks = chunks_of(gap, step.chunk_rows)
    todo: queue.SimpleQueue[tuple[int, ...]] = queue.SimpleQueue()
    for chunk in chunks:
        todo.put(chunk)
    progress = ThrottledProgress(context, total=len(gap), unit="rows read")
    read = _Written()

    def work() -> None:
        with contextlib.closing(as_source(context.stack.source())) as db:
            while True:
                try:
                    chunk = todo.get_nowait()
                except queue.Empty:
                    return
                rows = read_chunk(db, chunk)
                read.add(chunk[:rows])  # only the count is used: rows the source still held
                progress(read.count)

    threads = max(1, min(step.workers, len(chunks)))
    if chunks:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="resnapshot-measure") as pool:
            for future in [pool.submit(work) for _ in range(threads)]:
                future.result()  # re-raises a worker's failure
    rows = read.count
    elapsed = clock.monotonic() - started
    runs = key_runs(gap)
    return StepResult(
        f"measured, not applied: {rows:,} missing rows ({describe_ranges(runs)}) read from the source in "
        f"{len(chunks)} chunks with {threads} workers in {elapsed:.1f} s (finding the gap took "
        f"{found - started:.1f} s); nothing was written, so the relay and sink carrying them are not in this time",
        rows=rows,
        rate_per_s=rows / elapsed if elapsed > 0 else None,
        extra={
            "resnapshot_rows": rows,
            "gap_rows": len(gap),
            "chunks": len(chunks),
            "workers": threads,
            "find_s": found - started,
            "read_s": clock.monotonic() - found,
        },
    )
