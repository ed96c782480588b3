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

from collections.abc import Mapping, Sequence
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


def encode_columns(fields: Sequence[tuple[str, str]], columns: Mapping[str, Sequence[Any]]) -> list[bytes] | None:
    """The inverse of :func:`decode_columns`: each row of ``columns`` (one list per field,
    all of one length) as the schemaless Avro record fastavro would write, or ``None`` when
    a value is not what its field takes exactly (``int`` in range for ``long``/``int``,
    ``str`` for ``string``, ``bool`` for ``boolean``): the caller encodes those rows with
    fastavro, whose verdict stands."""
    n = len(columns[fields[0][0]]) if fields else 0
    if n == 0:
        return []
    parts: list[tuple[str, Any, Any]] = []  # (kind, values or varints, string data)
    sizes = np.zeros(n, dtype=np.int64)
    for name, kind in fields:
        values = columns[name]
        if kind == "boolean":
            if set(map(type, values)) != {bool}:
                return None
            parts.append((kind, np.fromiter(values, dtype=np.uint8, count=n), None))
            sizes += 1
            continue
        if kind == "string":
            if set(map(type, values)) != {str}:
                return None
            strings = pa.array(values, type=pa.string())
            offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32, count=n + 1, offset=strings.offset * 4)
            lengths = np.diff(offsets).astype(np.int64)
            data_buffer = strings.buffers()[2]
            data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
            varint = _zigzag_encode(lengths)
            parts.append((kind, varint, (data, offsets, lengths)))
            sizes += _varint_sizes(varint) + lengths
            continue
        if set(map(type, values)) != {int}:
            return None
        try:
            ints = np.array(values, dtype=np.int64)
        except OverflowError:
            return None
        if kind == "int" and ((ints < _INT32[0]) | (ints > _INT32[1])).any():
            return None
        varint = _zigzag_encode(ints)
        parts.append((kind, varint, None))
        sizes += _varint_sizes(varint)
    ends = np.cumsum(sizes)
    pos = ends - sizes
    out = np.zeros(int(ends[-1]), dtype=np.uint8)
    for kind, values, strings in parts:
        if kind == "boolean":
            out[pos] = values
            pos += 1
            continue
        _write_varints(out, pos, values)
        if strings is not None:
            data, offsets, lengths = strings
            total = int(lengths.sum())
            within = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1].astype(np.int64) - offsets[0], lengths)
            out[np.repeat(pos, lengths) + within] = data[offsets[0] : offsets[0] + total]
            pos += lengths
    raw = out.tobytes()
    starts = (ends - sizes).tolist()
    return [raw[start:end] for start, end in zip(starts, ends.tolist(), strict=True)]


def _zigzag_encode(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    return ((values << np.int64(1)) ^ (values >> np.int64(63))).view(np.uint64)


def _varint_sizes(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    sizes = np.ones(len(values), dtype=np.int64)
    for k in range(1, 10):
        sizes += values >= np.uint64(1 << (7 * k))
    return sizes


def _write_varints(out: npt.NDArray[np.uint8], pos: Positions, values: npt.NDArray[np.uint64]) -> None:
    """Write each value as a varint at its lane's position, advancing the position."""
    active = np.ones(len(values), dtype=np.bool_)
    rest = values.copy()
    for _ in range(10):
        if not active.any():
            break
        more = rest >= np.uint64(0x80)
        byte = (rest & np.uint64(0x7F)) | np.where(more, np.uint64(0x80), np.uint64(0))
        out[pos[active]] = byte[active].astype(np.uint8)
        pos += active
        active &= more
        rest >>= np.uint64(7)
