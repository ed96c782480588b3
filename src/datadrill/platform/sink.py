"""The sink connector: Kafka ``orders.v1`` → Iceberg ``dwh.orders``, exactly once.

Exactly-once across crashes comes from one atomic step: each Iceberg commit carries, in
its snapshot summary, the next Kafka offset of every partition and the highest outbox
event id written per partition. On start the sink reads both from the table and resumes
there; Kafka's committed offsets are written too, after each Iceberg commit, but only so
lag can be measured — they are never trusted for resuming.

The relay republishes a batch when it crashes between publishing and marking. Events of
one order always land in one partition (keyed by order id) in event-id order, so any
event whose id is not above the partition's high-water event id is a duplicate.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import Table
from sqlalchemy.exc import SQLAlchemyError

from datadrill.config import StackConfig, read_running_config
from datadrill.paths import StatePaths
from datadrill.platform.catalog import (
    MAX_EVENT_IDS_PROPERTY,
    OFFSETS_PROPERTY,
    ORDERS_ARROW_SCHEMA,
    catalog_uri,
    open_stack_catalog,
    sink_state,
    via_address,
)
from datadrill.platform.compaction import commit, plan, rewrite
from datadrill.platform.component import Component
from datadrill.platform.contracts import HEADER_SCHEMA_ID as _SCHEMA_HEADER
from datadrill.platform.contracts import Contract, ContractViolation, contract_for_headers, decode_each
from datadrill.platform.registry import SchemaIds, schema_ids
from datadrill.platform.transactions import expire_snapshots, transaction

log = logging.getLogger("datadrill.sink")

CRASH_BEFORE_COMMIT = "after-write-before-commit"
EXPIRY_SLACK = 10
"""Snapshots beyond ``snapshots_to_keep`` before the old ones are expired. Every commit deep-copies
the table's metadata (pyiceberg), so its cost follows the snapshots it holds: expiring every
10 commits instead of every 50 halved the sink's commit time (90 → 49 ms, 20-row commits)."""
_COLUMNS = [f.name for f in ORDERS_ARROW_SCHEMA]


@dataclass
class Batch:
    """Rows decoded from consumed messages, with the offsets and event ids they advance.

    Rows arrive two ways: one at a time into ``columns`` (:meth:`EventDecoder.add`) and as
    whole Arrow tables decoded a column at a time (``chunks``); :meth:`arrow` keeps their
    order."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in _COLUMNS})
    offsets: dict[int, int] = field(default_factory=dict)
    max_ids: dict[int, int] = field(default_factory=dict)
    rows: int = 0
    messages: int = 0
    started: float = 0.0
    chunks: list[pa.Table] = field(default_factory=list)

    def _listed(self) -> pa.Table:
        return pa.Table.from_pydict(self.columns, schema=ORDERS_ARROW_SCHEMA)

    def append_table(self, table: pa.Table) -> None:
        """Add rows already in :data:`ORDERS_ARROW_SCHEMA`, after those added so far."""
        if self.columns["event_id"]:
            self.chunks.append(self._listed())
            self.columns = {c: [] for c in _COLUMNS}
        self.chunks.append(table)
        self.rows += table.num_rows

    def arrow(self) -> pa.Table:
        if not self.chunks:
            return self._listed()
        tables = [*self.chunks, self._listed()] if self.columns["event_id"] else self.chunks
        return pa.concat_tables(tables)


def snapshot_properties(offsets: dict[int, int], max_ids: dict[int, int]) -> dict[str, str]:
    """The exactly-once state stored in an Iceberg snapshot's summary."""
    return {
        OFFSETS_PROPERTY: json.dumps({str(k): v for k, v in sorted(offsets.items())}),
        MAX_EVENT_IDS_PROPERTY: json.dumps({str(k): v for k, v in sorted(max_ids.items())}),
    }


# A placeholder that every decode_many slot is overwritten from.
_NOT_DECODED = ContractViolation("not decoded")

_RECORD_COLUMNS = (
    "order_id",
    "customer_id",
    "amount_cents",
    "currency",
    "status",
    "created_at",
    "is_canary",
    "event_id",
)


