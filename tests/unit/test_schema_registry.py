"""Contracts through a Schema Registry: the relay registers its writer schemas and frames
values in the Confluent wire format; the sink finds each writer by the id in the frame.

The registry is confluent-kafka's own in-memory registry client (``mock://``), one
instance shared by the "relay" and the "sink" side as one server would be; the real
registry runs in the compose end-to-end tests.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datadrill.backends.compose.readiness import schema_registry_readiness
from datadrill.platform.contracts import ContractViolation, drift_record, load_contract, load_drifted_writer
from datadrill.platform.registry import BuiltinIds, RegistryIds, registry_client, schema_ids
from datadrill.platform.sink import Batch, EventDecoder

RECORD = {
    "event_id": 7,
    "order_id": 42,
    "customer_id": 3,
    "amount_cents": 1999,
    "currency": "EUR",
    "status": "created",
    "created_at": 1_700_000_000_000_000,
    "is_canary": False,
}


def _registry() -> Any:
    return registry_client("mock://datadrill-tests")


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

    def topic(self) -> str:
        return "orders.v1"


@pytest.mark.parametrize("fmt", ["avro", "json"])
def test_values_are_framed_with_the_id_the_registry_handed_out(fmt: str) -> None:
    client = _registry()
    relay, sink = (
        RegistryIds("mock://r", "orders.v1", client=client),
        RegistryIds("mock://r", "orders.v1", client=client),
    )
    writer = relay.writer(load_contract("orders", 1, fmt))  # type: ignore[arg-type]
    assert writer.schema_id == client.get_latest_version("orders.v1-value").schema_id
    value = relay.frame(writer, writer.encode(RECORD))
    magic, schema_id = struct.unpack_from(">bI", value)
    assert (magic, schema_id) == (0, writer.schema_id)
    # The sink has never seen this id: it asks the registry and recognises the contract.
    contract, payload = sink.unframe(value, header_id=None)
    assert (contract.format, contract.writer, contract.schema_id) == (fmt, "v1", writer.schema_id)
    assert contract.decode(payload)["order_id"] == 42
    # Registering again is idempotent and cached.
    assert relay.writer(load_contract("orders", 1, fmt)).schema_id == writer.schema_id  # type: ignore[arg-type]


def test_a_drifted_writer_gets_a_subject_and_id_of_its_own_and_the_sink_reads_it_as_drift() -> None:
    client = _registry()
    relay, sink = (
        RegistryIds("mock://r", "orders.v1", client=client),
        RegistryIds("mock://r", "orders.v1", client=client),
    )
    v1 = relay.writer(load_contract("orders", 1, "avro"))
    drifted = relay.writer(load_drifted_writer("rename"))
    assert drifted.schema_id != v1.schema_id
    assert "orders.v1-value-drift-rename" in client.get_subjects()
    decoder = EventDecoder(sink)
    batch = Batch(started=0.0)
    good = relay.frame(v1, v1.encode(RECORD))
    renamed = drift_record({**RECORD, "event_id": 8, "order_id": 43}, "rename")
    bad = relay.frame(drifted, drifted.encode(renamed))
    assert decoder.add(batch, _Message(good, [], 0), {}, 0) == "row"  # type: ignore[arg-type]
    assert decoder.add(batch, _Message(bad, [], 1), {}, 0) == "row"  # type: ignore[arg-type]
    # Read the way a naive consumer reads drifted data: the renamed amount becomes null.
    assert batch.columns["amount_cents"] == [1999, None]
    assert batch.offsets == {0: 2}


def test_a_value_without_the_wire_format_is_rejected_not_misread() -> None:
    client = _registry()
    sink = RegistryIds("mock://r", "orders.v1", client=client)
    decoder = EventDecoder(sink)
    batch = Batch(started=0.0)
    unframed = load_contract("orders", 1, "avro").encode(RECORD)
    assert decoder.add(batch, _Message(unframed, [("datadrill.schema.id", b"1")], 5), {}, 0) == "rejected"  # type: ignore[arg-type]
    assert "wire format" in decoder.last_error
    with pytest.raises(ContractViolation, match="schema id 999 unknown"):
        sink.resolve(999)


def test_without_a_registry_ids_stay_in_the_headers() -> None:
    from datadrill.config import parse_config

    ids = schema_ids(parse_config({}, source="test"))
    assert isinstance(ids, BuiltinIds) and not ids.framed
    contract = load_contract("orders", 1, "avro")
    payload = contract.encode(RECORD)
    assert ids.frame(contract, payload) == payload
    found, same = ids.unframe(payload, header_id=str(contract.schema_id).encode())
    assert found == contract and same == payload


def test_the_compose_stack_points_the_platform_at_its_registry() -> None:
    from datadrill.backends.compose.settings import ComposeSettings
    from datadrill.config import parse_config

    settings = ComposeSettings()
    config = parse_config({"external": settings.external()}, source="compose")
    assert config.external is not None
    assert config.external.schema_registry_url == f"http://127.0.0.1:{settings.schema_registry_port}"


def test_registry_readiness() -> None:
    assert not schema_registry_readiness(None, None).ready
    assert "HTTP 503" in schema_registry_readiness(503, None).reason
    ready = schema_registry_readiness(200, ["orders.v1-value"])
    assert ready.ready and ready.reason == "1 subjects"


class _Framed(_Message):
    def __init__(self, value: bytes, partition: int, offset: int) -> None:
        super().__init__(value, [], offset)
        self._partition = partition

    def partition(self) -> int:
        return self._partition


@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=300), st.integers(min_value=0, max_value=2)),
        min_size=32,
        max_size=90,
    ),
    st.dictionaries(st.integers(min_value=0, max_value=2), st.integers(min_value=-1, max_value=300)),
    st.sampled_from(["none", "unframed", "garbage", "drifted", "unknown id"]),
)
@settings(max_examples=40, deadline=None)
def test_framed_messages_are_added_a_column_at_a_time_as_one_at_a_time(
    events: list[tuple[int, int]], high_ids: dict[int, int], odd: str
) -> None:
    """Values in the registry's wire format go the columnar way too: the same outcomes,
    rows, offsets and max ids as message by message. A value without the frame, a payload
    that does not read, a drifted writer's id or an id the registry does not know sends
    the whole call one message at a time (whose outcome for that message says why)."""
    client = _registry()
    relay = RegistryIds("mock://r", "orders.v1", client=client)
    v1 = relay.writer(load_contract("orders", 1, "avro"))
    offsets: dict[int, int] = {}
    msgs = []
    for event_id, partition in events:
        offset = offsets.get(partition, 10)
        offsets[partition] = offset + 1
        record = {**RECORD, "event_id": event_id, "order_id": event_id}
        msgs.append(_Framed(relay.frame(v1, v1.encode(record)), partition, offset))
    oddities = {
        "unframed": lambda: v1.encode(RECORD),
        "garbage": lambda: relay.frame(v1, b"\x00\x01"),
        "drifted": lambda: relay.frame(
            relay.writer(load_drifted_writer("rename")),
            load_drifted_writer("rename").encode(drift_record({**RECORD, "event_id": 999}, "rename")),
        ),
        "unknown id": lambda: struct.pack(">bI", 0, 4242) + v1.encode(RECORD),
    }
    if odd in oddities:
        msgs.insert(len(msgs) // 2, _Framed(oddities[odd](), 1, 5_000))
    columnar, single = Batch(), Batch()
    got = EventDecoder(RegistryIds("mock://r", "orders.v1", client=client)).add_many(
        columnar,
        msgs,
        dict(high_ids),
        1_700_000_000_000_000,  # type: ignore[arg-type]
    )
    reference = EventDecoder(RegistryIds("mock://r", "orders.v1", client=client))
    want = [reference.add(single, m, dict(high_ids), 1_700_000_000_000_000) for m in msgs]  # type: ignore[arg-type]
    assert got == want
    assert columnar.arrow().combine_chunks().equals(single.arrow().combine_chunks())
    assert (columnar.offsets, columnar.max_ids, columnar.rows) == (
        single.offsets,
        single.max_ids,
        single.rows,
    )
    # The clean calls took the columnar way (it appends Arrow chunks; one at a time does not).
    assert bool(columnar.chunks) == (odd == "none" and "row" in got)
