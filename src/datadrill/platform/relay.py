"""The outbox relay (the "CDC / connector" stage): outbox → Kafka ``orders.v1``.

Publish a batch, wait until Kafka acknowledged all of it, then mark (delete) it. A crash
between publishing and marking republishes the batch on restart: at-least-once, and the
sink drops the duplicates by event id. Messages are keyed by order id and carry their
data contract in headers.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from datadrill.config import read_running_config
from datadrill.paths import StatePaths
from datadrill.platform.component import Component
from datadrill.platform.contracts import Contract, ContractViolation, load_contract
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


def run(paths: StatePaths, *, bootstrap: str) -> None:
    config = read_running_config(paths)
    component = Component("relay", paths)
    contract: Contract = load_contract("orders", 1, config.contract.format)
    db = connect(paths.source_db)
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
    published = marked = rejected = failed_batches = batches = 0
    last_error = ""
    while component.should_run():
        events = pending_events(db, limit=config.relay.batch_max_records)
        if not events:
            component.heartbeat(_stats(published, marked, rejected, failed_batches, batches, last_error))
            time.sleep(poll_s)
            continue
        delivery = _Delivery()
        for event in events:
            try:
                value = contract.encode(event_record(event))
            except ContractViolation as exc:
                # Enforcement at the relay: a record that breaks its contract never ships.
                rejected += 1
                last_error = str(exc)
                continue
            while True:
                try:
                    producer.produce(
                        topic,
                        value=value,
                        key=str(event.order_id).encode(),
                        headers=headers,
                        on_delivery=delivery,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            published += 1
        # Wait for every acknowledgement; during a broker outage this is where we queue.
        while producer.flush(0.5) > 0:
            component.heartbeat(_stats(published, marked, rejected, failed_batches, batches, last_error))
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
        component.heartbeat(_stats(published, marked, rejected, failed_batches, batches, last_error))
    producer.flush(5)
    db.close()


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(StatePaths(Path(args.state_dir)), bootstrap=args.bootstrap)


if __name__ == "__main__":
    main()
