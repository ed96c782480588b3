"""Backfill from a reserve copy: load the rows a table lacks, range-parallel, exactly once.

The reserve's key range (:mod:`datadrill.recovery.reserves`) is split into ``workers``
ranges of equal width (:func:`split_range`). Each worker, in its own thread, reads its
range's rows from the reserve's Parquet files (only the files whose key range overlaps,
with the range as a filter the Parquet reader pushes down to row groups), reads the keys
the table holds in that range (a pyiceberg scan pinned to one snapshot, only the key
column, with the range as its row filter) and keeps the reserve rows whose key the table
lacks (:func:`missing_rows`, an anti-join in Arrow). The reads run while the sink goes on
writing.

**Exactly once.** What is missing is appended in one Iceberg commit, on a table checked
again right before it: the sink is held for the commit (paused through the fault ledger,
as a repair holds it, so it always comes back), the table is loaded afresh and, if a
snapshot landed since the workers read it, the candidate keys are checked again against
it. A commit that loses a race anyway (``CommitFailedException``: another writer) is redone
from a freshly loaded table, a bounded number of times. Rows are written as the reserve
holds them, Kafka coordinates and ``ingested_at`` included: they are history, restored.

**The sink's state.** The commit's snapshot summary carries the sink's exactly-once state
(:func:`datadrill.platform.sink.snapshot_properties`) so the sink resumes as before: the
offsets of the snapshot it lands on, and per partition the higher of that snapshot's
highest event id and the reserve's. Every event of a partition up to the reserve's id is
in the reserve, hence in the table once the backfill lands: a sink resuming from an older
snapshot (a stale catalog backup restored) then drops those events as duplicates instead
of writing them a second time. Offsets are not moved: they may belong to a topic that was
deleted and created again since the reserve was taken, and re-reading events the sink then
drops costs time, not correctness.

Example::

    run_step(BackfillFromReserve(reserve="reserve", workers=4), context).detail
    # "6,000 rows backfilled into dwh.orders from reserve 'reserve' (18,000 rows at snapshot
    #  4711, keys 1..18000; 12,000 already there) with 4 workers in 0.9 s (0.7 s reading,
    #  commit 0.2 s, 1 attempt)"
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.table import Table

from datadrill.errors import DrillError
from datadrill.faults.base import DrillContext
from datadrill.model.recovery import BackfillFromReserve
from datadrill.recovery.replay import ThrottledProgress
from datadrill.recovery.reserves import Reserve, load_reserve
from datadrill.recovery.result import StepResult

# Commits lost to another writer before the step gives up (the sink is held meanwhile, so
# only a writer outside the stack can take them).
COMMIT_ATTEMPTS = 10
_RETRY_BACKOFF_S = 0.05
# How often the workers' progress is passed on while they read.
PROGRESS_POLL_S = 0.1
# A property of the backfill's snapshot: which reserve its rows came from.
BACKFILL_PROPERTY = "datadrill.backfill-from-reserve"


class BackfillFailed(DrillError):
    """The backfill could not run (no table to fill, a reserve of other columns) or commit."""


def split_range(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """``lo..hi`` (inclusive) cut into at most ``parts`` contiguous ranges whose widths
    differ by at most one; fewer when the range holds fewer keys than ``parts``.

    Example::

        split_range(1, 10, 3)   # [(1, 4), (5, 7), (8, 10)]
    """
    if hi < lo:
        return []
    span = hi - lo + 1
    count = max(1, min(parts, span))
    base, extra = divmod(span, count)
    ranges = []
    start = lo
    for index in range(count):
        width = base + (1 if index < extra else 0)
        ranges.append((start, start + width - 1))
        start += width
    return ranges


def missing_rows(candidates: pa.Table, present: pa.Array | pa.ChunkedArray, key: str) -> pa.Table:
    """The rows of ``candidates`` whose ``key`` is not among ``present``: one per key (the
    first, should the reserve hold a key twice), none with a null key, in their order.

    Example::

        missing_rows(pa.table({"k": [1, 2, 2, 3]}), pa.array([1]), "k")   # k: [2, 3]
    """
    keys = candidates.column(key)
    wanted = pc.and_(pc.is_valid(keys), pc.invert(pc.is_in(keys, value_set=_combined(present, keys.type))))
    rows = candidates.filter(wanted)
    if rows.num_rows == 0:
        return rows
    # One row per key: the lowest position of each key, positions kept in order.
    positions = pa.table({key: rows.column(key), "position": pa.array(range(rows.num_rows), pa.int64())})
    first = positions.group_by(key, use_threads=False).aggregate([("position", "min")]).column("position_min")
    if len(first) == rows.num_rows:
        return rows
    return rows.take(pc.take(first, pc.sort_indices(first)))


def _combined(values: pa.Array | pa.ChunkedArray, kind: pa.DataType) -> pa.Array:
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return array.cast(kind) if array.type != kind else array


def reserve_rows(reserve: Reserve, lo: int, hi: int) -> pa.Table:
    """The reserve's rows with keys in ``lo..hi``: only the files whose key range overlaps
    are opened, and the range filters row groups by their statistics."""
    paths = reserve.paths(lo, hi)
    if not paths:
        # A range between two files' key ranges: no rows, but the reserve's columns (the
        # anti-join reads the key column).
        schema = reserve_schema(reserve)
        return schema.empty_table() if schema is not None else pa.table({reserve.key_column: pa.array([], pa.int64())})
    key = ds.field(reserve.key_column)
    dataset = ds.dataset([str(p) for p in paths], format="parquet")
    return dataset.to_table(filter=(key >= lo) & (key <= hi))


def reserve_schema(reserve: Reserve) -> pa.Schema | None:
    """The columns of the reserve's files (None for a reserve of an empty table)."""
    paths = reserve.paths()
    return pq.read_schema(paths[0]) if paths else None


