"""Reconcile a source against a sink by key ranges and hash bisection, in the engines.

Neither table is pulled into Python: each side summarises key ranges in its own engine
(SQLite for the source, DuckDB for the sink), ranges that differ are split again, and only
small damaged ranges are fetched as ``(key, row hash)`` pairs and diffed. This module is
the entry point, :func:`reconcile`, and re-exports the public names of the modules that do
the work:

- :mod:`~datadrill.integrity.hashing`: the row hash both engines compute alike, and its
  Python mirror :func:`row_hash`;
- :mod:`~datadrill.integrity.dialects`: the SQL of the hash and of the queries, per engine;
- :mod:`~datadrill.integrity.sides`: the sides (:class:`SqliteSide`, :class:`EngineSide`,
  :class:`TrinoSide`, :class:`ParquetSide`, :class:`ArrowSide`) and what they report
  (:class:`RangeSummary`);
- :mod:`~datadrill.integrity.targets`: the sides of a :class:`~datadrill.model.slo.Target`
  on a stack, and which engine does the work;
- :mod:`~datadrill.integrity.bisection`: the bisection that drives both sides;
- :mod:`~datadrill.integrity.result`: :class:`ReconcileResult` and what each finding means.

Example::

    with sqlite3.connect("source.db") as db:
        result = reconcile(SqliteSide(db), EngineSide(QueryEngine(catalog)), key_range=(0, cutoff))
    print(result.describe())
    # source 1,000 rows, sink 1,001 rows, keys 1..1000: 1 duplicated, 0 missing, 0 differing, ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from datadrill.clock import Clock, MonotonicClock
from datadrill.errors import ConfigError
from datadrill.integrity.bisection import bisect_ranges
from datadrill.integrity.dialects import DUCKDB, POSTGRESQL, SQLITE, TRINO, Column
from datadrill.integrity.hashing import MODULUS, ColumnKind, row_hash
from datadrill.integrity.result import ReconcileResult
from datadrill.integrity.sides import (
    SINK_ORDER_COLUMNS,
    SOURCE_ORDER_COLUMNS,
    ArrowSide,
    DuckDBSide,
    EngineSide,
    ParquetSide,
    RangeSummary,
    Side,
    SourceSide,
    SqliteSide,
    TrinoSide,
    split_range,
)


class _Counted:
    """A side that tells ``on_rows`` how many rows its first summary covered.

    The first summary of each side is the whole compared range (one scan); every later
    query narrows down within it. So "rows compared so far" moves when each side's scan
    ends, and the reconciliation's progress needs nothing from the bisection itself.
    """

    def __init__(self, side: Side, on_rows: Callable[[int], None]) -> None:
        self.side = side
        self.name = side.name
        self.columns = side.columns
        self._on_rows: Callable[[int], None] | None = on_rows

    def key_bounds(self) -> tuple[int, int] | None:
        return self.side.key_bounds()

    def summarize(self, lo: int, hi: int, buckets: int, *, count_keys: bool = False) -> list[RangeSummary]:
        summaries = self.side.summarize(lo, hi, buckets, count_keys=count_keys)
        if self._on_rows is not None:
            on_rows, self._on_rows = self._on_rows, None
            on_rows(sum(s.rows for s in summaries))
        return summaries

    def row_hashes(self, lo: int, hi: int) -> list[tuple[int, int]]:
        return self.side.row_hashes(lo, hi)

    def row_hashes_in(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        return self.side.row_hashes_in(ranges)


def _compared_range(
    source: tuple[int, int] | None, sink: tuple[int, int] | None, key_range: tuple[int, int] | None
) -> tuple[int, int] | None:
    bounds = [b for b in (source, sink) if b is not None]
    if not bounds:
        return None
    lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
    if key_range is not None:
        lo, hi = max(lo, key_range[0]), min(hi, key_range[1])
    return (lo, hi) if lo <= hi else None


def reconcile(
    source: Side,
    sink: Side,
    *,
    key_range: tuple[int, int] | None = None,
    buckets: int = 64,
    leaf_rows: int = 2000,
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReconcileResult:
    """Compare ``source`` and ``sink`` by key; see :mod:`datadrill.integrity.bisection` for how.

    ``key_range`` (inclusive) restricts the comparison, e.g. to keys at or below a cutoff
    while newer rows are still in flight. A range is fetched row by row once it holds at
    most ``leaf_rows`` rows on each side, or nothing on one side (then every key in it is a
    finding and must be listed anyway), or a single key.

    ``progress`` is told the rows compared so far, both sides together, as each side's
    scan of the range ends (twice per call; the last equals ``compared_rows``).

    Example::

        result = reconcile(SqliteSide(db), EngineSide(engine), key_range=(0, cutoff))
        assert result.exact, result.describe()
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 2:
        raise ConfigError("reconcile", "buckets", buckets, "an integer ≥ 2")
    if isinstance(leaf_rows, bool) or not isinstance(leaf_rows, int) or leaf_rows < 1:
        raise ConfigError("reconcile", "leaf_rows", leaf_rows, "an integer ≥ 1")
    if key_range is not None and (len(key_range) != 2 or key_range[0] > key_range[1]):
        raise ConfigError("reconcile", "key_range", key_range, "(lo, hi) with lo ≤ hi, both inclusive")
    source_kinds = [c.kind for c in source.columns]
    sink_kinds = [c.kind for c in sink.columns]
    if source_kinds != sink_kinds:
        raise ConfigError(
            "reconcile",
            "columns",
            {source.name: [c.name for c in source.columns], sink.name: [c.name for c in sink.columns]},
            "the same number of columns with the same kinds, in the same order, on both sides "
            f"({source.name}: {[k.value for k in source_kinds]}, {sink.name}: {[k.value for k in sink_kinds]})",
        )
    clock = clock or MonotonicClock()
    started = clock.monotonic()
    queries = 2
    compared = _compared_range(source.key_bounds(), sink.key_bounds(), key_range)
    if compared is None:
        return ReconcileResult(0, 0, 0, (), (), (), (), clock.monotonic() - started, queries, 0, None)
    lo, hi = compared
    if hi - lo >= 2**62:
        # (key - lo) must not overflow in either engine.
        raise ConfigError("reconcile", "key_range", (lo, hi), "a span of keys below 2**62; pass key_range")
    if progress is not None:
        scanned = 0

        def counted(rows: int) -> None:
            nonlocal scanned
            scanned += rows
            progress(scanned)

        source, sink = _Counted(source, counted), _Counted(sink, counted)

    found = bisect_ranges(source, sink, lo, hi, buckets=buckets, leaf_rows=leaf_rows)
    findings = found.findings
    return ReconcileResult(
        compared_rows=found.source_rows + found.sink_rows,
        source_rows=found.source_rows,
        sink_rows=found.sink_rows,
        duplicates=tuple(sorted(findings.duplicates)),
        omissions=tuple(sorted(findings.omissions)),
        discrepancies=tuple(sorted(findings.discrepancies)),
        unexpected=tuple(sorted(findings.unexpected)),
        elapsed_s=clock.monotonic() - started,
        queries=queries + found.queries,
        ranges_examined=found.ranges_examined,
        key_range=(lo, hi),
        rows_fetched=found.rows_fetched,
    )


__all__ = [
    "DUCKDB",
    "MODULUS",
    "POSTGRESQL",
    "SINK_ORDER_COLUMNS",
    "SOURCE_ORDER_COLUMNS",
    "SQLITE",
    "TRINO",
    "ArrowSide",
    "Column",
    "ColumnKind",
    "DuckDBSide",
    "EngineSide",
    "ParquetSide",
    "RangeSummary",
    "ReconcileResult",
    "Side",
    "SourceSide",
    "SqliteSide",
    "TrinoSide",
    "reconcile",
    "row_hash",
    "split_range",
]
