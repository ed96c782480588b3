"""What a reconciliation found: :class:`ReconcileResult`.

Each key ends up in exactly one finding:

- **duplicate**: in the source, and the sink holds it more often than the source;
- **omission**: in the source, not in the sink;
- **discrepancy**: in both, once each, with different values;
- **unexpected**: in the sink, not in the source.

Example::

    result = reconcile(SqliteSide(db), EngineSide(engine), key_range=(0, cutoff))
    result.exact, result.affected, result.rows_per_s
    print(result.describe())
    # source 1,000 rows, sink 1,001 rows, keys 1..1000: 1 duplicated, 0 missing, 0 differing, ...
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReconcileResult:
    """What a reconciliation found. ``compared_rows`` counts the rows covered on both sides
    (source rows + sink rows in the compared key range), each of which was hashed once."""

    compared_rows: int
    source_rows: int
    sink_rows: int
    duplicates: tuple[int, ...]
    omissions: tuple[int, ...]
    discrepancies: tuple[int, ...]
    unexpected: tuple[int, ...]
    elapsed_s: float
    queries: int
    ranges_examined: int
    key_range: tuple[int, int] | None = None
    rows_fetched: int = 0
    """(key, hash) pairs brought into Python, both sides together."""
    engine: str = ""
    """Which engine did the work, when a caller knows it: ``counts and hashes: Trino at
    URL`` or ``counts and hashes: DuckDB in process`` (:mod:`datadrill.integrity.targets`)."""
    table: str = ""
    """The table compared with the source, when a caller knows it: the description names
    it instead of "sink" (a scenario's Target may be a team's own table)."""
    behind: str = ""
    """Set when the comparison ran before the pipeline had carried the source's changes into
    the table (:mod:`datadrill.recovery.catch_up`): what was still on its way. A missing
    row may then be in flight, not lost."""

    @property
    def rows_per_s(self) -> float:
        return self.compared_rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def affected(self) -> int:
        """Keys with any finding (each key is counted in exactly one finding)."""
        return len(self.duplicates) + len(self.omissions) + len(self.discrepancies) + len(self.unexpected)

    @property
    def exact(self) -> bool:
        return self.affected == 0

    def describe(self) -> str:
        keys = f"keys {self.key_range[0]}..{self.key_range[1]}" if self.key_range else "no keys"
        findings = (
            f"{len(self.duplicates):,} duplicated, {len(self.omissions):,} missing, "
            f"{len(self.discrepancies):,} differing, {len(self.unexpected):,} not in source"
        )
        examples = "; ".join(
            f"{label} e.g. {', '.join(map(str, found[:5]))}"
            for label, found in (
                ("duplicated", self.duplicates),
                ("missing", self.omissions),
                ("differing", self.discrepancies),
                ("not in source", self.unexpected),
            )
            if found
        )
        return (
            f"source {self.source_rows:,} rows, {self.table or 'sink'} {self.sink_rows:,} rows, {keys}: {findings}"
            + (f" ({examples})" if examples else "")
            + f"; {self.compared_rows:,} rows compared in {self.elapsed_s:.2f} s "
            f"({self.rows_per_s:,.0f} rows/s), {self.queries} queries, {self.ranges_examined} ranges"
            + (f"; {self.engine}" if self.engine else "")
            + (f"; compared before the pipeline caught up: {self.behind}" if self.behind else "")
        )


__all__ = ["ReconcileResult"]
