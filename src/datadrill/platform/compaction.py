"""Compaction of the sink's small data files.

The sink commits every ``batch_max_wait_ms``, one Parquet file per commit: a table that
lives for an hour holds thousands of files of a few hundred rows. Every query plans and
opens all of them (a probe of the mart took 0.3 s at 1,300 files and grew with the
table's age) and so does the reconciliation. Compaction rewrites the small files into one
and commits an ``overwrite`` snapshot that removes them and adds it: the rows are the
same, the file count stays near ``rows / file_rows`` plus at most ``min_files``.

pyiceberg (0.12) has no rewrite action, so this uses the parts its own copy-on-write
delete uses: ``ArrowScan`` reads the files (projected to the table's current schema),
``_dataframe_to_data_files`` writes them, and an overwrite snapshot swaps them. The
replaced files stay on disk: a restored older snapshot (a catalog backup, time travel)
still reads them, and removing files no snapshot needs is left to orphan-file cleanup.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table

from datadrill.platform.transactions import transaction

COMPACTED_FILES_PROPERTY = "datadrill.compaction.files"
"""In a compaction's snapshot summary: how many files it rewrote (other tools tell a
rewrite from new data by it, as by Iceberg's ``replace`` operation)."""


@dataclass(frozen=True)
class Compaction:
    """What one compaction did."""

    files_in: int
    files_out: int
    rows: int
    seconds: float


@dataclass(frozen=True)
class FilePlan:
    """The table's data files split by size; ``None`` small files when a file carries deletes
    (merge-on-read: rewriting it means applying them, which this does not do)."""

    small: tuple[FileScanTask, ...] | None
    large: int


def plan(table: Table, *, file_rows: int) -> FilePlan:
    """The current snapshot's files with fewer than ``file_rows`` rows, and how many have
    more."""
    small: list[FileScanTask] = []
    large = 0
    for task in table.scan().plan_files():
        if task.delete_files:
            return FilePlan(small=None, large=0)
        if task.file.record_count < file_rows:
            small.append(task)
        else:
            large += 1
    return FilePlan(small=tuple(small), large=large)


@dataclass(frozen=True)
class Rewrite:
    """Small files read and written again as one, not committed yet."""

    replaced: tuple[FileScanTask, ...]
    written: tuple[DataFile, ...]
    rows: int
    commit_uuid: uuid.UUID
    seconds: float


def rewrite(table: Table, files: Sequence[FileScanTask]) -> Rewrite:
    """Read ``files`` (tasks of one of the table's snapshots) through the table's schema
    and write their rows as one file; nothing is committed (see :func:`commit`)."""
    started = time.monotonic()
    metadata = table.metadata
    rows = ArrowScan(
        table_metadata=metadata, io=table.io, projected_schema=metadata.schema(), row_filter=AlwaysTrue()
    ).to_table(tasks=files)
    commit_uuid = uuid.uuid4()
    written = _dataframe_to_data_files(table_metadata=metadata, df=rows, io=table.io, write_uuid=commit_uuid)
    return Rewrite(tuple(files), tuple(written), rows.num_rows, commit_uuid, time.monotonic() - started)


def commit(table: Table, done: Rewrite, *, properties: Mapping[str, str]) -> Compaction:
    """One overwrite snapshot on ``table`` that removes the rewritten files and adds the new
    one, its summary carrying ``properties``. Raises what a commit raises:
    ``CommitFailedException``, or ``ValidationException`` when pyiceberg's retry on a new
    head finds another writer's files there or one of the files gone (a restore); either
    way nothing landed and the written file is removed."""
    started = time.monotonic()
    summary = {**properties, COMPACTED_FILES_PROPERTY: str(len(done.replaced))}
    try:
        with (
            transaction(table) as tx,
            tx.update_snapshot(snapshot_properties=summary).overwrite(done.commit_uuid) as overwrite,
        ):
            for task in done.replaced:
                overwrite.delete_data_file(task.file)
            for data_file in done.written:
                overwrite.append_data_file(data_file)
    except BaseException:
        for data_file in done.written:
            with contextlib.suppress(OSError):
                table.io.delete(data_file.file_path)
        raise
    return Compaction(
        files_in=len(done.replaced),
        files_out=len(done.written),
        rows=done.rows,
        seconds=done.seconds + time.monotonic() - started,
    )


def compact(table: Table, files: Sequence[FileScanTask], *, properties: Mapping[str, str]) -> Compaction:
    """:func:`rewrite` then :func:`commit` on the same table."""
    return commit(table, rewrite(table, files), properties=properties)


__all__ = ["COMPACTED_FILES_PROPERTY", "Compaction", "FilePlan", "Rewrite", "commit", "compact", "plan", "rewrite"]
