"""Repair the sink from the source after a reconciliation, in one Iceberg transaction.

Every sink row whose key is a duplicate, a discrepancy or unexpected is deleted; one
correct row per duplicated, differing or missing key is fetched from the source and
appended. Both happen in one transaction, so a reader sees the table before or after the
repair, never half of it. A live sink commits to the same table meanwhile: a commit that
loses the race (``CommitFailedException``, or a ``ValidationException`` when the other
commit touched the rows being deleted) is redone from a freshly loaded table, a bounded
number of times.

Rows written by a repair have no Kafka coordinates (``event_id``, ``kafka_partition`` and
``kafka_offset`` are null) and ``ingested_at`` is the time of the repair.

Example::

    result = reconcile(SqliteSide(db), EngineSide(engine), key_range=(0, cutoff))
    if not result.exact:
        repaired = repair(catalog, "dwh.orders", result, db)
        print(repaired.describe())   # 3 rows deleted, 2 inserted in 0.21 s (1 attempt)
"""

from __future__ import annotations

import logging
import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import In
from pyiceberg.table import Table

from datadrill.clock import Clock, MonotonicClock
from datadrill.errors import ConfigError, DrillError, QueryFailed
from datadrill.integrity.dialects import quote_identifier, subquery
from datadrill.integrity.result import ReconcileResult
from datadrill.model.slo import DEFAULT_SOURCE_QUERY
from datadrill.platform.catalog import ORDERS_ARROW_SCHEMA
from datadrill.platform.source_conn import SOURCE_ERRORS, SourceConnection, as_source

log = logging.getLogger("datadrill.repair")

KEY = "order_id"
REQUIRED_SOURCE_COLUMNS = ("order_id", "customer_id", "amount_cents", "currency", "status", "created_at_us")
# SQLite before 3.32 allows at most 999 host parameters per statement.
SOURCE_CHUNK = 500
_RETRY_BACKOFF_S = 0.05


class TableCatalog(Protocol):
    """What a repair needs of a catalog (a pyiceberg ``Catalog`` is one)."""

    def load_table(self, identifier: str) -> Table: ...


class RepairFailed(DrillError):
    """The repair could not be committed (every attempt lost a race with another writer)."""


@dataclass(frozen=True)
class RepairResult:
    """What a repair changed. ``missing_in_source`` lists keys that should have been
    (re)inserted but that the source no longer returns: they were deleted, not inserted."""

    deleted_rows: int
    inserted_rows: int
    elapsed_s: float
    attempts: int
    missing_in_source: tuple[int, ...] = ()

    def describe(self) -> str:
        attempts = f"{self.attempts} attempt" + ("" if self.attempts == 1 else "s")
        text = (
            f"{self.deleted_rows:,} rows deleted, {self.inserted_rows:,} inserted "
            f"in {self.elapsed_s:.2f} s ({attempts})"
        )
        if self.missing_in_source:
            text += f"; {len(self.missing_in_source):,} keys no longer in the source"
        return text