# Below this many messages a call decodes one message at a time: the columnar path's fixed
# cost (numpy and Arrow set-up, ~40 µs) is worth it from a few dozen messages on.
_COLUMNAR_MIN = 32
# The order's fields and the Avro types the columnar path takes them in.
_COLUMNAR_TYPES = {
    "event_id": {"long", "int"},
    "order_id": {"long", "int"},
    "customer_id": {"long", "int"},
    "amount_cents": {"long", "int"},
    "currency": {"string"},
    "status": {"string"},
    "created_at": {"long"},
    "is_canary": {"boolean"},
}


def _columnar(contract: Contract) -> bool:
    """Can messages of ``contract`` be added a column at a time? A drifted writer (a field
    renamed, dropped or retyped) cannot: it takes :meth:`EventDecoder.add`'s rules."""
    fields = contract.flat_fields
    if fields is None:
        return False
    kinds = dict(fields)
    return all(kinds.get(name) in allowed for name, allowed in _COLUMNAR_TYPES.items())


def _order_rows(decoded: pa.Table, partitions: list[int], offsets: list[int], ingested_us: int) -> pa.Table:
    """Decoded order records as rows of :data:`ORDERS_ARROW_SCHEMA`."""
    timestamp = ORDERS_ARROW_SCHEMA.field("created_at").type
    n = decoded.num_rows
    columns = {
        "order_id": decoded.column("order_id"),
        "customer_id": decoded.column("customer_id"),
        "amount_cents": decoded.column("amount_cents"),
        "currency": decoded.column("currency"),
        "status": decoded.column("status"),
        "created_at": decoded.column("created_at").cast(timestamp),
        "is_canary": decoded.column("is_canary"),
        "event_id": decoded.column("event_id"),
        "kafka_partition": pa.array(partitions, type=pa.int32()),
        "kafka_offset": pa.array(offsets, type=pa.int64()),
        "ingested_at": pa.repeat(pa.scalar(ingested_us, type=pa.int64()), n).cast(timestamp),
    }
    return pa.table(columns, schema=ORDERS_ARROW_SCHEMA)


