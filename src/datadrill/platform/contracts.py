"""Versioned data contracts for ``orders.v1``: Avro (fastavro) or JSON Schema.

Every message carries its contract in headers, so a consumer can pick the right reader
and a schema-drift fault is visible per message:

    datadrill.contract          orders
    datadrill.contract.version  1
    datadrill.schema.id         1   (Avro v1) / 2 (JSON Schema v1)
    datadrill.contract.format   avro | json

Example::

    contract = load_contract("orders", 1, "avro")
    payload = contract.encode(event)          # bytes, validated against the contract
    contract.decode(payload)["order_id"]
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import fastavro
from fastavro.validation import ValidationError as AvroValidationError
from fastavro.validation import validate as _validate

from datadrill.errors import DrillError

if TYPE_CHECKING:
    # Imported where used: the relay and the workload encode only, and start faster without.
    import pyarrow as pa

    from datadrill.platform.avro_columns import Lanes

_T = TypeVar("_T")

Format = Literal["avro", "json"]

HEADER_CONTRACT = "datadrill.contract"
HEADER_VERSION = "datadrill.contract.version"
HEADER_SCHEMA_ID = "datadrill.schema.id"
HEADER_FORMAT = "datadrill.contract.format"
HEADER_WRITER = "datadrill.contract.writer"

# Writer schemas a schema-drift fault switches the producer to: the contract's own name
# and version, a different shape. Registered with their own ids, as a registry would.
DRIFTS: dict[str, tuple[str, int]] = {
    "rename": ("orders.v1-renamed.avsc", 11),
    "retype": ("orders.v1-retyped.avsc", 12),
    "drop": ("orders.v1-dropped.avsc", 13),
}

# Stable ids, as a schema registry would hand out; a message names its writer by id.
_SCHEMA_IDS: dict[tuple[str, int, Format], int] = {
    ("orders", 1, "avro"): 1,
    ("orders", 1, "json"): 2,
}
_FILES: dict[Format, str] = {"avro": "{name}.v{version}.avsc", "json": "{name}.v{version}.schema.json"}


class ContractViolation(DrillError):
    """A record or payload does not satisfy its data contract."""


@dataclass(frozen=True)
class Contract:
    name: str
    version: int
    format: Format
    schema_id: int
    schema: dict[str, Any] = field(repr=False, compare=False)
    writer: str = "v1"  # "v1", or the drift a schema-drift fault made the producer write

    @property
    def headers(self) -> list[tuple[str, str | bytes | None]]:
        return [
            (HEADER_CONTRACT, self.name.encode()),
            (HEADER_VERSION, str(self.version).encode()),
            (HEADER_SCHEMA_ID, str(self.schema_id).encode()),
            (HEADER_FORMAT, self.format.encode()),
            (HEADER_WRITER, self.writer.encode()),
        ]

    def encode(self, record: dict[str, Any], *, validate: bool = True) -> bytes:
        """Serialise ``record``. ``validate=False`` skips the full contract check (fastavro
        still type-checks every value it writes) for records shaped like one already checked."""
        return _codec(self).encode(record, validate=validate)

    def decode(self, payload: bytes) -> dict[str, Any]:
        return _codec(self).decode(payload)

    def decode_many(self, payloads: Sequence[bytes]) -> list[dict[str, Any] | ContractViolation]:
        """Each payload decoded as :meth:`decode` would, or the violation it would raise."""
        return _codec(self).decode_many(payloads)

    @property
    def flat_fields(self) -> tuple[tuple[str, str], ...] | None:
        """(name, Avro type) of each field when this is an Avro contract of a flat record
        that :meth:`decode_columns` can read; ``None`` otherwise."""
        codec = _codec(self)
        return codec.flat_fields if isinstance(codec, _AvroCodec) else None

    def decode_columns(self, payloads: Sequence[bytes]) -> tuple[pa.Table, Lanes]:
        """The payloads as one Arrow table and the mask of those read exactly (see
        :mod:`datadrill.platform.avro_columns`); only for a contract with :attr:`flat_fields`."""
        from datadrill.platform.avro_columns import decode_columns

        fields = self.flat_fields
        if fields is None:
            raise ValueError(f"{self.name} v{self.version} ({self.format}) is not a flat Avro record")
        return decode_columns(fields, payloads)


def _without_logical_types(schema: dict[str, Any]) -> dict[str, Any]:
    """The same binary layout with logical types dropped: timestamps stay int micros.

    Decoding ``timestamp-micros`` to ``datetime`` costs a third of fastavro's decode time
    and Arrow wants the integers back anyway; the bytes on the wire are identical.
    """
    fields = []
    for f in schema["fields"]:
        kind = f["type"]
        if isinstance(kind, dict) and "logicalType" in kind:
            kind = kind["type"]
        fields.append({**f, "type": kind})
    return {**schema, "fields": fields}


class _AvroCodec:
    def __init__(self, schema: dict[str, Any]) -> None:
        fastavro.parse_schema(schema)  # the contract as written must be valid Avro
        self._schema = _without_logical_types(schema)
        self._parsed = fastavro.parse_schema(self._schema)

    @cached_property
    def flat_fields(self) -> tuple[tuple[str, str], ...] | None:
        from datadrill.platform.avro_columns import flat_fields

        return flat_fields(self._schema)

    def encode(self, record: dict[str, Any], *, validate: bool = True) -> bytes:
        buf = io.BytesIO()
        try:
            # fastavro alone would truncate 1.5 to 1 for a long and drop unknown fields:
            # a contract that loses data silently is no contract.
            if validate:
                _validate(record, self._parsed, raise_errors=True, strict=True)
            fastavro.schemaless_writer(buf, self._parsed, record)
        except AvroValidationError:
            raise ContractViolation(
                f"record does not match the Avro contract: {self._explain(record)}"
            ) from None
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise ContractViolation(f"record does not match the Avro contract: {exc}") from exc
        return buf.getvalue()

    def _explain(self, record: dict[str, Any]) -> str:
        """Name the first offending field (fastavro's own message dumps the whole schema)."""
        if not isinstance(record, dict):
            return f"expected a record, got {type(record).__name__}"
        parsed = self._schema
        fields = {f["name"]: f["type"] for f in parsed["fields"]}
        for name, kind in fields.items():
            if name not in record:
                return f"missing field {name!r}"
            if not _validate(record[name], kind, raise_errors=False):
                return f"field {name!r} = {record[name]!r} is not a valid {kind}"
        unknown = sorted(set(record) - set(fields))
        if unknown:
            return f"unknown fields {unknown}; the contract has {sorted(fields)}"
        return "invalid record"

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            record = fastavro.schemaless_reader(io.BytesIO(payload), self._parsed, None)
        except _AVRO_READ_ERRORS as exc:
            raise ContractViolation(f"payload is not valid Avro for the contract: {exc}") from exc
        assert isinstance(record, dict)
        return record

    def decode_many(self, payloads: Sequence[bytes]) -> list[dict[str, Any] | ContractViolation]:
        """The payloads read one after another from one buffer: half the cost per record of a
        buffer each. A record must end exactly where its payload ends; one that does not (bad
        or trailing bytes) is decoded again on its own, so the outcome is :meth:`decode`'s."""
        stream = io.BytesIO(b"".join(payloads))
        out: list[dict[str, Any] | ContractViolation] = []
        end = 0
        for payload in payloads:
            end += len(payload)
            try:
                record = fastavro.schemaless_reader(stream, self._parsed, None)
            except _AVRO_READ_ERRORS:
                record = None
            if not isinstance(record, dict) or stream.tell() != end:
                stream.seek(end)
                try:
                    record = self.decode(payload)
                except ContractViolation as exc:
                    out.append(exc)
                    continue
            out.append(record)
        return out


class _JsonCodec:
    def __init__(self, schema: dict[str, Any]) -> None:
        # Imported by the one codec that needs it: ~80 ms of every platform process's start,
        # where the stack's contract is Avro.
        import jsonschema

        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
        self._validator = validator_cls(schema)
        self._best_match = jsonschema.exceptions.best_match

    def _check(self, record: Any) -> None:
        error = self._best_match(self._validator.iter_errors(record))
        if error is not None:
            path = "/".join(str(p) for p in error.absolute_path) or "(record)"
            raise ContractViolation(f"JSON contract violated at {path}: {error.message}")

    def encode(self, record: dict[str, Any], *, validate: bool = True) -> bytes:
        self._check(record)
        return json.dumps(record, separators=(",", ":")).encode()

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            record = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ContractViolation(f"payload is not JSON: {exc}") from exc
        self._check(record)
        assert isinstance(record, dict)
        return record

    def decode_many(self, payloads: Sequence[bytes]) -> list[dict[str, Any] | ContractViolation]:
        return decode_each(self.decode, payloads)


def decode_each(
    decode: Callable[[_T], dict[str, Any]], items: Sequence[_T]
) -> list[dict[str, Any] | ContractViolation]:
    """``decode`` of each item, or the :class:`ContractViolation` it raised."""
    out: list[dict[str, Any] | ContractViolation] = []
    for item in items:
        try:
            out.append(decode(item))
        except ContractViolation as exc:
            out.append(exc)
    return out


_AVRO_READ_ERRORS = (ValueError, EOFError, StopIteration, IndexError)


@cache
def _codec(contract: Contract) -> _AvroCodec | _JsonCodec:
    if contract.format == "avro":
        return _AvroCodec(contract.schema)
    elif contract.format == "json":
        return _JsonCodec(contract.schema)
    else:
        raise ContractViolation(f"unknown contract format {contract.format!r}")


@cache
def load_contract(name: str, version: int, format: Format) -> Contract:
    """Load a contract shipped with datadrill."""
    key = (name, version, format)
    if key not in _SCHEMA_IDS:
        known = ", ".join(f"{n} v{v} ({f})" for n, v, f in _SCHEMA_IDS)
        raise ContractViolation(f"no contract {name} v{version} ({format}); known: {known}")
    resource = files("datadrill.platform").joinpath(
        "contract_files", _FILES[format].format(name=name, version=version)
    )
    schema = json.loads(resource.read_text(encoding="utf-8"))
    return Contract(name, version, format, _SCHEMA_IDS[key], schema)


@cache
def load_drifted_writer(drift: str) -> Contract:
    """The drifted Avro writer schema a schema-drift fault makes the producer use."""
    if drift not in DRIFTS:
        raise ContractViolation(f"no drift {drift!r}; known: {', '.join(DRIFTS)}")
    filename, schema_id = DRIFTS[drift]
    resource = files("datadrill.platform").joinpath("contract_files", filename)
    schema = json.loads(resource.read_text(encoding="utf-8"))
    return Contract("orders", 1, "avro", schema_id, schema, writer=drift)


def drift_record(record: dict[str, Any], drift: str) -> dict[str, Any]:
    """A v1 record as a drifted producer would write it."""
    drifted = dict(record)
    if drift == "rename":
        drifted["amount_minor"] = drifted.pop("amount_cents")
    elif drift == "retype":
        drifted["amount_cents"] = f"{drifted['amount_cents'] / 100:.2f}"
    elif drift == "drop":
        drifted.pop("currency")
    else:
        raise ContractViolation(f"no drift {drift!r}; known: {', '.join(DRIFTS)}")
    return drifted


def known_contracts() -> list[Contract]:
    """Every writer schema datadrill ships: the contract in each format and every drift."""
    shipped = [load_contract(name, version, fmt) for name, version, fmt in _SCHEMA_IDS]
    return shipped + [load_drifted_writer(drift) for drift in DRIFTS]


def contract_for_headers(headers: list[tuple[str, bytes]] | None) -> Contract:
    """The contract a message was written with, from its headers."""
    values = {k: v for k, v in headers or []}
    try:
        schema_id = int(values[HEADER_SCHEMA_ID])
    except (KeyError, ValueError, TypeError) as exc:
        raise ContractViolation(f"message has no usable {HEADER_SCHEMA_ID} header") from exc
    for (name, version, fmt), known_id in _SCHEMA_IDS.items():
        if known_id == schema_id:
            return load_contract(name, version, fmt)
    for drift, (_, known_id) in DRIFTS.items():
        if known_id == schema_id:
            return load_drifted_writer(drift)
    raise ContractViolation(f"unknown schema id {schema_id} in message headers")