def table_keys(table: Table, snapshot_id: int | None, key: str, lo: int, hi: int) -> pa.ChunkedArray:
    """The keys ``table`` holds in ``lo..hi`` at ``snapshot_id`` (none for an empty table)."""
    if snapshot_id is None:
        return pa.chunked_array([], pa.int64())
    scan = table.scan(
        row_filter=And(GreaterThanOrEqual(term=key, value=lo), LessThanOrEqual(term=key, value=hi)),
        selected_fields=(key,),
        snapshot_id=snapshot_id,
    )
    return scan.to_arrow().column(key)


@dataclass(frozen=True)
class BackfillResult:
    reserve: Reserve
    table: str
    examined: int
    """Reserve rows the workers read (the whole reserve)."""
    backfilled: int
    """Rows appended: those the table lacked."""
    workers: int
    ranges: tuple[tuple[int, int], ...]
    read_s: float
    commit_s: float
    elapsed_s: float
    attempts: int
    snapshot_id: int | None
    """The backfill's own snapshot (None when nothing was missing, or when only measured)."""
    advanced_partitions: tuple[int, ...] = ()
    """Partitions whose highest event id the reserve's raised in the sink's state."""

    @property
    def rate_per_s(self) -> float:
        return self.backfilled / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def already_there(self) -> int:
        return self.examined - self.backfilled


class _Examined:
    """Reserve rows the workers have read so far, added up across their threads."""

    def __init__(self) -> None:
        self.rows = 0
        self._lock = threading.Lock()

    def add(self, rows: int) -> None:
        with self._lock:
            self.rows += rows


def _load(context: DrillContext, identifier: str) -> Table:
    try:
        return context.stack.catalog().load_table(identifier)
    except NoSuchTableError:
        raise BackfillFailed(
            f"{identifier} is not in the catalog: restore or re-register it before the backfill "
            "(RestoreCatalogBackup, ReregisterFromMetadata)"
        ) from None


def _check_columns(names: Sequence[str], table: Table, identifier: str, reserve: Reserve) -> pa.Schema:
    """The table's Arrow schema; :class:`BackfillFailed` when the reserve's columns
    (``names``) are not the table's."""
    target = table.schema().as_arrow()
    missing = [n for n in target.names if n not in names]
    extra = [n for n in names if n not in target.names]
    if missing or extra:
        raise BackfillFailed(
            f"reserve {reserve.name!r} (of {reserve.table}) and {identifier} hold different columns: "
            f"the reserve lacks {missing or 'none'} and has {extra or 'none'} in addition"
        )
    return target


def _conform(rows: pa.Table, table: Table, identifier: str, reserve: Reserve) -> pa.Table:
    """``rows`` in the table's column order and types."""
    target = _check_columns(rows.column_names, table, identifier, reserve)
    return rows.select(target.names).cast(target)


