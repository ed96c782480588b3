"""Where schema ids come from: datadrill's built-in table, or a Confluent Schema Registry.

On the embedded stack a message names its writer schema by a fixed id in its headers
(see :mod:`datadrill.platform.contracts`). With a Schema Registry (the compose stack, or
``external.schema_registry_url``) the relay registers every writer schema it uses and
frames each value in the Confluent wire format — magic byte 0, the 4-byte big-endian
schema id, the payload — as any registry-aware consumer expects; the sink reads the id
from the frame and fetches the schema it does not know from the registry.

A drifted writer (a schema-drift fault) is registered under a subject of its own
(``<topic>-value-drift-<name>``): the registry would refuse it as an incompatible new
version of ``<topic>-value``, and the fault is about what consumers do with the data
once a producer writes it anyway.

Example::

    ids = schema_ids(config)                      # BuiltinIds() or RegistryIds(url, topic)
    writer = ids.writer(load_contract("orders", 1, "avro"))
    value = ids.frame(writer, writer.encode(record))
    contract, payload = ids.unframe(value, header_id=None)
"""

from __future__ import annotations

import dataclasses
import json
import struct
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

from datadrill.config import StackConfig
from datadrill.platform.contracts import (
    Contract,
    ContractViolation,
    Format,
    contract_for_headers,
    known_contracts,
)

MAGIC = 0
_HEADER = struct.Struct(">bI")


class SchemaIds(Protocol):
    framed: bool

    def writer(self, contract: Contract) -> Contract:
        """``contract`` with the id consumers will find it under."""
        ...

    def resolve(self, schema_id: int) -> Contract: ...

    def frame(self, contract: Contract, payload: bytes) -> bytes: ...

    def unframe(self, value: bytes, *, header_id: bytes | None) -> tuple[Contract, bytes]: ...

    def unframe_all(self, values: Sequence[bytes]) -> tuple[Contract, list[bytes]] | None:
        """The one contract whose id frames every value, and their payloads; ``None`` when
        the ids are not in the values or not all the same (then :meth:`unframe` each)."""
        ...


class BuiltinIds:
    """Fixed ids in message headers; values are bare payloads."""

    framed = False

    def writer(self, contract: Contract) -> Contract:
        return contract

    def resolve(self, schema_id: int) -> Contract:
        return contract_for_headers([("datadrill.schema.id", str(schema_id).encode())])

    def frame(self, contract: Contract, payload: bytes) -> bytes:
        return payload

    def unframe(self, value: bytes, *, header_id: bytes | None) -> tuple[Contract, bytes]:
        return contract_for_headers([("datadrill.schema.id", header_id or b"")]), value

    def unframe_all(self, values: Sequence[bytes]) -> tuple[Contract, list[bytes]] | None:
        return None  # the ids are in the headers


def registry_client(url: str) -> Any:
    """confluent-kafka's registry client (``mock://…`` gives its in-memory registry)."""
    # authlib (a dependency of the registry client) warns about its own httpx integration
    # on import, through a filter of its own that says "always"; nothing here uses OAuth.
    with warnings.catch_warnings():
        from authlib.deprecate import AuthlibDeprecationWarning

        warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return SchemaRegistryClient.new_client({"url": url, "timeout": 10})


def _canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


class RegistryIds:
    """Ids handed out by a Schema Registry; values in the Confluent wire format."""

    framed = True

    def __init__(self, url: str, topic: str, *, client: Any = None) -> None:
        self.url = url
        self.topic = topic
        self._client = client if client is not None else registry_client(url)
        self._written: dict[tuple[str, str], Contract] = {}
        self._resolved: dict[int, Contract] = {}
        self._lock = threading.Lock()

    def subject(self, contract: Contract) -> str:
        value = f"{self.topic}-value"
        return value if contract.writer == "v1" else f"{value}-drift-{contract.writer}"

    def writer(self, contract: Contract) -> Contract:
        key = (contract.writer, contract.format)
        with self._lock:
            known = self._written.get(key)
            if known is not None:
                return known
            from confluent_kafka.schema_registry import Schema

            kind = "AVRO" if contract.format == "avro" else "JSON"
            try:
                schema_id = int(
                    self._client.register_schema(
                        self.subject(contract), Schema(json.dumps(contract.schema), kind)
                    )
                )
            except Exception as exc:
                raise ContractViolation(
                    f"schema registry {self.url} refused {self.subject(contract)}: {exc}"
                ) from exc
            registered = dataclasses.replace(contract, schema_id=schema_id)
            self._written[key] = registered
            self._resolved[schema_id] = registered
            return registered

    def resolve(self, schema_id: int) -> Contract:
        with self._lock:
            known = self._resolved.get(schema_id)
            if known is not None:
                return known
            try:
                fetched = self._client.get_schema(schema_id)
            except Exception as exc:
                raise ContractViolation(f"schema id {schema_id} unknown to {self.url}: {exc}") from exc
            schema = json.loads(fetched.schema_str)
            fmt: Format = "json" if (fetched.schema_type or "AVRO").upper() == "JSON" else "avro"
            # A schema datadrill ships (the contract or a drift) keeps its name; any other
            # (someone else's producer) is decoded with what the registry says.
            match = next(
                (
                    c
                    for c in known_contracts()
                    if c.format == fmt and _canonical(c.schema) == _canonical(schema)
                ),
                None,
            )
            base = match or Contract("orders", 1, fmt, schema_id, schema, writer=f"registry:{schema_id}")
            contract = dataclasses.replace(base, schema_id=schema_id)
            self._resolved[schema_id] = contract
            return contract

    def frame(self, contract: Contract, payload: bytes) -> bytes:
        return _HEADER.pack(MAGIC, contract.schema_id) + payload

    def unframe(self, value: bytes, *, header_id: bytes | None) -> tuple[Contract, bytes]:
        if len(value) < _HEADER.size or value[0] != MAGIC:
            raise ContractViolation(
                "value is not in the Schema Registry wire format (magic byte 0, 4-byte id)"
            )
        _, schema_id = _HEADER.unpack_from(value)
        return self.resolve(schema_id), value[_HEADER.size :]

    def unframe_all(self, values: Sequence[bytes]) -> tuple[Contract, list[bytes]] | None:
        # A poll's messages share one frame but for a drift: compare the five bytes, and
        # resolve the id (under the lock) once, not per message.
        size = _HEADER.size
        head = values[0][:size] if values else b""
        if len(head) < size or head[0] != MAGIC or any(value[:size] != head for value in values):
            return None
        try:
            contract = self.resolve(_HEADER.unpack(head)[1])
        except ContractViolation:
            return None
        return contract, [value[size:] for value in values]


def schema_ids(config: StackConfig) -> SchemaIds:
    """The stack's source of schema ids: a registry when one is configured."""
    external = config.external
    if external is not None and external.schema_registry_url:
        return RegistryIds(external.schema_registry_url.rstrip("/"), config.kafka.topic)
    return BuiltinIds()


__all__ = ["BuiltinIds", "RegistryIds", "SchemaIds", "schema_ids"]
