"""A team's own pipeline stage, the kind datadrill drills: it knows nothing of datadrill.

The enricher consumes ``orders.v1`` (JSON values) as the consumer group ``enricher``, adds
the amount in euro cents and a size class, and appends each batch to its own Iceberg table
``dwh.orders_enriched``. It commits its Kafka offsets only after the append committed: at
least once from Kafka. Exactly once in the table comes from the orders' keys: within a
partition order ids only grow, and each append records in its snapshot the highest order id
written per partition, so a re-read message (after a crash, or a reprocessing that
``ResetOffsets`` started) at or below that mark is skipped. That is what makes
reprocessing safe, and what the drill's integrity checks prove.

Everything it needs comes from its environment, which datadrill fills in from the stack's
endpoints (see ``datadrill.toml``): BOOTSTRAP, CATALOG_URI, CATALOG_NAME, WAREHOUSE.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from sqlalchemy.exc import OperationalError

TABLE = "dwh.orders_enriched"
# Fixed rates: the point is a transformation the drill can check, not finance.
EUR_PER_UNIT = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "JPY": 0.0061, "CHF": 1.04}
SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.int64(), nullable=False),
        ("customer_id", pa.int64()),
        ("amount_cents", pa.int64()),
        ("currency", pa.string()),
        ("amount_eur_cents", pa.int64()),
        ("size", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
BATCH = 5_000
HIGH_WATER = "enricher.high-water"  # snapshot property: {partition: highest order id written}
stopping = False


def _stop(signum: int, frame: object) -> None:
    global stopping
    stopping = True


def enrich(order: dict[str, object]) -> dict[str, object]:
    cents = int(order["amount_cents"])  # type: ignore[call-overload]
    eur = round(cents * EUR_PER_UNIT.get(str(order["currency"]), 1.0))
    return {
        "order_id": order["order_id"],
        "customer_id": order["customer_id"],
        "amount_cents": cents,
        "currency": order["currency"],
        "amount_eur_cents": eur,
        "size": "large" if eur >= 10_000 else "small",
        "created_at": order["created_at"],  # microseconds since the epoch, UTC
    }


def high_water(table: Table) -> dict[str, int]:
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return {}
    marks: dict[str, int] = json.loads(snapshot.summary.additional_properties.get(HIGH_WATER, "{}"))
    return marks


def append_new(table: Table, orders: list[tuple[int, dict[str, object]]]) -> int:
    """Append the orders above each partition's high-water mark; returns how many."""
    while True:
        table.refresh()
        marks = high_water(table)
        rows = []
        for partition, order in orders:
            if int(order["order_id"]) > marks.get(str(partition), -1):  # type: ignore[call-overload]
                rows.append(enrich(order))
                marks[str(partition)] = int(order["order_id"])  # type: ignore[call-overload]
        if not rows:
            return 0
        try:
            batch = pa.Table.from_pylist(rows, schema=SCHEMA)
            table.append(batch, snapshot_properties={HIGH_WATER: json.dumps(marks)})
            return len(rows)
        except CommitFailedException:  # someone else committed in between: retry on top
            continue
        except OperationalError:  # a SQLite catalog is busy with another writer's commit
            time.sleep(0.05)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    catalog = SqlCatalog(
        os.environ.get("CATALOG_NAME", "default"),
        uri=os.environ["CATALOG_URI"],
        warehouse=os.environ["WAREHOUSE"],
    )
    catalog.create_namespace_if_not_exists("dwh")
    table = catalog.create_table_if_not_exists(TABLE, schema=SCHEMA)
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["BOOTSTRAP"],
            "group.id": os.environ.get("GROUP", "enricher"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # How long the group waits for a member that vanished (a crash, SIGKILL) before
            # it hands its partitions to the others: librdkafka's default is 45 s.
            "session.timeout.ms": int(os.environ.get("SESSION_TIMEOUT_MS", "45000")),
        }
    )
    consumer.subscribe([os.environ.get("TOPIC", "orders.v1")])
    print("enricher ready", flush=True)
    total, last_report = 0, time.monotonic()
    while not stopping:
        messages = consumer.consume(BATCH, timeout=1.0)
        orders: list[tuple[int, dict[str, object]]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    print(f"consume error: {error}", flush=True)
                continue
            orders.append((message.partition() or 0, json.loads(message.value() or b"{}")))
        if not orders:
            continue
        written = append_new(table, orders)
        consumer.commit(asynchronous=False)  # only now: a crash before this re-reads the batch
        total += written
        if time.monotonic() - last_report >= 5:
            print(f"{total} rows appended to {TABLE}", flush=True)
            last_report = time.monotonic()
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
