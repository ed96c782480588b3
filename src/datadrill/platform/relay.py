"""The outbox relay (the "CDC / connector" stage): outbox → Kafka ``orders.v1``.

Publish a batch, wait until Kafka acknowledged all of it, then mark (delete) it. A crash
between publishing and marking republishes the batch on restart: at-least-once, and the
sink drops the duplicates by event id. Messages are keyed by order id and carry their
data contract in headers.

This module polls the outbox table (``[relay] mode = "poll"``). The CDC relay
(:mod:`.cdc_relay`, ``mode = "cdc"``) reads the same events from a logical replication
slot and publishes them through the same pieces: :class:`Publisher` (contract, drift and
enforcement, dead letters, delivery counting), :func:`wait_acknowledged` and
:class:`RelayStats` (the heartbeat counters ``stack status`` and the error-rate SLI read).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from datadrill.config import StackConfig, read_running_config
from datadrill.paths import StatePaths
from datadrill.platform.component import Component
from datadrill.platform.contracts import (
    Contract,
    ContractViolation,
    drift_record,
    load_contract,
    load_drifted_writer,
)
from datadrill.platform.registry import schema_ids
from datadrill.platform.source_db import OutboxEvent, connect, mark_published, pending_events

log = logging.getLogger("datadrill.relay")

CRASH_AFTER_PUBLISH = "after-publish-before-mark"


def event_record(event: OutboxEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "order_id": event.order_id,
        "customer_id": event.customer_id,
        "amount_cents": event.amount_cents,
        "currency": event.currency,
        "status": event.status,
        "created_at": event.created_at_us,
        "is_canary": bool(event.is_canary),
    }


# The contract's fields and the outbox event's attribute each is read from (event_record).
_EVENT_FIELDS = {
    "event_id": "event_id",
    "order_id": "order_id",
    "customer_id": "customer_id",
    "amount_cents": "amount_cents",
    "currency": "currency",
    "status": "status",
    "created_at": "created_at_us",
    "is_canary": "is_canary",
}
# Below this many events a batch is encoded one record at a time: the columnar encode's
# fixed cost (numpy and Arrow set-up) is worth it from a few dozen records on.
_COLUMNAR_MIN = 32


class _Delivery:
    """Counts delivery failures of the batch in flight (one callback for all messages)."""

    def __init__(self) -> None:
        self.failed = 0
        self.last_error: KafkaError | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.last_error = err

    def describe(self) -> str:
        return f"{self.failed} deliveries failed: {self.last_error}"


@dataclass
class RelayStats:
    """A relay's heartbeat counters (``rejected`` and ``failed_batches`` are its errors)."""

    published: int = 0
    marked: int = 0
    rejected: int = 0
    failed_batches: int = 0
    batches: int = 0
    dead_lettered: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "marked": self.marked,
            "rejected": self.rejected,
            "failed_batches": self.failed_batches,
            "batches": self.batches,
            "last_error": self.last_error,
            "dead_lettered": self.dead_lettered,
        }


@dataclass(frozen=True)
class WriterChoice:
    """How one batch is written: a schema-drift fault's writer or the contract's, enforced
    or not (see :func:`writer_settings`)."""

    drift: str | None
    enforce: bool
    writer: Contract


def make_producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 2_000_000,
            # A batch counts only failed deliveries (_Delivery): no Python callback for
            # each acknowledged message.
            "delivery.report.only.error": True,
            "client.id": "datadrill-relay",
        }
    )


