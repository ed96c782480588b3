"""Unit tests for the orders data contracts (Avro and JSON Schema)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datadrill.errors import DrillError
from datadrill.platform.contracts import (
    HEADER_CONTRACT,
    HEADER_FORMAT,
    HEADER_SCHEMA_ID,
    HEADER_VERSION,
    Contract,
    ContractViolation,
    contract_for_headers,
    load_contract,
)

FORMATS = ["avro", "json"]

EVENT: dict[str, Any] = {
    "event_id": 1,
    "order_id": 2,
    "customer_id": 3,
    "amount_cents": 100,
    "currency": "EUR",
    "status": "created",
    "created_at": 1700000000000000,
    "is_canary": False,
}


@pytest.fixture(params=FORMATS)
def contract(request: pytest.FixtureRequest) -> Contract:
    return load_contract("orders", 1, request.param)


def test_round_trip(contract: Contract) -> None:
    payload = contract.encode(dict(EVENT))
    assert isinstance(payload, bytes)
    assert contract.decode(payload) == EVENT


def test_round_trip_of_a_canary(contract: Contract) -> None:
    event = {**EVENT, "is_canary": True, "status": "paid", "amount_cents": -5}
    assert contract.decode(contract.encode(event)) == event


def test_decode_gives_created_at_as_int_micros(contract: Contract) -> None:
    decoded = contract.decode(contract.encode(dict(EVENT)))
    assert type(decoded["created_at"]) is int
    assert decoded["created_at"] == 1_700_000_000_000_000
    assert type(decoded["is_canary"]) is bool


def test_avro_payload_is_binary_and_json_payload_is_json() -> None:
    avro = load_contract("orders", 1, "avro").encode(dict(EVENT))
    js = load_contract("orders", 1, "json").encode(dict(EVENT))
    assert json.loads(js) == EVENT
    assert avro != js
    assert len(avro) < len(js)
    assert not avro.startswith(b"{")
    # Avro binary: zig-zag varint event_id 1 -> 0x02, order_id 2 -> 0x04, customer_id 3 -> 0x06.
    assert avro.startswith(b"\x02\x04\x06")


def test_contract_identity(contract: Contract) -> None:
    assert (contract.name, contract.version) == ("orders", 1)
    assert contract.schema_id == {"avro": 1, "json": 2}[contract.format]
    assert load_contract("orders", 1, contract.format) is contract  # cached


def test_headers_name_the_contract(contract: Contract) -> None:
    headers = dict(contract.headers)
    assert headers[HEADER_SCHEMA_ID] == str(contract.schema_id).encode()
    assert headers[HEADER_CONTRACT] == b"orders"
    assert headers[HEADER_VERSION] == b"1"
    assert headers[HEADER_FORMAT] == contract.format.encode()


def test_contract_for_headers_returns_the_same_contract(contract: Contract) -> None:
    found = contract_for_headers(contract.headers)  # type: ignore[arg-type]
    assert found == contract
    assert found.format == contract.format
    assert found.schema_id == contract.schema_id


def test_contract_for_headers_only_needs_the_schema_id() -> None:
    assert contract_for_headers([(HEADER_SCHEMA_ID, b"2")]).format == "json"
    assert contract_for_headers([("other", b"x"), (HEADER_SCHEMA_ID, b"1")]).format == "avro"


# --- encode failures ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "order_id", "currency", "created_at"])
def test_encode_missing_field_is_a_violation(contract: Contract, field: str) -> None:
    record = {k: v for k, v in EVENT.items() if k != field}
    with pytest.raises(ContractViolation, match=field):
        contract.encode(record)


@pytest.mark.parametrize(
    ("field", "value"),
    [("order_id", "two"), ("created_at", "2024-01-01"), ("currency", 978), ("status", None)],
)
def test_encode_wrong_type_is_a_violation(contract: Contract, field: str, value: object) -> None:
    with pytest.raises(ContractViolation, match=field):
        contract.encode({**EVENT, field: value})


def test_contract_violation_is_a_drill_error() -> None:
    assert issubclass(ContractViolation, DrillError)


def test_json_encode_rejects_extra_fields() -> None:
    with pytest.raises(ContractViolation, match="extra"):
        load_contract("orders", 1, "json").encode({**EVENT, "extra": 1})


def test_json_encode_checks_currency_length() -> None:
    with pytest.raises(ContractViolation, match="currency"):
        load_contract("orders", 1, "json").encode({**EVENT, "currency": "EURO"})


def test_avro_encode_out_of_range_long_is_a_violation() -> None:
    with pytest.raises(ContractViolation):
        load_contract("orders", 1, "avro").encode({**EVENT, "order_id": 2**70})


def test_avro_encode_rejects_a_float_for_a_long_field() -> None:
    with pytest.raises(ContractViolation):
        load_contract("orders", 1, "avro").encode({**EVENT, "amount_cents": 1.5})


# --- decode failures ----------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\xff\xfe\x00garbage", b"\x80" * 12, b"not json"])
def test_decode_garbage_is_a_violation(contract: Contract, payload: bytes) -> None:
    with pytest.raises(ContractViolation):
        contract.decode(payload)


def test_avro_decode_truncated_payload_is_a_violation() -> None:
    contract = load_contract("orders", 1, "avro")
    payload = contract.encode(dict(EVENT))
    with pytest.raises(ContractViolation, match="not valid Avro"):
        contract.decode(payload[: len(payload) // 2])


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b'"x"', json.dumps({**EVENT, "order_id": "x"}).encode(), json.dumps({"a": 1}).encode()],
)
def test_json_decode_of_valid_json_that_breaks_the_contract(payload: bytes) -> None:
    with pytest.raises(ContractViolation, match="JSON contract violated"):
        load_contract("orders", 1, "json").decode(payload)


# --- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("schema_id", [b"0", b"3", b"99", b"-1"])
def test_unknown_schema_id_is_a_violation(schema_id: bytes) -> None:
    with pytest.raises(ContractViolation, match="unknown schema id"):
        contract_for_headers([(HEADER_SCHEMA_ID, schema_id)])


@pytest.mark.parametrize(
    "headers",
    [None, [], [(HEADER_CONTRACT, b"orders"), (HEADER_VERSION, b"1")], [(HEADER_SCHEMA_ID, b"abc")]],
)
def test_missing_or_unusable_schema_id_header_is_a_violation(headers: list[tuple[str, bytes]] | None) -> None:
    with pytest.raises(ContractViolation, match=HEADER_SCHEMA_ID):
        contract_for_headers(headers)


def test_schema_id_header_with_none_value_is_a_violation() -> None:
    with pytest.raises(ContractViolation):
        contract_for_headers([(HEADER_SCHEMA_ID, None)])  # type: ignore[list-item]


# --- load_contract ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "fmt"), [("orders", 2, "avro"), ("payments", 1, "json"), ("orders", 1, "xml")]
)
def test_unknown_contract_lists_the_known_ones(name: str, version: int, fmt: str) -> None:
    with pytest.raises(ContractViolation) as info:
        load_contract(name, version, fmt)  # type: ignore[arg-type]
    message = str(info.value)
    assert f"no contract {name} v{version} ({fmt})" in message
    assert "orders v1 (avro)" in message
    assert "orders v1 (json)" in message


# --- decoding many payloads at once -------------------------------------------------------


def _outcome(contract: Contract, payload: bytes) -> object:
    try:
        return contract.decode(payload)
    except ContractViolation as exc:
        return ("violation", str(exc))


_payload_kinds = st.sampled_from(["valid", "truncated", "padded", "garbage", "empty"])


@settings(max_examples=150, deadline=None)
@given(
    fmt=st.sampled_from(FORMATS),
    kinds=st.lists(_payload_kinds, min_size=1, max_size=12),
    order_ids=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=12, max_size=12),
    garbage=st.binary(max_size=20),
)
def test_decode_many_gives_what_decode_gives_for_each_payload(
    fmt: str, kinds: list[str], order_ids: list[int], garbage: bytes
) -> None:
    # One buffer for all the payloads: a payload that ends early or late must not shift the
    # records after it, and each outcome (record or violation) must be decode()'s own.
    contract = load_contract("orders", 1, fmt)  # type: ignore[arg-type]
    payloads = []
    for kind, order_id in zip(kinds, order_ids, strict=False):
        valid = contract.encode({**EVENT, "order_id": order_id, "status": "ü" * (order_id % 7)})
        payloads.append(
            {
                "valid": valid,
                "truncated": valid[: len(valid) // 2],
                "padded": valid + b"\x02\x04",
                "garbage": garbage,
                "empty": b"",
            }[kind]
        )
    many = contract.decode_many(payloads)
    assert len(many) == len(payloads)
    for payload, got in zip(payloads, many, strict=True):
        expected = _outcome(contract, payload)
        if isinstance(got, ContractViolation):
            assert expected == ("violation", str(got))
        else:
            assert got == expected
    valid_count = sum(kind == "valid" for kind in kinds)
    assert sum(isinstance(got, dict) for got in many) >= valid_count
