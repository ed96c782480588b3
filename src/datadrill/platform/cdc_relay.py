"""The CDC relay (``[relay] mode = "cdc"``): the outbox's inserts, read from PostgreSQL's
write-ahead log through a logical replication slot, published to Kafka ``orders.v1``.

This is how Debezium reads a database: a publication names the table (``CREATE
PUBLICATION datadrill_outbox FOR TABLE outbox WITH (publish = 'insert')``), a slot with
the ``pgoutput`` plugin keeps the server's WAL until the client confirms it, and psycopg2
speaks the streaming replication protocol (:mod:`.pgoutput` decodes the messages).

Each committed transaction's outbox inserts become events with exactly the poll relay's
contract, headers, key and dead-letter rules (:class:`~.relay.Publisher`). Order of work
per batch: read committed transactions while messages keep arriving (up to
``relay.batch_max_records``), publish, wait until Kafka acknowledged every message, delete
the published rows from the outbox (so ``outbox_depth`` still counts what is not yet
published), then confirm the last transaction's end LSN to the slot. A crash anywhere
before the confirmation replays those transactions on restart: at-least-once, and the
sink drops the duplicates by event id.

Failures it rides out:

- the source is unreachable (a ``SourceOutage``, the fault proxy refusing): reconnect with
  backoff, ``last_error`` in the heartbeat;
- the slot is gone (an operator dropped it; the connection was terminated first): recreate
  it and go on from *now*. Everything written in between never reaches Kafka; a warning is
  logged and ``slot_recreated`` counts it;
- ``StatePaths.relay_stall`` exists (a ``ReplicationSlotStall``): read and confirm nothing,
  but answer the server so ``wal_sender_timeout`` keeps the connection; WAL piles up.

A server without ``wal_level=logical`` cannot have a logical slot: the relay says so on
one line and exits with :data:`EXIT_NO_LOGICAL_DECODING`.

Run by the stack as::

    python -m datadrill.platform.cdc_relay --state-dir D --bootstrap B --source postgresql://...
"""

from __future__ import annotations

import argparse
import logging
import select
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extras
from confluent_kafka import Producer
from psycopg2 import sql

from datadrill.config import StackConfig, read_running_config
from datadrill.errors import ConfigError, DrillError
from datadrill.paths import StatePaths
from datadrill.platform import pgoutput
from datadrill.platform.component import Component
from datadrill.platform.relay import (
    CRASH_AFTER_PUBLISH,
    Publisher,
    RelayStats,
    make_producer,
    wait_acknowledged,
)
from datadrill.platform.source_conn import SourceConnection, describe_source, is_postgres, open_source
from datadrill.platform.source_db import (
    OutboxEvent,
    ensure_schema,
    last_event_id,
    mark_published,
    pending_events,
)

log = logging.getLogger("datadrill.cdc_relay")

EXIT_NO_LOGICAL_DECODING = 3
"""Exit code when the source cannot be decoded logically (``wal_level`` is not ``logical``,
or it is not PostgreSQL): no restart will help."""

OUTBOX_TABLE = "outbox"
# Far under PostgreSQL's default wal_sender_timeout (60 s), after which the server drops a
# client that has not answered; an answer is a few dozen bytes.
KEEPALIVE_EVERY_S = 1.0
# How long a batch stays open once its first message came: under steady writes messages
# never stop arriving, and a batch bounded only by its size would hold the first event
# back for batch_max_records / rate seconds (20 s at 1,000 orders/s).
BATCH_MAX_WAIT_S = 0.1
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 5.0


class NoLogicalDecoding(DrillError):
    """The source cannot feed a CDC relay: not PostgreSQL, or its WAL is not logical."""


class _Stopped(Exception):
    """Asked to stop while waiting for Kafka: leave without confirming."""


