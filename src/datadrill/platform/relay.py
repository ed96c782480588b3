"""The outbox relay (the "CDC / connector" stage): outbox → Kafka ``orders.v1``.

Publish a batch, wait until Kafka acknowledged all of it, then mark (delete) it. A crash
between publishing and marking republishes the batch on restart: at-least-once, and the
sink drops the duplicates by event id. Messages are keyed by order id and carry their
data contract in headers.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from datadrill.config import read_running_config
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


class _Delivery:
    """Counts delivery failures of the batch in flight (one callback for all messages)."""

    def __init__(self) -> None:
        self.failed = 0
        self.last_error: KafkaError | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.last_error = err


def run(paths: StatePaths, *, bootstrap: str, source: str = "") -> None:
    config = read_running_config(paths)
    component = Component("relay", paths)
    ids = schema_ids(config)
    contract: Contract = ids.writer(load_contract("orders", 1, config.contract.format))
    db = connect(source or paths.source_db)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 2_000_000,
            "client.id": "datadrill-relay",
        }
    )
    topic = config.kafka.topic
    headers = contract.headers
    poll_s = config.relay.poll_interval_ms / 1000
    published = marked = rejected = failed_batches = batches = dead_lettered = 0
    last_error = ""
    while component.should_run():
        events = pending_events(db, limit=config.relay.batch_max_records)
        if not events:
            component.heartbeat(
                {
                    **_stats(published, marked, rejected, failed_batches, batches, last_error),
                    "dead_lettered": dead_lettered,
                }
            )
            time.sleep(poll_s)
            continue
        delivery = _Delivery()
        drift, enforce = writer_settings(paths)
        try:
            writer = contract if drift is None else ids.writer(load_drifted_writer(drift))
        except ContractViolation as exc:
            # The registry refused or is unreachable: nothing is published until it answers.
            last_error = str(exc)
            component.heartbeat(
                {
                    **_stats(published, marked, rejected, failed_batches, batches, last_error),
                    "dead_lettered": dead_lettered,
                }
            )
            time.sleep(1.0)
            continue
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
                value = ids.frame(used, used.encode(record, validate=check))
                target, message_headers = topic, (headers if enforce else writer.headers)
            except ContractViolation as exc:
                rejected += 1
                dead_lettered += 1
                last_error = str(exc)
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
            _produce(producer, target, value, str(event.order_id).encode(), message_headers, delivery)
            published += 1
        # Wait for every acknowledgement; during a broker outage this is where we queue.
        while producer.flush(0.5) > 0:
            component.heartbeat(
                {
                    **_stats(published, marked, rejected, failed_batches, batches, last_error),
                    "dead_lettered": dead_lettered,
                }
            )
            if not component.should_run():
                return
        if delivery.failed:
            failed_batches += 1
            last_error = f"{delivery.failed} deliveries failed: {delivery.last_error}"
            log.warning("batch not marked, will republish: %s", last_error)
            time.sleep(0.5)
            continue
        component.crash_point(CRASH_AFTER_PUBLISH)
        mark_published(db, up_to_event_id=events[-1].event_id)
        marked += len(events)
        batches += 1
        component.heartbeat(
            {
                **_stats(published, marked, rejected, failed_batches, batches, last_error),
                "dead_lettered": dead_lettered,
            }
        )
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


def _stats(
    published: int, marked: int, rejected: int, failed: int, batches: int, error: str
) -> dict[str, Any]:
    return {
        "published": published,
        "marked": marked,
        "rejected": rejected,
        "failed_batches": failed,
        "batches": batches,
        "last_error": error,
    }


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
