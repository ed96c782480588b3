"""Flat Avro records decoded a column at a time: the hot path of the sink and the replay.

fastavro decodes one record per call and builds a dict for each (~6 µs a record on the
2-core machine, most of the sink's and the replay's CPU). A batch of messages of one
contract is decoded here with numpy instead: every payload is a lane that starts at its
own offset, and the fields are read in schema order for all lanes at once — a varint in at
most ten vectorised steps, a string's bytes gathered into one Arrow buffer.

Only flat records of ``long``, ``int``, ``string`` and ``boolean`` fields qualify
(:func:`flat_fields`). A lane is ``ok`` only when its record is read exactly as fastavro
would read it and ends exactly where its payload ends; any other lane (a payload cut short
or too long, a varint beyond 64 bits, an int beyond 32, a boolean byte other than 0 or 1,
a string that is not UTF-8) comes back not ok, and the caller decodes that payload with
fastavro, whose verdict stands.

Example::

    table, ok = decode_columns((("event_id", "long"), ("currency", "string")), payloads)
    table.column("event_id")   # int64, one value per payload (meaningful where ok)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

FLAT_TYPES = frozenset({"long", "int", "string", "boolean"})
_ARROW_TYPES = {"long": pa.int64(), "int": pa.int64(), "string": pa.string(), "boolean": pa.bool_()}
_INT32 = (-(2**31), 2**31 - 1)

Lanes = npt.NDArray[np.bool_]
Positions = npt.NDArray[np.int64]


def flat_fields(schema: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """The (name, type) of each field of a flat record schema of :data:`FLAT_TYPES` (logical
    types already dropped), or ``None`` when the schema has any other kind of field."""
    if schema.get("type") != "record":
        return None
    fields = []
    for f in schema.get("fields", ()):
        kind = f.get("type")
        if isinstance(kind, dict) and set(kind) <= {"type", "logicalType"}:
            kind = kind.get("type")
        if not isinstance(kind, str) or kind not in FLAT_TYPES:
            return None
        fields.append((str(f["name"]), kind))
    return tuple(fields)


def decode_columns(fields: Sequence[tuple[str, str]], payloads: Sequence[bytes]) -> tuple[pa.Table, Lanes]:
    """Decode ``payloads`` (schemaless Avro records of ``fields``) into one Arrow table
    (``long`` and ``int`` as int64, ``string`` as string, ``boolean`` as bool) and a mask of
    the lanes read exactly; the values of the other lanes mean nothing. Under 2 GiB of
    payloads at a time."""
    n = len(payloads)
    if sum(len(p) for p in payloads) >= 2**31 - 1:
        raise ValueError("decode_columns takes under 2 GiB of payloads at a time (Arrow string offsets)")
    lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=n)
    ends = np.cumsum(lengths)
    pos = ends - lengths
    # One zero byte past the end: lanes that ran out read it, and are marked not ok.
    buf = np.frombuffer(b"".join(payloads) + b"\0", dtype=np.uint8)
    ok = np.ones(n, dtype=np.bool_)
    arrays: list[pa.Array] = []
    for _, kind in fields:
        if kind == "boolean":
            byte = buf[np.minimum(pos, ends)]
            ok &= (pos < ends) & (byte <= 1)
            arrays.append(pa.array(byte == 1, type=pa.bool_()))
            pos += 1
        elif kind == "string":
            arrays.append(_strings(buf, pos, ends, ok))
        else:
            values = _zigzag(_varints(buf, pos, ends, ok))
            if kind == "int":
                ok &= (values >= _INT32[0]) & (values <= _INT32[1])
            arrays.append(pa.array(values, type=pa.int64()))
    ok &= pos == ends
    schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in fields])
    return pa.Table.from_arrays(arrays, schema=schema), ok


def _varints(buf: npt.NDArray[np.uint8], pos: Positions, ends: Positions, ok: Lanes) -> npt.NDArray[np.uint64]:
    """The unsigned varint at each lane's position (advanced past it); lanes whose varint
    runs past their payload or beyond ten bytes / 64 bits are marked not ok."""
    value = np.zeros(len(pos), dtype=np.uint64)
    active = ok.copy()
    for k in range(10):
        if not active.any():
            break
        ok &= ~active | (pos < ends)
        active &= pos < ends
        byte = buf[np.minimum(pos, ends)].astype(np.uint64)
        bits = byte & np.uint64(0x7F)
        if k == 9:
            ok &= ~active | (bits <= 1)  # the tenth byte holds the 64th bit only
        value |= np.where(active, bits << np.uint64(7 * k), np.uint64(0))
        pos += active
        active &= (byte & np.uint64(0x80)) != 0
    ok &= ~active  # still continued after ten bytes
    return value


def _zigzag(value: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    return ((value >> np.uint64(1)) ^ (np.uint64(0) - (value & np.uint64(1)))).view(np.int64)


def _strings(buf: npt.NDArray[np.uint8], pos: Positions, ends: Positions, ok: Lanes) -> pa.Array:
    length = _zigzag(_varints(buf, pos, ends, ok))
    ok &= (length >= 0) & (length <= ends - pos)
    length = np.where(ok, length, 0)
    offsets = np.zeros(len(pos) + 1, dtype=np.int64)
    np.cumsum(length, out=offsets[1:])
    total = int(offsets[-1])
    # Each byte of every string: its lane's start plus its index within the string.
    data = buf[np.repeat(pos - offsets[:-1], length) + np.arange(total, dtype=np.int64)]
    pos += length
    strings = pa.StringArray.from_buffers(len(pos), pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))
    try:
        strings.validate(full=True)
    except pa.ArrowInvalid:
        # Not UTF-8 somewhere: find the lanes (only now, one by one) and empty them.
        raw = data.tobytes()
        values = []
        for i, good in enumerate(ok.tolist()):
            text = ""
            if good:
                try:
                    text = raw[offsets[i] : offsets[i + 1]].decode("utf-8")
                except UnicodeDecodeError:
                    ok[i] = False
            values.append(text)
        return pa.array(values, type=pa.string())
    return strings