def find_missing(
    context: DrillContext, reserve: Reserve, table: Table, *, workers: int
) -> tuple[pa.Table, int, tuple[tuple[int, int], ...], int]:
    """The reserve rows ``table`` lacks, found by ``workers`` threads over key ranges:
    (rows, reserve rows examined, ranges, threads used)."""
    snapshot = table.current_snapshot()
    snapshot_id = snapshot.snapshot_id if snapshot is not None else None
    key = reserve.key_column
    ranges = tuple(
        split_range(reserve.key_min, reserve.key_max, workers)
        if reserve.key_min is not None and reserve.key_max is not None
        else ()
    )
    examined = _Examined()
    progress = ThrottledProgress(context, total=reserve.rows, unit="reserve rows checked")
    progress(0, force=True)

    def work(bounds: tuple[int, int]) -> pa.Table:
        lo, hi = bounds
        rows = reserve_rows(reserve, lo, hi)
        present = table_keys(table, snapshot_id, key, lo, hi)
        examined.add(rows.num_rows)
        return missing_rows(rows, present, key)

    threads = max(1, min(workers, len(ranges)))
    parts: list[pa.Table] = []
    if ranges:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="backfill") as pool:
            futures = [pool.submit(work, bounds) for bounds in ranges]
            while wait(futures, timeout=PROGRESS_POLL_S).not_done:
                progress(examined.rows)
            parts = [f.result() for f in futures]  # re-raises a worker's failure
    progress(examined.rows, force=True)
    rows = pa.concat_tables(parts) if parts else pa.table({})
    return rows, examined.rows, ranges, threads


@contextlib.contextmanager
def _sink_held(context: DrillContext, identifier: str) -> Iterator[None]:
    """Pause the sink for the commit when it writes ``identifier`` and runs: its appends
    several times a second would win every race with a commit of many rows. The pause
    goes through the fault ledger, so it always comes back."""
    from datadrill.faults.ledger import FaultLedger, inject
    from datadrill.faults.stack_state import pause_spec

    stack = context.stack
    if identifier != stack.table or stack.components.get("sink").paused:
        yield  # not the sink's table, or the runbook paused it already
        return
    handle = inject(pause_spec("sink"), context, ledger=FaultLedger.for_stack(stack.paths.root))
    try:
        yield
    finally:
        handle.revert()


def _sink_properties(table: Table, reserve: Reserve) -> tuple[dict[str, str], tuple[int, ...]]:
    """The snapshot summary properties of the backfill's commit on ``table``: the sink's
    state carried over, each partition's highest event id raised to the reserve's."""
    from datadrill.platform.catalog import sink_state
    from datadrill.platform.sink import snapshot_properties

    offsets, max_ids = sink_state(table)
    advanced = tuple(sorted(p for p, i in reserve.sink_max_event_ids.items() if i > max_ids.get(p, -1)))
    merged = {**max_ids, **{p: reserve.sink_max_event_ids[p] for p in advanced}}
    properties = {BACKFILL_PROPERTY: reserve.name}
    if offsets or merged:
        properties.update(snapshot_properties(offsets, merged))
    return properties, advanced


def _commit(
    context: DrillContext, identifier: str, reserve: Reserve, rows: pa.Table, read_snapshot: int | None
) -> tuple[int, int | None, int, tuple[int, ...]]:
    """Append ``rows`` less any key the table gained since ``read_snapshot``, in one commit:
    (rows appended, the new snapshot id, attempts, partitions advanced)."""
    key = reserve.key_column
    last: Exception | None = None
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        table = _load(context, identifier)
        snapshot = table.current_snapshot()
        current = snapshot.snapshot_id if snapshot is not None else None
        if current != read_snapshot and rows.num_rows:
            # Another writer committed since the workers read: drop what it wrote meanwhile.
            bounds = pc.min_max(rows.column(key))
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            rows = missing_rows(rows, table_keys(table, current, key, lo, hi), key)
            read_snapshot = current
        if not rows.num_rows:
            return 0, None, attempt, ()
        properties, advanced = _sink_properties(table, reserve)
        try:
            transaction = table.transaction()
            transaction.append(_conform(rows, table, identifier, reserve), snapshot_properties=properties)
            transaction.commit_transaction()
        except CommitFailedException as exc:
            # Nothing landed: check again against the table as it now is.
            last = exc
            context.clock.sleep(_RETRY_BACKOFF_S * attempt)
            continue
        landed = table.current_snapshot()
        return rows.num_rows, landed.snapshot_id if landed is not None else None, attempt, advanced
    raise BackfillFailed(
        f"backfill of {identifier}: {COMMIT_ATTEMPTS} commits in a row lost a race with another writer "
        f"(last: {last}); pause the writers and retry"
    ) from last


