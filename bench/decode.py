"""Decoding consumed messages into the sink's batch, in one process: the ids of the writer
schema in message headers (the embedded stack) and in the Schema Registry's wire format
(the compose and external stacks; confluent-kafka's in-memory registry here, so no server
is timed). The sink and ``ReplayKafka`` both add messages this way (``EventDecoder``);
both ways should read a column at a time.

    python bench/decode.py [--messages 100000] [--poll 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from datadrill.platform.contracts import HEADER_SCHEMA_ID, Contract, load_contract
from datadrill.platform.registry import BuiltinIds, RegistryIds, SchemaIds, registry_client
from datadrill.platform.sink import Batch, EventDecoder

RECORD = {
    "order_id": 1,
    "customer_id": 3,
    "amount_cents": 1999,
    "currency": "EUR",
    "status": "created",
    "created_at": 1_700_000_000_000_000,
    "is_canary": False,
}


class _Message:
    """What the decoder reads of a consumed message."""

    def __init__(self, value: bytes, headers: list[tuple[str, bytes]], offset: int) -> None:
        self._value, self._headers, self._offset = value, headers, offset

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def _messages(ids: SchemaIds, writer: Contract, count: int) -> list[_Message]:
    headers = [] if ids.framed else [(HEADER_SCHEMA_ID, str(writer.schema_id).encode())]
    return [
        _Message(ids.frame(writer, writer.encode({**RECORD, "event_id": i})), headers, i)
        for i in range(1, count + 1)
    ]


def _rate(ids: SchemaIds, msgs: list[Any], poll: int) -> float:
    """Messages per second over the best of three passes, a poll's worth per call."""
    best = float("inf")
    for _ in range(3):
        decoder, batch = EventDecoder(ids), Batch()
        started = time.perf_counter()
        for start in range(0, len(msgs), poll):
            decoder.add_many(batch, msgs[start : start + poll], {}, 0)
        best = min(best, time.perf_counter() - started)
        if batch.rows != len(msgs):
            raise SystemExit(f"decoded {batch.rows} rows of {len(msgs)} messages")
    return len(msgs) / best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--poll", type=int, default=10_000, help="messages per add_many call (a poll)")
    args = parser.parse_args()
    contract = load_contract("orders", 1, "avro")
    builtin = BuiltinIds()
    registry = RegistryIds("mock://bench", "orders.v1", client=registry_client("mock://bench"))
    rows = []
    for name, ids in (("schema id in headers", builtin), ("Schema Registry wire format", registry)):
        writer = ids.writer(contract)
        rows.append((name, _rate(ids, _messages(ids, writer, args.messages), args.poll)))
    print(f"{args.messages:,} orders.v1 messages, {args.poll:,} per call")
    for name, rate in rows:
        print(f"  {name:<28} {rate:>10,.0f} messages/s decoded into the batch")
    print("command: python bench/decode.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
