"""Reserve copies: a table's rows at one snapshot, as Parquet files outside the catalog and
the warehouse, with a manifest.

A catalog backup (:mod:`datadrill.recovery.backup`) keeps a pointer and one metadata file:
it is worth nothing once the table's files or the topic that refills it are gone. A
reserve copy keeps the rows themselves, under the stack's state directory
(``<state dir>/reserves/<name>/``), so it survives the loss of the catalog entry, of the
warehouse's metadata and of the Kafka topic: it is the "reserves" the incident's history
was restored from (``BackfillFromReserve``, :mod:`datadrill.recovery.backfill`).

The rows are read with a pyiceberg scan pinned to the table's current snapshot and written
batch by batch (``to_arrow_batch_reader``): row groups of :data:`ROW_GROUP_ROWS` rows,
files of at most :data:`FILE_ROWS` rows, never the whole table in memory. The copy is
written beside its final place and moved in when complete, so a reserve that exists is
whole. ``manifest.json`` says what it holds::

    {"format": 1, "name": "reserve", "table": "dwh.orders", "snapshot_id": 4711,
     "taken_at": "2026-11-30T12:01:02.345+00:00", "rows": 18000, "key_column": "order_id",
     "key_range": {"min": 1, "max": 18000},
     "files": [{"path": "part-00000.parquet", "rows": 18000, "key_min": 1, "key_max": 18000}],
     "schema": [{"name": "order_id", "type": "int64", "nullable": false}, ...],
     "sink_state": {"offsets": {"0": 6001, ...}, "max_event_ids": {"0": 17998, ...}},
     "run_id": "20261130-120055-metadata-loss", "datadrill_version": "0.1.0"}

``sink_state`` is the sink's exactly-once state of the copied snapshot (its summary's
offsets and highest event id per partition): every event of a partition up to that id is
in the copy, which is what lets a backfill tell the sink not to write them again.

Example::

    reserve = take_reserve(context, "reserve", "dwh.orders")
    reserve.rows, reserve.key_min, reserve.key_max     # 18000, 1, 18000
    load_reserve(context.stack.paths.reserves, "reserve").files[0].path
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datadrill.errors import ConfigError, DrillError
from datadrill.faults.base import DrillContext

MANIFEST = "manifest.json"
FORMAT = 1
DEFAULT_KEY = "order_id"
ROW_GROUP_ROWS = 131_072
FILE_ROWS = 1_048_576


class ReserveMissing(DrillError):
    """A backfill named a reserve copy that was never taken, or whose files are gone."""


@dataclass(frozen=True)
class ReserveFile:
    """One Parquet file of a reserve: its path inside the reserve's directory, its rows
    and its keys' range (None for a file without rows)."""

    path: str
    rows: int
    key_min: int | None
    key_max: int | None

    def overlaps(self, lo: int, hi: int) -> bool:
        if self.key_min is None or self.key_max is None:
            return False
        return self.key_min <= hi and lo <= self.key_max


@dataclass(frozen=True)
class Reserve:
    """A reserve copy as its manifest describes it; ``directory`` is where it lies."""

    name: str
    table: str
    snapshot_id: int | None
    taken_at: str
    rows: int
    key_column: str
    key_min: int | None
    key_max: int | None
    files: tuple[ReserveFile, ...]
    schema: tuple[tuple[str, str, bool], ...]
    """(column, Arrow type, nullable) in the files' order."""
    sink_offsets: dict[int, int]
    sink_max_event_ids: dict[int, int]
    run_id: str | None
    datadrill_version: str
    directory: Path

    @property
    def relative_path(self) -> str:
        """``reserves/<name>``: where it lies under the state directory (for reports,
        which must not carry a machine's absolute paths)."""
        return f"{self.directory.parent.name}/{self.directory.name}"

    def paths(self, lo: int | None = None, hi: int | None = None) -> list[Path]:
        """The files holding rows (with keys in ``lo..hi`` when given)."""
        return [
            self.directory / f.path
            for f in self.files
            if f.rows and (lo is None or hi is None or f.overlaps(lo, hi))
        ]

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "table": self.table,
            "snapshot_id": self.snapshot_id,
            "taken_at": self.taken_at,
            "rows": self.rows,
            "key_column": self.key_column,
            "key_range": {"min": self.key_min, "max": self.key_max},
            "files": [
                {"path": f.path, "rows": f.rows, "key_min": f.key_min, "key_max": f.key_max}
                for f in self.files
            ],
            "schema": [{"name": n, "type": t, "nullable": nullable} for n, t, nullable in self.schema],
            "sink_state": {
                "offsets": {str(p): o for p, o in sorted(self.sink_offsets.items())},
                "max_event_ids": {str(p): i for p, i in sorted(self.sink_max_event_ids.items())},
            },
            "run_id": self.run_id,
            "datadrill_version": self.datadrill_version,
        }