class EventDecoder:
    """Decodes ``orders.v1`` messages into a :class:`Batch`, dropping republished duplicates.

    Shared by the sink and by the Kafka replay recovery step, so both apply the same
    exactly-once rule: per partition, an event id at or below the high-water id is a
    duplicate.
    """

    def __init__(self, ids: SchemaIds | None = None) -> None:
        self._contracts: dict[bytes, Contract] = {}
        self._ids = ids
        self.last_error = ""

    def _decode(self, msg: Message) -> dict[str, Any]:
        value = msg.value() or b""
        if self._ids is not None and self._ids.framed:
            # Schema Registry wire format: the id is in the value's first five bytes.
            contract, payload = self._ids.unframe(value, header_id=None)
            return contract.decode(payload)
        return self._contract(msg).decode(value)

    def _contract(self, msg: Message) -> Contract:
        # Hot path: find the schema id without normalising every header of every message.
        raw = msg.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        schema_id: str | bytes | None = b""
        for key, value in pairs:
            if key == _SCHEMA_HEADER:
                schema_id = value
                break
        key_bytes = schema_id.encode() if isinstance(schema_id, str) else schema_id or b""
        contract = self._contracts.get(key_bytes)
        if contract is None:
            contract = contract_for_headers([(_SCHEMA_HEADER, key_bytes)])
            self._contracts[key_bytes] = contract
        return contract

    def decode_many(self, msgs: Sequence[Message]) -> list[dict[str, Any] | ContractViolation]:
        """Each message decoded as :meth:`add` would, or the violation it would raise; the
        messages of each contract are decoded together (``Contract.decode_many``)."""
        if self._ids is not None and self._ids.framed:
            return decode_each(self._decode, msgs)
        by_contract: dict[Contract, list[int]] = {}
        for index, msg in enumerate(msgs):
            by_contract.setdefault(self._contract(msg), []).append(index)
        decoded: list[dict[str, Any] | ContractViolation] = [_NOT_DECODED] * len(msgs)
        for contract, indices in by_contract.items():
            records = contract.decode_many([msgs[i].value() or b"" for i in indices])
            for index, record in zip(indices, records, strict=True):
                decoded[index] = record
        return decoded

    def add_many(
        self, batch: Batch, msgs: Sequence[Message], high_ids: dict[int, int], ingested_us: int
    ) -> list[str]:
        """Add consumed messages (none with an error) in order; :meth:`add`'s outcome of each."""
        outcomes = self._add_columns(batch, msgs, high_ids, ingested_us)
        if outcomes is not None:
            return outcomes
        return [
            self.add(batch, msg, high_ids, ingested_us, decoded=record)
            for msg, record in zip(msgs, self.decode_many(msgs), strict=True)
        ]

    def _add_columns(
        self, batch: Batch, msgs: Sequence[Message], high_ids: dict[int, int], ingested_us: int
    ) -> list[str] | None:
        """:meth:`add_many` a column at a time (``Contract.decode_columns``), when every message
        is of one flat Avro contract holding the order's fields with their types and every
        payload reads exactly; ``None`` (nothing added) otherwise, and the messages go one
        at a time. The outcomes are :meth:`add`'s, message by message. With a Schema
        Registry the contract is the one the frames' id names, when they all name one."""
        if len(msgs) < _COLUMNAR_MIN:
            return None
        if self._ids is not None and self._ids.framed:
            unframed = self._ids.unframe_all([m.value() or b"" for m in msgs])
            if unframed is None:
                return None  # not all framed with one known id: each message's outcome says why
            contract, payloads = unframed
            if not _columnar(contract):
                return None
        else:
            contract = self._contract(msgs[0])
            if not _columnar(contract) or any(self._contract(m) is not contract for m in msgs):
                return None
            payloads = [m.value() or b"" for m in msgs]
        decoded, ok = contract.decode_columns(payloads)
        if not ok.all():
            return None  # a payload fastavro must judge (a poison message, say)
        outcomes: list[str] = []
        keep: list[int] = []
        partitions: list[int] = []
        offsets: list[int] = []
        max_ids = batch.max_ids
        for index, (msg, event_id) in enumerate(zip(msgs, decoded.column("event_id").to_pylist(), strict=True)):
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None  # set on every consumed message
            batch.offsets[partition] = offset + 1
            if event_id <= max_ids.get(partition, high_ids.get(partition, -1)):
                outcomes.append("duplicate")
                continue
            max_ids[partition] = event_id
            keep.append(index)
            partitions.append(partition)
            offsets.append(offset)
            outcomes.append("row")
        batch.messages += len(msgs)
        if keep:
            rows = decoded if len(keep) == len(msgs) else decoded.take(keep)
            batch.append_table(_order_rows(rows, partitions, offsets, ingested_us))
        return outcomes

    def add(
        self,
        batch: Batch,
        msg: Message,
        high_ids: dict[int, int],
        ingested_us: int,
        *,
        decoded: dict[str, Any] | ContractViolation | None = None,
    ) -> str:
        """Add one message; returns "row", "duplicate" or "rejected". ``decoded``: the message's
        record (or violation) from :meth:`decode_many`, when it was decoded already."""
        partition = msg.partition()
        offset = msg.offset()
        assert partition is not None and offset is not None  # set on every consumed message
        batch.messages += 1
        batch.offsets[partition] = offset + 1
        try:
            if isinstance(decoded, ContractViolation):
                raise decoded
            record = self._decode(msg) if decoded is None else decoded
        except ContractViolation as exc:
            self.last_error = f"{msg.topic()}[{partition}]@{offset}: {exc}"
            return "rejected"
        event_id = int(record["event_id"])
        high = batch.max_ids.get(partition, high_ids.get(partition, -1))
        if event_id <= high:
            return "duplicate"
        batch.max_ids[partition] = event_id
        cols = batch.columns
        for name in _RECORD_COLUMNS:
            # Read the way a naive consumer of drifted data would: a renamed or dropped field
            # becomes null; a retyped amount is taken at face value. Reconciliation finds it.
            value = record.get(name)
            if name == "amount_cents" and isinstance(value, str):
                value = int(float(value))
            cols[name].append(value)
        cols["kafka_partition"].append(partition)
        cols["kafka_offset"].append(offset)
        cols["ingested_at"].append(ingested_us)
        batch.rows += 1
        return "row"


