"""The columnar Avro decode (platform/avro_columns.py) against fastavro, and the decoder's
columnar path against its one-message-at-a-time path: the same rows, offsets, event ids
and outcomes, whatever the messages hold."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from datadrill.platform.avro_columns import decode_columns, encode_columns, flat_fields
from datadrill.platform.contracts import (
    HEADER_SCHEMA_ID,
    Contract,
    ContractViolation,
    drift_record,
    load_contract,
    load_drifted_writer,
)
from datadrill.platform.registry import BuiltinIds
from datadrill.platform.sink import Batch, EventDecoder

V1 = load_contract("orders", 1, "avro")
FIELDS = V1.flat_fields
assert FIELDS is not None
LONGS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
RECORDS = st.fixed_dictionaries(
    {
        "event_id": LONGS,
        "order_id": LONGS,
        "customer_id": LONGS,
        "amount_cents": LONGS,
        "currency": st.text(max_size=6),
        "status": st.text(max_size=12),
        "created_at": st.integers(min_value=-(2**62), max_value=2**62),
        "is_canary": st.booleans(),
    }
)


class _Message:
    """What the decoder reads of a consumed message."""

    def __init__(self, value: bytes, partition: int, offset: int, contract: Contract = V1) -> None:
        self._value, self._partition, self._offset = value, partition, offset
        self._headers = [(HEADER_SCHEMA_ID, str(contract.schema_id).encode())]

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def topic(self) -> str:
        return "orders.v1"


def _fastavro(payload: bytes) -> dict[str, Any] | None:
    try:
        return V1.decode(payload)
    except ContractViolation:
        return None


def test_flat_fields_takes_only_flat_records_of_primitive_types() -> None:
    assert FIELDS == (
        ("event_id", "long"),
        ("order_id", "long"),
        ("customer_id", "long"),
        ("amount_cents", "long"),
        ("currency", "string"),
        ("status", "string"),
        ("created_at", "long"),
        ("is_canary", "boolean"),
    )
    assert flat_fields({"type": "record", "name": "r", "fields": [{"name": "x", "type": ["null", "long"]}]}) is None
    assert flat_fields({"type": "record", "name": "r", "fields": [{"name": "x", "type": "double"}]}) is None
    assert flat_fields({"type": "array", "items": "long"}) is None
    assert load_contract("orders", 1, "json").flat_fields is None


@given(st.lists(RECORDS, min_size=1, max_size=40))
@settings(max_examples=150, deadline=None)
def test_well_formed_payloads_decode_as_fastavro_decodes_them(records: list[dict[str, Any]]) -> None:
    payloads = [V1.encode(r) for r in records]
    assert FIELDS is not None
    table, ok = decode_columns(FIELDS, payloads)
    assert ok.all()
    assert table.to_pylist() == [V1.decode(p) for p in payloads] == records


@given(st.lists(st.binary(max_size=60), min_size=1, max_size=20), st.lists(RECORDS, min_size=1, max_size=5))
@settings(max_examples=300, deadline=None)
@example([b"\x02" * 7 + b"\x00" + b"\x02"], [])  # a boolean byte of 2: fastavro reads True
@example([b"\x80" * 11], [])  # a varint longer than ten bytes
@example([b"\x02\x02\x02\x02\x02\xed\xa0\x80\x00\x02\x00"], [])  # a surrogate is not UTF-8
def test_any_bytes_either_decode_as_fastavro_does_or_are_left_to_it(
    garbage: list[bytes], records: list[dict[str, Any]]
) -> None:
    """A lane marked ok holds exactly the record fastavro reads from that payload alone,
    and fastavro reads it to the payload's last byte; anything else is not ok."""
    payloads = [*garbage, *(V1.encode(r) for r in records)]
    # Damaged copies of good payloads: one byte short, one byte long.
    payloads += [p[:-1] for p in payloads[-len(records) :]] + [p + b"\x00" for p in payloads[-len(records) :]]
    assert FIELDS is not None
    table, ok = decode_columns(FIELDS, payloads)
    rows = table.to_pylist()
    for payload, good, row in zip(payloads, ok.tolist(), rows, strict=True):
        if good:
            assert _fastavro(payload) == row
            assert V1.encode(row) == payload or _reads_to_the_end(payload)
    # Every well-formed payload is read exactly.
    assert all(ok[len(garbage) : len(garbage) + len(records)])


def _reads_to_the_end(payload: bytes) -> bool:
    import io

    import fastavro

    from datadrill.platform.contracts import _codec

    stream = io.BytesIO(payload)
    fastavro.schemaless_reader(stream, _codec(V1)._parsed, None)  # type: ignore[attr-defined]
    return stream.tell() == len(payload)