def _key_of(schema: Any) -> str:
    """The table's key: its one integer identifier field when the Iceberg schema declares
    one, else ``order_id`` (the reference table's)."""
    names = list(getattr(schema, "identifier_field_names", lambda: [])())
    return str(names[0]) if len(names) == 1 else DEFAULT_KEY


class _PartWriter:
    """Writes record batches into numbered Parquet files of at most ``file_rows`` rows, in
    row groups of ``row_group_rows``, keeping each file's row count and key range."""

    def __init__(
        self, directory: Path, schema: pa.Schema, key: str, *, file_rows: int, row_group_rows: int
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.key = key
        self.file_rows = file_rows
        self.row_group_rows = row_group_rows
        self.files: list[ReserveFile] = []
        self._writer: pq.ParquetWriter | None = None
        self._path = ""
        self._rows = 0
        self._min: int | None = None
        self._max: int | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        while batch.num_rows:
            # Whole row groups: a batch's edges must not cut one short.
            room = min(self.file_rows - self._rows, self.row_group_rows) - self._pending_rows
            head, batch = batch.slice(0, room), batch.slice(room)
            self._pending.append(head)
            self._pending_rows += head.num_rows
            if self._pending_rows >= self.row_group_rows or self._rows + self._pending_rows >= self.file_rows:
                self._flush()
            if self._rows >= self.file_rows:
                self._close_file()

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        rows = pa.Table.from_batches(self._pending, schema=self.schema)
        self._pending, self._pending_rows = [], 0
        if self._writer is None:
            self._path = f"part-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(self.directory / self._path, self.schema)
        self._writer.write_table(rows, row_group_size=self.row_group_rows)
        self._rows += rows.num_rows
        bounds = pc.min_max(rows.column(self.key))
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is not None:
            self._min = low if self._min is None else min(self._min, low)
            self._max = high if self._max is None else max(self._max, high)

    def _close_file(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self.files.append(ReserveFile(self._path, self._rows, self._min, self._max))
        self._writer, self._rows, self._min, self._max = None, 0, None, None

    def abandon(self) -> None:
        """Close the open file, keeping nothing of it (the copy failed)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None

    def close(self) -> list[ReserveFile]:
        self._flush()
        self._close_file()
        return self.files


def write_parts(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    directory: Path,
    *,
    key: str,
    file_rows: int = FILE_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> list[ReserveFile]:
    """Write ``batches`` as Parquet files under ``directory`` (which must exist); returns
    the files written, with their rows and key ranges. The key must be an integer column."""
    if key not in schema.names:
        raise ConfigError(
            "TakeReserveCopy", "table", key, f"a table with a key column {key!r}; columns: {schema.names}"
        )
    if not pa.types.is_integer(schema.field(key).type):
        raise ConfigError(
            "TakeReserveCopy",
            f"key column {key}",
            str(schema.field(key).type),
            "an integer column (reserves split by key range)",
        )
    writer = _PartWriter(directory, schema, key, file_rows=file_rows, row_group_rows=row_group_rows)
    try:
        for batch in batches:
            writer.add(batch.cast(schema) if batch.schema != schema else batch)
    except BaseException:
        writer.abandon()  # the open file's handle; the half-written directory goes with it
        raise
    return writer.close()


def reserve_dir(reserves: Path, name: str) -> Path:
    return reserves / name


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A fresh directory beside ``target`` that replaces it when the block ends without an
    error (and is deleted when it raises): a reader never finds half a reserve."""
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    partial.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def take_reserve(
    context: DrillContext,
    name: str,
    identifier: str,
    *,
    file_rows: int = FILE_ROWS,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> Reserve:
    """Copy the rows of ``identifier`` at its current snapshot to ``<state dir>/reserves/
    <name>/`` (replacing an older reserve of that name) and return its manifest."""
    import datadrill
    from datadrill.platform.catalog import sink_state

    table = context.stack.catalog().load_table(identifier)
    snapshot = table.current_snapshot()
    key = _key_of(table.schema())
    schema = table.schema().as_arrow()
    offsets, max_ids = sink_state(table) if snapshot is not None else ({}, {})
    target = reserve_dir(context.stack.paths.reserves, name)
    with _replacing(target) as partial:
        if snapshot is None:
            batches: Iterable[pa.RecordBatch] = ()
        else:
            reader = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow_batch_reader()
            schema = reader.schema
            batches = reader
        files = write_parts(
            batches, schema, partial, key=key, file_rows=file_rows, row_group_rows=row_group_rows
        )
        reserve = Reserve(
            name=name,
            table=identifier,
            snapshot_id=snapshot.snapshot_id if snapshot is not None else None,
            taken_at=datetime.fromtimestamp(context.clock.wall(), UTC).isoformat(timespec="milliseconds"),
            rows=sum(f.rows for f in files),
            key_column=key,
            key_min=min((f.key_min for f in files if f.key_min is not None), default=None),
            key_max=max((f.key_max for f in files if f.key_max is not None), default=None),
            files=tuple(files),
            schema=tuple((f.name, str(f.type), f.nullable) for f in schema),
            sink_offsets=offsets,
            sink_max_event_ids=max_ids,
            run_id=context.run_id,
            datadrill_version=datadrill.__version__,
            directory=target,
        )
        (partial / MANIFEST).write_text(json.dumps(reserve.manifest(), indent=2) + "\n", encoding="utf-8")
    return reserve


def _field(
    data: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False
) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(where, name, value, f"a {expected}" + (" or null" if optional else ""))
    return value


def parse_manifest(data: Any, directory: Path, where: str) -> Reserve:
    """The :class:`Reserve` a manifest describes; :class:`ConfigError` naming the file and
    the field for one that is not a manifest of this format."""
    if not isinstance(data, dict):
        raise ConfigError(where, "(manifest)", data, "a JSON object")
    if data.get("format") != FORMAT:
        raise ConfigError(
            where, "format", data.get("format"), f"{FORMAT} (a reserve of another datadrill version)"
        )
    key_range = _field(data, "key_range", dict, where)
    files = []
    for index, entry in enumerate(_field(data, "files", list, where)):
        at = f"{where} files[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(at, "(file)", entry, "an object with path, rows, key_min, key_max")
        path = _field(entry, "path", str, at)
        if "/" in path or path.startswith("."):
            raise ConfigError(at, "path", path, "a file name inside the reserve's directory")
        files.append(
            ReserveFile(
                path,
                _field(entry, "rows", int, at),
                _field(entry, "key_min", int, at, optional=True),
                _field(entry, "key_max", int, at, optional=True),
            )
        )
    schema = []
    for index, column in enumerate(_field(data, "schema", list, where)):
        at = f"{where} schema[{index}]"
        if not isinstance(column, dict):
            raise ConfigError(at, "(column)", column, "an object with name, type, nullable")
        schema.append(
            (
                _field(column, "name", str, at),
                _field(column, "type", str, at),
                _field(column, "nullable", bool, at),
            )
        )
    sink = _field(data, "sink_state", dict, where)

    def by_partition(field: str) -> dict[int, int]:
        raw = _field(sink, field, dict, f"{where} sink_state")
        try:
            return {int(p): int(v) for p, v in raw.items()}
        except (TypeError, ValueError):
            raise ConfigError(f"{where} sink_state", field, raw, "partition → integer") from None

    return Reserve(
        name=_field(data, "name", str, where),
        table=_field(data, "table", str, where),
        snapshot_id=_field(data, "snapshot_id", int, where, optional=True),
        taken_at=_field(data, "taken_at", str, where),
        rows=_field(data, "rows", int, where),
        key_column=_field(data, "key_column", str, where),
        key_min=_field(key_range, "min", int, f"{where} key_range", optional=True),
        key_max=_field(key_range, "max", int, f"{where} key_range", optional=True),
        files=tuple(files),
        schema=tuple(schema),
        sink_offsets=by_partition("offsets"),
        sink_max_event_ids=by_partition("max_event_ids"),
        run_id=_field(data, "run_id", str, where, optional=True),
        datadrill_version=_field(data, "datadrill_version", str, where),
        directory=directory,
    )


def load_reserve(reserves: Path, name: str) -> Reserve:
    """The reserve ``name`` under ``reserves`` (a state directory's ``reserves/``), its
    files checked to be there. :class:`ReserveMissing` names what is missing."""
    directory = reserve_dir(reserves, name)
    path = directory / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        taken = (
            sorted(p.name for p in reserves.iterdir() if (p / MANIFEST).is_file())
            if reserves.is_dir()
            else []
        )
        raise ReserveMissing(
            f"no reserve copy named {name!r} in {reserves.name}/ of the stack's state directory "
            f"(reserves there: {', '.join(taken) or 'none'}); take one with TakeReserveCopy(at_s=..., name={name!r})"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"line {exc.lineno}", text[:40], f"JSON ({exc.msg})") from None
    reserve = parse_manifest(data, directory, str(path))
    gone = [f.path for f in reserve.files if not (directory / f.path).is_file()]
    if gone:
        raise ReserveMissing(
            f"reserve copy {name!r} lost {len(gone)} of its {len(reserve.files)} files ({', '.join(gone[:3])}): "
            "it cannot be backfilled from"
        )
    return reserve


__all__ = [
    "FILE_ROWS",
    "MANIFEST",
    "ROW_GROUP_ROWS",
    "Reserve",
    "ReserveFile",
    "ReserveMissing",
    "load_reserve",
    "parse_manifest",
    "take_reserve",
    "write_parts",
]
