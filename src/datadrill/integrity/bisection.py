"""Hash bisection of a key range: summaries from both sides, narrowed down to the damaged keys.

Both sides summarise each range in their own engine, one GROUP BY query per range: per
equal-width sub-range ``(key - lo) // width``, ``count(*)`` and a checksum (the sum of the
row hashes). Sub-ranges whose summaries agree are done. One that differs is split again,
until it holds at most ``leaf_rows`` rows on either side; only then are the ``(key, row
hash)`` pairs of that range fetched from both sides and diffed in Python. The fan-out is at
least ``buckets`` and grows with the rows in the range (up to :data:`MAX_FANOUT`), so that
a damaged sub-range is usually small enough to fetch at the next step: a handful of
damaged keys in ten million rows costs one full scan per side plus one narrow query per
damaged key.

:func:`bisect_ranges` takes the compared key range and validated arguments;
``datadrill.integrity.reconcile.reconcile`` checks them, finds the range and times it.

Example::

    found = bisect_ranges(SqliteSide(db), EngineSide(engine), 1, 1000, buckets=64, leaf_rows=2000)
    found.findings.omissions, found.queries     # {17}, 4 when the sink lacks key 17
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from datadrill.errors import QueryFailed
from datadrill.integrity.sides import RangeSummary, Side

MAX_FANOUT = 65_536
"""The most sub-ranges one summary query returns."""
MAX_RANGES_PER_FETCH = 64
"""The most leaf ranges one ``row_hashes_in`` query covers (an OR of that many ranges)."""


@dataclass
class Findings:
    """The keys found so far, each in exactly one set (see :mod:`datadrill.integrity.result`)."""

    duplicates: set[int] = field(default_factory=set)
    omissions: set[int] = field(default_factory=set)
    discrepancies: set[int] = field(default_factory=set)
    unexpected: set[int] = field(default_factory=set)

    def diff(self, source: Sequence[tuple[int, int]], sink: Sequence[tuple[int, int]]) -> None:
        source_hashes: defaultdict[int, Counter[int]] = defaultdict(Counter)
        sink_hashes: defaultdict[int, Counter[int]] = defaultdict(Counter)
        for key, h in source:
            source_hashes[key][h] += 1
        for key, h in sink:
            sink_hashes[key][h] += 1
        for key, hashes in source_hashes.items():
            found = sink_hashes.get(key)
            if found is None:
                self.omissions.add(key)
            elif found.total() > hashes.total():
                self.duplicates.add(key)
            elif found != hashes:
                self.discrepancies.add(key)
        self.unexpected.update(key for key in sink_hashes if key not in source_hashes)


@dataclass(frozen=True)
class Bisection:
    """What :func:`bisect_ranges` found, and what it cost."""

    source_rows: int
    sink_rows: int
    findings: Findings
    queries: int
    ranges_examined: int
    rows_fetched: int
    """(key, hash) pairs brought into Python, both sides together."""


def bisect_ranges(source: Side, sink: Side, lo: int, hi: int, *, buckets: int, leaf_rows: int) -> Bisection:
    """Compare ``[lo, hi]`` (inclusive) on both sides by bisection; see the module docstring.

    A range is fetched row by row once it holds at most ``leaf_rows`` rows on each side, or
    nothing on one side (then every key in it is a finding and must be listed anyway), or a
    single key. ``hi - lo`` must stay below ``2**62``, so that ``key - lo`` fits either engine.
    """
    findings = Findings()
    queries = ranges_examined = rows_fetched = 0

    def summarize(range_lo: int, range_hi: int, rows: int) -> list[tuple[RangeSummary, RangeSummary]]:
        nonlocal queries
        # Enough sub-ranges that a damaged one is small enough to fetch at the next level:
        # one more narrow query per damaged key beats another level of bisection.
        fanout = max(buckets, min(MAX_FANOUT, -(-2 * rows // leaf_rows)))
        pair = source.summarize(range_lo, range_hi, fanout), sink.summarize(range_lo, range_hi, fanout)
        queries += 2
        ours, theirs = pair
        if [(s.lo, s.hi) for s in ours] != [(s.lo, s.hi) for s in theirs]:
            raise QueryFailed(
                f"{source.name} and {sink.name} split [{range_lo}, {range_hi}] differently; "
                "a Side must split with split_range()"
            )
        return list(zip(ours, theirs, strict=True))

    def fetch(side: Side, leaves: Sequence[RangeSummary]) -> list[tuple[int, int]]:
        nonlocal queries, rows_fetched
        ranges = [(leaf.lo, leaf.hi) for leaf in leaves if leaf.rows]
        rows: list[tuple[int, int]] = []
        for start in range(0, len(ranges), MAX_RANGES_PER_FETCH):
            queries += 1
            rows.extend(side.row_hashes_in(ranges[start : start + MAX_RANGES_PER_FETCH]))
        rows_fetched += len(rows)
        return rows

    top = summarize(lo, hi, hi - lo + 1)  # the key span bounds the rows of a keyed table
    source_rows = sum(s.rows for s, _ in top)
    sink_rows = sum(t.rows for _, t in top)
    level = top
    while level:
        deeper: list[tuple[RangeSummary, RangeSummary]] = []
        leaves: list[tuple[RangeSummary, RangeSummary]] = []
        for ours, theirs in level:
            ranges_examined += 1
            if ours.agrees_with(theirs):
                continue
            small = max(ours.rows, theirs.rows) <= leaf_rows
            if small or ours.rows == 0 or theirs.rows == 0 or ours.lo == ours.hi:
                leaves.append((ours, theirs))
            else:
                deeper.extend(summarize(ours.lo, ours.hi, max(ours.rows, theirs.rows)))
        if leaves:
            # Leaf ranges are disjoint, so one diff over all of them finds the same keys.
            findings.diff(fetch(source, [o for o, _ in leaves]), fetch(sink, [t for _, t in leaves]))
        level = deeper
    return Bisection(source_rows, sink_rows, findings, queries, ranges_examined, rows_fetched)


__all__ = ["MAX_FANOUT", "MAX_RANGES_PER_FETCH", "Bisection", "Findings", "bisect_ranges"]