class Publisher:
    """Encodes outbox events with the ``orders`` data contract and produces them, keyed by
    order id; a record that breaks an enforced contract goes to the dead-letter topic."""

    def __init__(self, config: StackConfig, paths: StatePaths, producer: Producer, stats: RelayStats) -> None:
        self.paths = paths
        self.producer = producer
        self.stats = stats
        self.ids = schema_ids(config)
        self.contract: Contract = self.ids.writer(load_contract("orders", 1, config.contract.format))
        self.topic = config.kafka.topic

    def choose_writer(self) -> WriterChoice | None:
        """The writer for the next batch, or None (``stats.last_error`` says why) when the
        registry refused or is unreachable: nothing is published until it answers."""
        drift, enforce = writer_settings(self.paths)
        try:
            writer = self.contract if drift is None else self.ids.writer(load_drifted_writer(drift))
        except ContractViolation as exc:
            self.stats.last_error = str(exc)
            return None
        return WriterChoice(drift, enforce, writer)

    def _encode_columns(self, events: Sequence[OutboxEvent]) -> list[bytes] | None:
        """The events encoded a column at a time (``avro_columns.encode_columns``: the bytes
        fastavro writes, a fifth of its time), or ``None`` when the batch is small, the
        contract is not a flat Avro record of the event's fields, or a value is not exactly
        what its field takes: then :meth:`publish` encodes one record at a time, which
        checks each and dead-letters what breaks the contract."""
        fields = self.contract.flat_fields
        if len(events) < _COLUMNAR_MIN or fields is None or {name for name, _ in fields} != set(_EVENT_FIELDS):
            return None
        from datadrill.platform.avro_columns import encode_columns

        by_attribute = dict(zip(OutboxEvent._fields, zip(*events, strict=True), strict=True))
        columns = {name: list(by_attribute[attribute]) for name, attribute in _EVENT_FIELDS.items()}
        columns["is_canary"] = [bool(v) for v in columns["is_canary"]]
        return encode_columns(fields, columns)

    def publish(self, events: Sequence[OutboxEvent], choice: WriterChoice) -> _Delivery:
        """Produce every event (not waiting for acknowledgements: see :func:`wait_acknowledged`);
        the returned counter holds the deliveries that failed."""
        delivery = _Delivery()
        drift, enforce, writer = choice.drift, choice.enforce, choice.writer
        contract, topic, headers = self.contract, self.topic, self.contract.headers
        payloads = self._encode_columns(events) if drift is None else None
        if payloads is not None:
            frame, producer = self.ids.frame, self.producer
            for event, payload in zip(events, payloads, strict=True):
                _produce(producer, topic, frame(contract, payload), str(event.order_id).encode(), headers, delivery)
            self.stats.published += len(events)
            return delivery
        for index, event in enumerate(events):
            record = event_record(event)
            if drift is not None:
                record = drift_record(record, drift)
            try:
                # Enforcement checks every record against the registered contract; without
                # it a drifted producer ships whatever its own writer schema says.
                # Every record of a batch has the same shape (one writer, typed outbox columns):
                # the full contract check runs on the first; fastavro type-checks the rest.
                check = index == 0
                used = contract if enforce else writer
                value = self.ids.frame(used, used.encode(record, validate=check))
                target, message_headers = topic, (headers if enforce else writer.headers)
            except ContractViolation as exc:
                self.stats.rejected += 1
                self.stats.dead_lettered += 1
                self.stats.last_error = str(exc)
                target = dead_letter_topic(topic)
                value = json.dumps(
                    {
                        "order_id": event.order_id,
                        "event_id": event.event_id,
                        "writer": drift or "v1",
                        "error": str(exc),
                        "record": record,
                    }
                ).encode()
                message_headers = [("datadrill.dead_letter.reason", str(exc).encode())]
            _produce(self.producer, target, value, str(event.order_id).encode(), message_headers, delivery)
            self.stats.published += 1
        return delivery


def wait_acknowledged(producer: Producer, component: Component, beat: Callable[[], None]) -> bool:
    """Wait for every acknowledgement (during a broker outage this is where we queue),
    beating the heart meanwhile; False if asked to stop before they all came."""
    while producer.flush(0.5) > 0:
        beat()
        if not component.should_run():
            return False
    return True


def run(paths: StatePaths, *, bootstrap: str, source: str = "") -> None:
    config = read_running_config(paths)
    component = Component("relay", paths)
    db = connect(source or paths.source_db)
    producer = make_producer(bootstrap)
    stats = RelayStats()
    publisher = Publisher(config, paths, producer, stats)
    poll_s = config.relay.poll_interval_ms / 1000

    def beat() -> None:
        component.heartbeat(stats.as_dict())

    while component.should_run():
        events = pending_events(db, limit=config.relay.batch_max_records)
        if not events:
            beat()
            time.sleep(poll_s)
            continue
        choice = publisher.choose_writer()
        if choice is None:
            beat()
            time.sleep(1.0)
            continue
        delivery = publisher.publish(events, choice)
        if not wait_acknowledged(producer, component, beat):
            return
        if delivery.failed:
            stats.failed_batches += 1
            stats.last_error = delivery.describe()
            log.warning("batch not marked, will republish: %s", stats.last_error)
            time.sleep(0.5)
            continue
        component.crash_point(CRASH_AFTER_PUBLISH)
        mark_published(db, up_to_event_id=events[-1].event_id)
        stats.marked += len(events)
        stats.batches += 1
        beat()
    producer.flush(5)
    db.close()


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def writer_settings(paths: StatePaths) -> tuple[str | None, bool]:
    """(drift, enforcement) as a schema-drift fault set them (see ``StatePaths.relay_writer``
    and ``StatePaths.relay_enforce``)."""
    try:
        drift: str | None = paths.relay_writer.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        drift = None
    try:
        enforce = paths.relay_enforce.read_text(encoding="utf-8").strip() != "off"
    except FileNotFoundError:
        enforce = True
    return drift, enforce


def _produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes,
    headers: list[tuple[str, str | bytes | None]],
    delivery: _Delivery,
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivery)
            return
        except BufferError:
            producer.poll(0.05)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="datadrill-relay")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", default="", help="the source database (default: source.db in the state dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(StatePaths(Path(args.state_dir)), bootstrap=args.bootstrap, source=args.source)


if __name__ == "__main__":
    main()