@dataclass
class _Stats:
    rows_committed: int = 0
    commits: int = 0
    duplicates_dropped: int = 0
    rejected: int = 0
    commit_errors: int = 0
    offset_resets: int = 0
    compactions: int = 0
    files_compacted: int = 0
    last_error: str = ""
    last_commit_mono: float = 0.0
    snapshot_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Sink:
    def __init__(
        self, config: StackConfig, paths: StatePaths, bootstrap: str, *, catalog_via: str | None = None
    ) -> None:
        self.config = config
        self.paths = paths
        self.component = Component("sink", paths)
        uri = catalog_uri(config, paths)
        self.catalog: Catalog = open_stack_catalog(
            config, paths, uri=via_address(uri, catalog_via) if catalog_via else uri
        )
        self.topic = config.kafka.topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": config.sink.group_id,
                "enable.auto.commit": False,
                # An offset out of range is reported, not silently reset: after a topic was
                # recreated or retention deleted records, the sink says so and resumes from
                # the partition's low watermark itself (_restart_out_of_range).
                "auto.offset.reset": "error",
                "fetch.wait.max.ms": 50,
                "queued.max.messages.kbytes": 262_144,
                "client.id": "datadrill-sink",
            }
        )
        self.stats = _Stats()
        self.weakened = config.sink.guarantee == "offsets_first"
        if self.weakened:
            log.warning("sink.guarantee = offsets_first: this sink loses rows when it crashes mid-commit")
        self.offsets: dict[int, int] = {}
        self.max_ids: dict[int, int] = {}
        self.decoder = EventDecoder(schema_ids(config))
        self.table: Table | None = None
        # Data files of compaction's size or more in the table (None: not planned since the
        # table was loaded); compaction plans again once min_files more were committed.
        self._large_files: int | None = None
        # Held by each commit to the table: the sink's appends and the compaction thread's.
        self._commit_lock = threading.Lock()
        self._compactor: threading.Thread | None = None

    # -- state -------------------------------------------------------------------------
    def _load_table(self) -> Table:
        """Wait for the table (it may be missing during a metadata-loss fault)."""
        delay = 0.2
        while self.component.should_run():
            try:
                return self.catalog.load_table(self.config.catalog.table)
            except (NoSuchTableError, OSError, SQLAlchemyError) as exc:
                self._error(f"cannot load {self.config.catalog.table}: {exc}")
                self.component.heartbeat(self._heartbeat())
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise SystemExit(0)

    def _resume(self) -> None:
        """(Re)load the table and seek every partition to the offsets it recorded."""
        table = self._load_table()
        with self._commit_lock:
            self.table = table
        self._large_files = None
        self.offsets, self.max_ids = sink_state(self.table)
        metadata = self.consumer.list_topics(self.topic, timeout=10)
        partitions = sorted(metadata.topics[self.topic].partitions)
        if self.weakened:
            # The bug on purpose: trust Kafka's committed offsets over the table's.
            committed = self.consumer.committed(
                [TopicPartition(self.topic, p) for p in partitions], timeout=10
            )
            self.offsets = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
        self.consumer.assign(
            [TopicPartition(self.topic, p, self.offsets.get(p, OFFSET_BEGINNING)) for p in partitions]
        )
        log.info("resuming %s from offsets %s", self.topic, self.offsets or "(beginning)")

    def _error(self, message: str) -> None:
        self.stats.last_error = message
        log.warning(message)

    # -- decoding ------------------------------------------------------------------------
    def _add(self, batch: Batch, msgs: list[Message], ingested_us: int) -> None:
        for outcome in self.decoder.add_many(batch, msgs, self.max_ids, ingested_us):
            if outcome == "duplicate":
                self.stats.duplicates_dropped += 1
            elif outcome == "rejected":
                self.stats.rejected += 1
                self._error(self.decoder.last_error)

    # -- committing ----------------------------------------------------------------------
    def _commit(self, batch: Batch) -> None:
        offsets = {**self.offsets, **batch.offsets}
        max_ids = {**self.max_ids, **batch.max_ids}
        if self.weakened and batch.offsets:
            # The bug on purpose: the offsets are committed before the rows are written.
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in batch.offsets.items()],
                asynchronous=False,
            )
        if batch.rows:
            assert self.table is not None
            arrow = batch.arrow()
            properties = snapshot_properties(offsets, max_ids)
            try:
                with self._commit_lock:
                    tx = transaction(self.table)
                    tx.append(arrow, snapshot_properties=properties)
                    # Data files are written; the catalog does not point at them yet.
                    self.component.crash_point(CRASH_BEFORE_COMMIT)
                    tx.commit_transaction()
            except (CommitFailedException, NoSuchTableError, OSError, SQLAlchemyError) as exc:
                # Someone else changed the table (a repair, a restore) or it is gone:
                # drop the batch and resume from whatever the table now records.
                self.stats.commit_errors += 1
                self._error(f"commit failed, resuming from the table's offsets: {exc!r}")
                time.sleep(0.2)
                self._resume()
                return
            self.stats.rows_committed += batch.rows
            self.stats.commits += 1
            self.stats.last_commit_mono = time.monotonic()
            snapshot = self.table.current_snapshot()
            self.stats.snapshot_id = snapshot.snapshot_id if snapshot else None
            self._maybe_compact()
            if len(self.table.metadata.snapshots) > self.config.sink.snapshots_to_keep + EXPIRY_SLACK:
                self._expire_snapshots()
        self.offsets, self.max_ids = offsets, max_ids
        if batch.offsets and not self.weakened:
            # For lag measurement only (see the module docstring).
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in batch.offsets.items()],
                asynchronous=True,
            )

    def _restart_out_of_range(self, fetched: dict[int, int], batch: Batch) -> None:
        """Partitions whose fetch offset the cluster no longer has: below the low watermark
        (retention deleted records) or beyond the high one (the topic was deleted and
        created again, its offsets restarting at 0). Each resumes from its low watermark:
        what is there now is newer than what the table holds, and the exactly-once rule by
        event id drops anything already written. The other partitions go on from where they
        were; the next commit records the new offsets."""
        lows: dict[int, int] = {}
        for partition, offset in sorted(fetched.items()):
            try:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=10, cached=False
                )
            except KafkaException as exc:
                low, high = OFFSET_BEGINNING, -1
                self._error(f"no watermarks for {self.topic}[{partition}]: {exc}")
            lows[partition] = low
            self.stats.offset_resets += 1
            self._error(
                f"{self.topic}[{partition}]: offset {offset} is out of range (the partition holds "
                f"{low}..{high}): the topic was recreated or retention deleted records; resuming from "
                "its low watermark (events there are newer than the table's; the event-id rule drops "
                "any already written)"
            )
            batch.offsets.pop(partition, None)
            if low >= 0:
                self.offsets[partition] = low
        starts = []
        for tp in self.consumer.assignment():
            p = tp.partition
            start = lows[p] if p in lows else batch.offsets.get(p, self.offsets.get(p, OFFSET_BEGINNING))
            starts.append(TopicPartition(self.topic, p, start))
        # A partition in the offset-reset error state cannot be seeked: assign again.
        self.consumer.assign(starts)

    def _maybe_compact(self) -> None:
        """Start a compaction once ``compact_min_files`` small files may be held (see
        :mod:`datadrill.platform.compaction`). It plans, reads and writes in a thread from the
        table as this commit left it, and commits under the sink's commit lock: it never
        races the sink's appends, and holds up the next one only for its own commit."""
        min_files = self.config.sink.compact_min_files
        if not min_files or (self._compactor is not None and self._compactor.is_alive()):
            return
        assert self.table is not None
        snapshot = self.table.current_snapshot()
        summary = snapshot.summary if snapshot is not None else None
        total = int(summary.additional_properties.get("total-data-files", 0)) if summary is not None else 0
        if self._large_files is not None and total - self._large_files < min_files:
            return
        # The table as of this commit: pyiceberg replaces a table's metadata on commit, it
        # does not change it, so this view stays what it was while the sink goes on.
        view = Table(
            self.table.name(),
            self.table.metadata,
            self.table.metadata_location,
            self.table.io,
            self.table.catalog,
        )
        self._compactor = threading.Thread(
            target=self._compact, args=(view, total), name="datadrill-compaction", daemon=True
        )
        self._compactor.start()

    def _compact(self, view: Table, total: int) -> None:
        min_files, file_rows = self.config.sink.compact_min_files, self.config.sink.compact_file_rows
        try:
            files = plan(view, file_rows=file_rows)
            self._large_files = files.large if files.small is not None else total
            if files.small is None or len(files.small) < min_files:
                return
            prepared = rewrite(view, files.small)
            with self._commit_lock:
                table = self.table
                if table is None or table.metadata.table_uuid != view.metadata.table_uuid:
                    return  # the table was replaced while the files were rewritten
                done = commit(table, prepared, properties=snapshot_properties(*sink_state(table)))
        except Exception as exc:  # noqa: BLE001 - maintenance: a failure must not stop the sink
            # Mostly another writer that committed first (nothing landed) or a table that is
            # gone; the sink's next append meets the same and resumes from the table.
            log.warning("compaction skipped: %r", exc)
            self._large_files = None
            return
        self.stats.compactions += 1
        self.stats.files_compacted += done.files_in
        if done.rows >= file_rows:
            self._large_files = (self._large_files or 0) + done.files_out
        log.info(
            "compacted %d small files (%d rows) into %d in %.0f ms (%.0f ms of it committing)",
            done.files_in,
            done.rows,
            done.files_out,
            done.seconds * 1000,
            (done.seconds - prepared.seconds) * 1000,
        )

    def _expire_snapshots(self) -> None:
        assert self.table is not None
        keep = self.config.sink.snapshots_to_keep
        snapshots = sorted(self.table.snapshots(), key=lambda s: s.timestamp_ms)
        old = [s.snapshot_id for s in snapshots[:-keep]]
        if not old:
            return
        try:
            with self._commit_lock:
                expire_snapshots(self.table).by_ids(old).commit()
        except (CommitFailedException, ValueError, OSError) as exc:
            self._error(f"snapshot expiry skipped: {exc!r}")

    def _heartbeat(self) -> dict[str, Any]:
        data = self.stats.as_dict()
        data["offsets"] = {str(k): v for k, v in self.offsets.items()}
        return data

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> None:
        self._resume()
        wait_s = self.config.sink.batch_max_wait_ms / 1000
        max_records = self.config.sink.batch_max_records
        batch = Batch(started=time.monotonic())
        throttle = self.paths.sink_throttle
        while self.component.should_run():
            limit = _throttle(throttle)
            want = min(10_000, max_records - batch.messages)
            if limit is not None:
                # A lag-spike fault throttles the sink: consume at most `limit` messages/s.
                want = max(1, min(want, int(limit * 0.1)))
            began = time.monotonic()
            # Wait for messages no longer than until the batch is due: at a steady rate a
            # poll returns only after its timeout, which would delay each commit by up to
            # that much (the canary's latency).
            timeout = 0.05 if not batch.messages else min(0.05, max(0.001, batch.started + wait_s - began))
            messages = self.consumer.consume(num_messages=want, timeout=timeout)
            ingested_us = time.time_ns() // 1000
            out_of_range: dict[int, int] = {}
            consumed: list[Message] = []
            for msg in messages:
                error = msg.error()
                if error is not None and error.code() == KafkaError._AUTO_OFFSET_RESET:
                    partition = msg.partition()
                    if partition is not None:
                        out_of_range[partition] = msg.offset() or 0
                    continue
                if error is not None:
                    self._error(f"consumer error: {error}")
                    continue
                consumed.append(msg)
            if consumed:
                if batch.messages == 0:
                    batch.started = time.monotonic()
                self._add(batch, consumed, ingested_us)
            if out_of_range:
                self._restart_out_of_range(out_of_range, batch)
            full = batch.messages >= max_records
            due = batch.messages and time.monotonic() - batch.started >= wait_s
            if full or due:
                self._commit(batch)
                batch = Batch(started=time.monotonic())
            self.component.heartbeat(self._heartbeat())
            if limit is not None and messages:
                time.sleep(max(0.0, len(messages) / limit - (time.monotonic() - began)))
        if self._compactor is not None:
            self._compactor.join(timeout=30)  # a commit under way lands or fails whole
        self.consumer.close()


def _throttle(path: Path) -> float | None:
    """Messages per second the sink may consume, if a fault throttles it."""
    try:
        return max(1.0, float(path.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="datadrill-sink")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument(
        "--catalog-via", metavar="HOST:PORT", help="reach the catalog database through this address (a proxy)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    paths = StatePaths(Path(args.state_dir))
    Sink(read_running_config(paths), paths, args.bootstrap, catalog_via=args.catalog_via).run()


if __name__ == "__main__":
    main()