def _chunks(keys: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def source_rows(
    db: SourceConnection | sqlite3.Connection, keys: Sequence[int], *, query: str = DEFAULT_SOURCE_QUERY
) -> pa.Table:
    """The source rows for ``keys`` as an Arrow table in the sink's schema (ORDERS_ARROW_SCHEMA),
    with null Kafka coordinates and a null ``ingested_at`` (the caller stamps it)."""
    db = as_source(db)
    columns: dict[str, list[Any]] = {name: [] for name in ORDERS_ARROW_SCHEMA.names}
    for chunk in _chunks(keys, SOURCE_CHUNK):
        placeholders = ", ".join("?" for _ in chunk)
        sql = f"SELECT * FROM {subquery(query)} WHERE {quote_identifier(KEY)} IN ({placeholders})"
        try:
            cursor = db.execute(sql, list(chunk))
        except SOURCE_ERRORS as exc:
            raise QueryFailed(f"repair: fetching source rows failed: {exc}") from exc
        names = [d[0] for d in cursor.description]
        missing = [c for c in REQUIRED_SOURCE_COLUMNS if c not in names]
        if missing:
            raise ConfigError(
                "repair",
                "query",
                query,
                f"a query returning {', '.join(REQUIRED_SOURCE_COLUMNS)} (missing: {', '.join(missing)})",
            )
        for row in cursor:
            record = dict(zip(names, row, strict=True))
            for name in ("order_id", "customer_id", "amount_cents", "currency", "status"):
                columns[name].append(record[name])
            columns["created_at"].append(record["created_at_us"])
            columns["is_canary"].append(bool(record.get("is_canary", False)))
            for name in ("event_id", "kafka_partition", "kafka_offset", "ingested_at"):
                columns[name].append(None)
    arrays = [pa.array(columns[f.name], type=f.type) for f in ORDERS_ARROW_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=ORDERS_ARROW_SCHEMA)


def _stamp_ingested_at(rows: pa.Table, wall_s: float) -> pa.Table:
    index = rows.schema.get_field_index("ingested_at")
    stamp = pa.array([int(wall_s * 1_000_000)] * rows.num_rows, type=ORDERS_ARROW_SCHEMA.field(index).type)
    return rows.set_column(index, ORDERS_ARROW_SCHEMA.field(index), stamp)


def _count_rows(table: Table, keys: Sequence[int]) -> int:
    if not keys:
        return 0
    scan = table.scan(row_filter=In(term=KEY, literals=keys), selected_fields=(KEY,))
    return int(scan.to_arrow().num_rows)


def repair(
    catalog: TableCatalog,
    identifier: str,
    result: ReconcileResult,
    source_db: SourceConnection | sqlite3.Connection,
    *,
    query: str = DEFAULT_SOURCE_QUERY,
    retries: int = 10,
    clock: Clock | None = None,
) -> RepairResult:
    """Make the sink table ``identifier`` agree with the source for every key in ``result``.

    ``query`` must return the source's ``order_id, customer_id, amount_cents, currency,
    status, created_at_us`` (and ``is_canary``, else repaired rows are not canaries).
    Raises :class:`RepairFailed` when ``retries`` commits in a row lose a race.

    Example::

        repair(catalog, "dwh.orders", result, db).inserted_rows
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
        raise ConfigError("repair", "retries", retries, "an integer ≥ 1")
    clock = clock or MonotonicClock()
    started = clock.monotonic()
    delete_keys = sorted({*result.duplicates, *result.discrepancies, *result.unexpected})
    insert_keys = sorted({*result.duplicates, *result.discrepancies, *result.omissions})
    if not delete_keys and not insert_keys:
        return RepairResult(0, 0, clock.monotonic() - started, 0)

    rows = source_rows(source_db, insert_keys, query=query)
    found = set(rows.column(KEY).to_pylist())
    gone = tuple(k for k in insert_keys if k not in found)
    if gone:
        log.warning("repair: %d keys are no longer in the source, e.g. %s", len(gone), list(gone[:5]))
    rows = _stamp_ingested_at(rows, clock.wall())

    last: Exception | None = None
    for attempt in range(1, retries + 1):
        table = catalog.load_table(identifier)
        deleted = _count_rows(table, delete_keys)
        transaction = table.transaction()
        try:
            with warnings.catch_warnings():
                # A key another writer already removed is not an error for a repair.
                warnings.filterwarnings("ignore", message="Delete operation did not match any records")
                if delete_keys:
                    transaction.delete(delete_filter=In(term=KEY, literals=delete_keys))
                if rows.num_rows:
                    transaction.append(rows)
                transaction.commit_transaction()
        except (CommitFailedException, ValidationException) as exc:
            # Both guarantee that nothing landed: redo the whole repair on the new table.
            last = exc
            log.info("repair: attempt %d/%d lost a commit race: %s", attempt, retries, exc)
            clock.sleep(_RETRY_BACKOFF_S * attempt)
            continue
        return RepairResult(deleted, rows.num_rows, clock.monotonic() - started, attempt, gone)
    error = RepairFailed(
        f"repair of {identifier}: {retries} commits in a row lost a race with another writer "
        f"(last: {last}); pause the sink and retry"
    )
    raise error from last


__all__ = ["RepairFailed", "RepairResult", "TableCatalog", "repair", "source_rows"]