def wal_level_message(target: str, level: str) -> str:
    return (
        f"PostgreSQL at {describe_source(target)} has wal_level={level}; the CDC relay needs "
        "wal_level=logical: set it in postgresql.conf and restart the server"
    )


def check_wal_level(db: SourceConnection) -> None:
    level = str(db.execute("SHOW wal_level").fetchone()[0])
    if level != "logical":
        raise NoLogicalDecoding(wal_level_message(db.target, level))


def check_source_uri(uri: str, *, cdc: bool) -> None:
    """Before a stack starts on ``[source] uri``: the server answers and, for the CDC relay
    (``cdc``), its WAL is logical. Otherwise one :class:`ConfigError` naming the URI and what
    to do, instead of a relay that exits again and again once the stack runs."""
    try:
        with open_source(uri, timeout_s=10) as db:
            level = str(db.execute("SHOW wal_level").fetchone()[0])
    except psycopg2.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError("[source]", "uri", describe_source(uri), f"a PostgreSQL server that answers ({reason})") from None
    if cdc and level != "logical":
        raise ConfigError(
            "[source]",
            "uri",
            describe_source(uri),
            f"a server with wal_level=logical for the CDC relay (it has wal_level={level}: set it in "
            'postgresql.conf and restart the server, or use [relay] mode = "poll")',
        )


def ensure_publication(db: SourceConnection, publication: str) -> bool:
    """Create the insert-only publication of the outbox if it is absent; True if created."""
    if db.execute("SELECT 1 FROM pg_publication WHERE pubname = ?", (publication,)).fetchone():
        return False
    statement = sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert')").format(
        sql.Identifier(publication), sql.Identifier(OUTBOX_TABLE)
    )
    try:
        db.execute(statement.as_string(db.raw))
    except psycopg2.errors.DuplicateObject:
        return False  # another relay made it a moment ago
    return True


def slot_exists(db: SourceConnection, slot: str) -> bool:
    return (
        db.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = ?", (slot,)).fetchone() is not None
    )


_TEXT_FIELDS = ("currency", "status")
_TEXT_OIDS = frozenset({pgoutput.TEXT_OID, pgoutput.VARCHAR_OID, pgoutput.BPCHAR_OID})


def check_outbox_relation(relation: pgoutput.Relation) -> None:
    """The outbox's columns as the stream describes them must carry an event: every field,
    integers as integer types and text as text (checked once per Relation message, so
    rows need no per-value checks)."""
    types = {c.name: c.type_oid for c in relation.columns}
    for name in OutboxEvent._fields:
        allowed = _TEXT_OIDS if name in _TEXT_FIELDS else pgoutput.INTEGER_OIDS
        if types.get(name) not in allowed:
            raise pgoutput.PgOutputError(
                f"{relation.qualified_name}.{name} has type OID {types.get(name)}; the CDC relay "
                f"needs {'text' if name in _TEXT_FIELDS else 'an integer'}"
            )


def outbox_event(row: dict[str, pgoutput.Value]) -> OutboxEvent:
    """An outbox insert's row (of a relation :func:`check_outbox_relation` passed) as the
    event the poll relay would have read."""
    values = tuple(row[name] for name in OutboxEvent._fields)
    if None in values:
        raise pgoutput.PgOutputError(f"outbox insert with a NULL: {row!r}")
    return OutboxEvent._make(values)


@dataclass
class Batch:
    """Committed transactions read from the slot: their outbox events, in commit order, and
    the end LSN of the last one (what to confirm)."""

    events: list[OutboxEvent] = field(default_factory=list)
    end_lsn: int | None = None