def _messages(records: list[tuple[dict[str, Any], int]], poison: bool, drifted: bool) -> list[_Message]:
    messages = []
    offsets: dict[int, int] = {}
    for record, partition in records:
        offset = offsets.get(partition, 100)
        offsets[partition] = offset + 1
        messages.append(_Message(V1.encode(record), partition, offset))
    if poison:
        messages.insert(len(messages) // 2, _Message(b"\x00\x01", 1, 999))
    if drifted:
        writer = load_drifted_writer("rename")
        messages.append(_Message(writer.encode(drift_record(records[0][0], "rename")), 0, 5_000, writer))
    return messages


def _state(batch: Batch) -> tuple[pa.Table, dict[int, int], dict[int, int], int, int]:
    return batch.arrow().combine_chunks(), batch.offsets, batch.max_ids, batch.rows, batch.messages


@given(
    st.lists(
        st.tuples(RECORDS, st.integers(min_value=0, max_value=3)).map(
            lambda rp: ({**rp[0], "event_id": rp[0]["event_id"] % 500}, rp[1])
        ),
        min_size=32,
        max_size=120,
    ),
    st.dictionaries(st.integers(min_value=0, max_value=3), st.integers(min_value=-1, max_value=400)),
    st.booleans(),
    st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_the_columnar_path_adds_what_one_at_a_time_adds(
    records: list[tuple[dict[str, Any], int]], high_ids: dict[int, int], poison: bool, drifted: bool
) -> None:
    """Duplicates by event id per partition (against the table's high ids and within the
    call), rows in message order, offsets and max ids: identical. A poison message or a
    drifted writer in the call sends the whole call one message at a time."""
    msgs = _messages(records, poison, drifted)
    columnar, single = Batch(), Batch()
    decoder = EventDecoder(BuiltinIds())
    got = decoder.add_many(columnar, msgs, dict(high_ids), 1_700_000_000_000_000)  # type: ignore[arg-type]
    reference = EventDecoder(BuiltinIds())
    want = [reference.add(single, m, dict(high_ids), 1_700_000_000_000_000) for m in msgs]  # type: ignore[arg-type]
    assert got == want
    (table, *rest), (expected, *expected_rest) = _state(columnar), _state(single)
    assert table.equals(expected), (table.to_pydict(), expected.to_pydict())
    assert rest == expected_rest
    assert bool(columnar.chunks) == (not poison and not drifted and "row" in got)


def test_rows_added_both_ways_keep_their_order() -> None:
    records = [
        {"event_id": i, "order_id": i, "customer_id": 1, "amount_cents": 5, "currency": "EUR",
         "status": "created", "created_at": 0, "is_canary": False}
        for i in range(1, 101)
    ]
    decoder = EventDecoder(BuiltinIds())
    batch = Batch()
    msgs = [_Message(V1.encode(r), 0, i) for i, r in enumerate(records)]
    decoder.add(batch, msgs[0], {}, 0)  # type: ignore[arg-type]
    decoder.add_many(batch, msgs[1:60], {}, 0)  # type: ignore[arg-type]
    decoder.add(batch, msgs[60], {}, 0)  # type: ignore[arg-type]
    decoder.add_many(batch, msgs[61:], {}, 0)  # type: ignore[arg-type]
    table = batch.arrow()
    assert isinstance(table, pa.Table)
    assert table.column("event_id").to_pylist() == list(range(1, 101))
    assert len(batch.chunks) >= 3 and batch.rows == 100


# -- encoding (the relay) -------------------------------------------------------------------


@given(st.lists(RECORDS, min_size=1, max_size=40))
@settings(max_examples=150, deadline=None)
def test_columns_encode_to_the_bytes_fastavro_writes(records: list[dict[str, Any]]) -> None:
    assert FIELDS is not None
    columns = {name: [r[name] for r in records] for name, _ in FIELDS}
    payloads = encode_columns(FIELDS, columns)
    assert payloads == [V1.encode(r) for r in records]
    table, ok = decode_columns(FIELDS, payloads)
    assert ok.all() and table.to_pylist() == records


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", 2**63),  # beyond a long
        ("event_id", True),  # a bool is not a long here (fastavro's strict check says so too)
        ("amount_cents", 1.5),
        ("amount_cents", None),
        ("currency", b"EUR"),
        ("status", None),
        ("is_canary", 1),
    ],
)
def test_a_value_its_field_does_not_take_exactly_leaves_the_batch_to_fastavro(field: str, value: object) -> None:
    assert FIELDS is not None
    record = {"event_id": 1, "order_id": 2, "customer_id": 3, "amount_cents": 4, "currency": "EUR",
              "status": "created", "created_at": 5, "is_canary": False}
    columns = {name: [record[name]] * 3 for name, _ in FIELDS}
    columns[field] = [record[field], value, record[field]]
    assert encode_columns(FIELDS, columns) is None
    assert encode_columns(FIELDS, {name: [record[name]] for name, _ in FIELDS}) == [V1.encode(record)]