def backfill(context: DrillContext, step: BackfillFromReserve, *, apply: bool = True) -> BackfillResult:
    """Backfill ``step.table`` from ``step.reserve``; with ``apply=False`` only find what is
    missing (the read side, timed: Compare's measurement mode) and change nothing."""
    clock = context.clock
    started = clock.monotonic()
    reserve = load_reserve(context.stack.paths.reserves, step.reserve)
    table = _load(context, step.table)
    columns = reserve_schema(reserve)
    if columns is not None:  # the same columns, checked before any reading
        _check_columns(columns.names, table, step.table, reserve)
    snapshot = table.current_snapshot()
    read_snapshot = snapshot.snapshot_id if snapshot is not None else None
    rows, examined, ranges, threads = find_missing(context, reserve, table, workers=step.workers)
    read_s = clock.monotonic() - started
    committing = clock.monotonic()
    appended, snapshot_id, attempts = rows.num_rows, None, 0
    advanced: tuple[int, ...] = ()
    if apply and rows.num_rows:
        with _sink_held(context, step.table):
            appended, snapshot_id, attempts, advanced = _commit(
                context, step.table, reserve, rows, read_snapshot
            )
    return BackfillResult(
        reserve=reserve,
        table=step.table,
        examined=examined,
        backfilled=appended,
        workers=threads,
        ranges=ranges,
        read_s=read_s,
        commit_s=clock.monotonic() - committing,
        elapsed_s=clock.monotonic() - started,
        attempts=attempts,
        snapshot_id=snapshot_id,
        advanced_partitions=advanced,
    )


def _extra(result: BackfillResult) -> dict[str, object]:
    reserve = result.reserve
    return {
        "reserve": reserve.name,
        "reserve_rows": reserve.rows,
        "reserve_snapshot_id": reserve.snapshot_id,
        "reserve_taken_at": reserve.taken_at,
        "examined_rows": result.examined,
        "backfilled_rows": result.backfilled,
        "already_there": result.already_there,
        "workers": result.workers,
        "ranges": [list(r) for r in result.ranges],
        "read_s": result.read_s,
        "commit_s": result.commit_s,
        "attempts": result.attempts,
        "snapshot_id": result.snapshot_id,
        "advanced_partitions": list(result.advanced_partitions),
    }


def _workers(count: int) -> str:
    return f"{count} worker" + ("" if count == 1 else "s")


def _reserve_text(reserve: Reserve) -> str:
    keys = f", keys {reserve.key_min}..{reserve.key_max}" if reserve.key_min is not None else ""
    return f"reserve '{reserve.name}' ({reserve.rows:,} rows at snapshot {reserve.snapshot_id}{keys})"


def run_backfill_from_reserve(step: BackfillFromReserve, context: DrillContext) -> StepResult:
    result = backfill(context, step)
    reserve = _reserve_text(result.reserve)
    if not result.backfilled:
        return StepResult(
            f"nothing to backfill: {result.table} holds every row of {reserve} "
            f"(checked with {_workers(result.workers)} in {result.elapsed_s:.1f} s)",
            rows=0,
            rate_per_s=0.0,
            extra=_extra(result),
        )
    attempts = f"{result.attempts} attempt" + ("" if result.attempts == 1 else "s")
    advanced = (
        f"; the sink's highest event ids raised to the reserve's on partitions {list(result.advanced_partitions)}"
        if result.advanced_partitions
        else ""
    )
    return StepResult(
        f"{result.backfilled:,} rows backfilled into {result.table} from {reserve}, "
        f"{result.already_there:,} already there, with {_workers(result.workers)} in {result.elapsed_s:.1f} s "
        f"({result.read_s:.1f} s reading, commit {result.commit_s:.1f} s, {attempts}){advanced}",
        rows=result.backfilled,
        rate_per_s=result.rate_per_s,
        extra=_extra(result),
    )


def measure_backfill_from_reserve(step: BackfillFromReserve, context: DrillContext) -> StepResult:
    """Compare's measurement mode: find the rows a backfill would load, timed, and load
    none. ``rows``: the rows it would append; the rate: those over the time finding them."""
    result = backfill(context, step, apply=False)
    return StepResult(
        f"measured: {result.backfilled:,} rows of {_reserve_text(result.reserve)} missing from "
        f"{result.table}, found with {_workers(result.workers)} in {result.elapsed_s:.1f} s (nothing written)",
        rows=result.backfilled,
        rate_per_s=result.rate_per_s,
        extra=_extra(result),
    )


__all__ = [
    "BackfillFailed",
    "BackfillResult",
    "backfill",
    "find_missing",
    "measure_backfill_from_reserve",
    "missing_rows",
    "run_backfill_from_reserve",
    "split_range",
]