class StreamReader:
    """Decodes pgoutput messages into committed transactions of outbox events."""

    def __init__(self) -> None:
        self.relations: dict[int, pgoutput.Relation] = {}
        self._open: list[OutboxEvent] | None = None  # the transaction being read

    @property
    def in_transaction(self) -> bool:
        return self._open is not None

    def feed(self, payload: bytes, batch: Batch) -> None:
        message = pgoutput.decode(payload)
        if isinstance(message, pgoutput.Insert):  # the common case first
            relation = self.relations.get(message.relation_id)
            if relation is None:
                raise pgoutput.PgOutputError(
                    f"insert into relation {message.relation_id} before its Relation message"
                )
            if self._open is None:
                raise pgoutput.PgOutputError("insert outside a transaction")
            if relation.name == OUTBOX_TABLE:
                self._open.append(outbox_event(message.row(relation)))
        elif isinstance(message, pgoutput.Begin):
            self._open = []
        elif isinstance(message, pgoutput.Relation):
            if message.name == OUTBOX_TABLE:
                check_outbox_relation(message)
            self.relations[message.relation_id] = message
        elif isinstance(message, pgoutput.Commit):
            batch.events.extend(self._open or ())
            batch.end_lsn = message.end_lsn
            self._open = None
        elif isinstance(message, pgoutput.Skipped):
            pass  # updates, deletes (our own marking), truncates, origins, types, messages
        else:
            raise AssertionError(f"unhandled pgoutput message {message!r}")

    def reset(self) -> None:
        """A new replication session resends Relation messages and whole transactions."""
        self.relations.clear()
        self._open = None


class CdcRelay:
    """One CDC relay process: connections, the read-publish-confirm loop, recovery."""

    def __init__(self, paths: StatePaths, *, bootstrap: str, source: str, config: StackConfig) -> None:
        if not is_postgres(source):
            raise NoLogicalDecoding(
                f"the CDC relay reads PostgreSQL; --source {source!r} is not a postgresql:// URI"
            )
        self.paths = paths
        self.source = source
        self.config = config
        self.slot = config.relay.slot
        self.publication = config.relay.publication
        self.batch_max = config.relay.batch_max_records
        self.poll_s = config.relay.poll_interval_ms / 1000
        self.component = Component("relay", paths)
        self.bootstrap = bootstrap
        self.stats = RelayStats()
        # Made once the source proved it can be decoded (a server that cannot gets one line
        # on stderr, not also the producer's complaints about Kafka).
        self._producer: Producer | None = None
        self._publisher: Publisher | None = None
        self.reader = StreamReader()
        self.db: SourceConnection | None = None
        self.repl: Any = None  # psycopg2 LogicalReplicationConnection
        self.cursor: Any = None  # its ReplicationCursor
        self.confirmed_lsn = 0
        self.slot_recreated = 0
        self.reconnects = 0
        self.stalled = False
        self.streaming = False  # start_replication done on the current connection
        self.had_slot = False
        self.unmarked_up_to: int | None = None
        self._last_feedback = 0.0

    @property
    def producer(self) -> Producer:
        assert self._producer is not None, "connect() makes the producer"
        return self._producer

    @property
    def publisher(self) -> Publisher:
        assert self._publisher is not None, "connect() makes the publisher"
        return self._publisher

    # -- heartbeat ---------------------------------------------------------------------

    def beat(self, *, force: bool = False) -> None:
        self.component.heartbeat(
            {
                **self.stats.as_dict(),
                "mode": "cdc",
                "slot": self.slot,
                "confirmed_lsn": pgoutput.format_lsn(self.confirmed_lsn),
                "slot_recreated": self.slot_recreated,
                "reconnects": self.reconnects,
                "stalled": self.stalled,
                "connected": self.cursor is not None,
            },
            force=force,
        )

    # -- connections -------------------------------------------------------------------

    def connect(self) -> None:
        """Open both connections, make the publication and the slot, start streaming."""
        # A short connect timeout: during an outage a proxy may accept and then say nothing.
        self.db = open_source(self.source, timeout_s=5)
        ensure_schema(self.db)
        check_wal_level(self.db)
        if self._producer is None:
            self._producer = make_producer(self.bootstrap)
            self._publisher = Publisher(self.config, self.paths, self._producer, self.stats)
        created_publication = ensure_publication(self.db, self.publication)
        self.repl = psycopg2.connect(
            self.source, connection_factory=psycopg2.extras.LogicalReplicationConnection, connect_timeout=5
        )
        self.cursor = self.repl.cursor()
        if not slot_exists(self.db, self.slot):
            self._create_slot(first=created_publication and not self.had_slot)
        self.had_slot = True
        self.reader.reset()
        self.cursor.start_replication(
            slot_name=self.slot,
            decode=False,
            options={"proto_version": "1", "publication_names": self.publication},
        )
        self._last_feedback = time.monotonic()
        self.streaming = True
        log.info(
            "streaming slot %s (publication %s) from %s",
            self.slot,
            self.publication,
            describe_source(self.source),
        )

    def _create_slot(self, *, first: bool) -> None:
        assert self.db is not None
        try:
            self.cursor.create_replication_slot(self.slot, output_plugin="pgoutput")
        except psycopg2.errors.DuplicateObject:
            return
        if first:
            # A new pipeline: what the outbox already holds was committed before the slot
            # existed and will never be streamed. Publish it now (duplicates of rows also
            # streamed are dropped by the sink).
            self._publish_outbox_snapshot()
            return
        # The publication was there, so this pipeline had a slot: someone dropped it. The
        # new slot starts now; whatever was committed in between is lost to Kafka.
        self.slot_recreated += 1
        log.warning(
            "replication slot %s was gone and is recreated: changes since its last confirmed "
            "position were not published (recreated %d times)",
            self.slot,
            self.slot_recreated,
        )

    def _publish_outbox_snapshot(self) -> None:
        assert self.db is not None
        bound = last_event_id(self.db)
        while self.component.should_run():
            events = [e for e in pending_events(self.db, limit=self.batch_max) if e.event_id <= bound]
            if not events:
                return
            self._publish(Batch(events=events))

    def close(self) -> None:
        for conn in (self.repl, self.db):
            if conn is not None:
                with suppress(Exception):
                    conn.close()
        self.repl = self.cursor = self.db = None
        self.streaming = False

    def keepalive(self) -> None:
        """Answer the server without confirming anything new (psycopg2 sends the flush LSN
        it holds, which only moves when :meth:`confirm` moves it)."""
        if not self.streaming or time.monotonic() - self._last_feedback < KEEPALIVE_EVERY_S:
            return
        self.cursor.send_feedback(force=True)
        self._last_feedback = time.monotonic()

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        backoff = BACKOFF_INITIAL_S
        while self.component.should_run():
            try:
                if self.cursor is None:
                    self.connect()
                    backoff = BACKOFF_INITIAL_S
                self.step()
            except _Stopped:
                break
            except psycopg2.Error as exc:
                self.stats.last_error = f"source: {' '.join(str(exc).split())}"
                log.warning(
                    "source connection lost, reconnecting in %.1f s: %s", backoff, self.stats.last_error
                )
                self.close()
                self.reconnects += 1
                self.beat(force=True)
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        if self._producer is not None:
            self._producer.flush(5)
        self.close()

    def step(self) -> None:
        if self.unmarked_up_to is not None:
            self._mark(self.unmarked_up_to)
        if self.paths.relay_stall.exists():
            if not self.stalled:
                log.warning(
                    "stalled: not reading or confirming slot %s until %s goes",
                    self.slot,
                    self.paths.relay_stall,
                )
            self.stalled = True
            self.keepalive()
            self.beat()
            self._sleep(0.2)
            return
        if self.stalled:
            log.info("stall over: reading slot %s again", self.slot)
            self.stalled = False
        batch = self.read_batch()
        if batch.end_lsn is None:
            self.beat()
            return
        self._publish(batch)

    def read_batch(self) -> Batch:
        """Whole committed transactions, for as long as messages keep arriving (a short wait
        for more), the batch is under ``batch_max_records`` and younger than
        :data:`BATCH_MAX_WAIT_S`."""
        batch = Batch()
        opened: float | None = None
        while self.reader.in_transaction or (
            len(batch.events) < self.batch_max
            and (opened is None or time.monotonic() - opened < BATCH_MAX_WAIT_S)
        ):
            message = self.cursor.read_message()
            if message is not None:
                opened = time.monotonic() if opened is None else opened
                self.reader.feed(message.payload, batch)
                continue
            # Nothing buffered. Mid-transaction the rest is on its way (pgoutput sends a
            # transaction whole, at commit); otherwise end the batch unless more comes soon.
            wait = 1.0 if self.reader.in_transaction else (self.poll_s if batch.end_lsn is not None else 0.5)
            ready, _, _ = select.select([self.cursor], [], [], wait)
            if not ready and not self.reader.in_transaction:
                break
            if not self.component.should_run():
                break
        return batch

    def _publish(self, batch: Batch) -> None:
        """Publish, wait for Kafka, delete the published rows, confirm. Retries the same
        events until Kafka took them all (the slot cannot hand them out again without a
        reconnect)."""
        if batch.events:
            while True:
                choice = self.publisher.choose_writer()
                if choice is None:
                    self._idle(1.0)
                    continue
                delivery = self.publisher.publish(batch.events, choice)
                if not wait_acknowledged(self.producer, self.component, self._beat_and_keepalive):
                    raise _Stopped  # nothing confirmed: the restart republishes
                if not delivery.failed:
                    break
                self.stats.failed_batches += 1
                self.stats.last_error = delivery.describe()
                log.warning("batch not confirmed, republishing: %s", self.stats.last_error)
                self._idle(0.5)
            self.component.crash_point(CRASH_AFTER_PUBLISH)
            # Delete before confirming: a crash in between replays rows already deleted,
            # which is harmless (the WAL still has them; the sink drops the duplicates),
            # while the other order could leave published rows counted as unpublished.
            self._mark(max(e.event_id for e in batch.events))
            self.stats.marked += len(batch.events)
            self.stats.batches += 1
        if batch.end_lsn is not None and self.streaming:
            self.confirm(batch.end_lsn)
        self.beat()

    def confirm(self, end_lsn: int) -> None:
        # The Commit's end LSN, not its commit LSN: a restarted slot skips a transaction
        # only when its commit record starts before the confirmed position.
        self.cursor.send_feedback(flush_lsn=end_lsn, force=True)
        self._last_feedback = time.monotonic()
        self.confirmed_lsn = max(self.confirmed_lsn, end_lsn)

    def _mark(self, up_to_event_id: int) -> None:
        assert self.db is not None
        self.unmarked_up_to = up_to_event_id  # retried after a reconnect if this fails
        mark_published(self.db, up_to_event_id=up_to_event_id)
        self.unmarked_up_to = None

    def _beat_and_keepalive(self) -> None:
        self.beat()
        with suppress(psycopg2.Error):
            # A lost connection shows on the next read; Kafka's acknowledgements come first.
            self.keepalive()

    def _idle(self, seconds: float) -> None:
        self._beat_and_keepalive()
        self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.component.should_run() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))


def run(paths: StatePaths, *, bootstrap: str, source: str) -> int:
    """Relay until stopped; the exit code (:data:`EXIT_NO_LOGICAL_DECODING` when the server cannot)."""
    config = read_running_config(paths)
    try:
        CdcRelay(paths, bootstrap=bootstrap, source=source, config=config).run()
    except NoLogicalDecoding as exc:
        print(exc, file=sys.stderr)
        return EXIT_NO_LOGICAL_DECODING
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="datadrill-cdc-relay")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True, help="the source database's postgresql:// URI")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.exit(run(StatePaths(Path(args.state_dir)), bootstrap=args.bootstrap, source=args.source))


if __name__ == "__main__":
    main()
