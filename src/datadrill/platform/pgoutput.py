"""Decode PostgreSQL's pgoutput logical replication messages (protocol version 1).

pgoutput is the output plugin built into PostgreSQL (10+) that logical replication and
Debezium use. A walsender streams one message per ``XLogData`` payload; this module turns
such a payload into a typed message, following "Logical Replication Message Formats" in
PostgreSQL's protocol documentation:

- ``B`` Begin: final LSN, commit timestamp, xid
- ``C`` Commit: flags, commit LSN, end LSN, commit timestamp
- ``R`` Relation: id, namespace, name, replica identity, columns (flags, name, type OID,
  type modifier); sent before the first change to a relation and again when it changes
- ``I`` Insert: relation id, ``N`` and the new tuple
- ``U`` Update, ``D`` Delete, ``T`` Truncate, ``O`` Origin, ``Y`` Type, ``M`` Message:
  recognised and returned as :class:`Skipped` (the outbox relay only publishes inserts)

Integers are big-endian; a String is NUL-terminated. TupleData is an Int16 column count,
then per column ``n`` (NULL), ``u`` (unchanged TOASTed value, only in updates) or ``t``
(Int32 length + the value in text form). Text values become Python values by the
column's type OID (:func:`convert`).

Example::

    relations: dict[int, Relation] = {}
    match decode(msg.payload):
        case Relation() as rel:
            relations[rel.relation_id] = rel
        case Insert() as ins:
            row = ins.row(relations[ins.relation_id])    # {"event_id": 7, ...}
        case Commit() as commit:
            cursor.send_feedback(flush_lsn=commit.end_lsn)
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from datadrill.errors import DrillError

# Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 00:00:00 UTC).
PG_EPOCH_OFFSET_US = 946_684_800_000_000

# Type OIDs (pg_type.oid, fixed for built-in types) whose text form we convert.
BOOL_OID = 16
INT8_OID = 20
INT2_OID = 21
INT4_OID = 23
TEXT_OID = 25
OID_OID = 26
BPCHAR_OID = 1042
VARCHAR_OID = 1043
INTEGER_OIDS = frozenset({INT2_OID, INT4_OID, INT8_OID, OID_OID})

_INT32 = struct.Struct(">i")

_SKIPPED_TAGS = {
    "U": "update",
    "D": "delete",
    "T": "truncate",
    "O": "origin",
    "Y": "type",
    "M": "message",
}


class PgOutputError(DrillError):
    """A payload that is not a well-formed pgoutput (protocol 1) message."""


class Unchanged(enum.Enum):
    """An unchanged TOASTed value (``u``): the old value was not sent."""

    TOAST = "unchanged-toast"


Value = int | str | bool | bytes | Unchanged | None


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time_us: int  # Unix epoch, microseconds
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int  # start of the commit record
    end_lsn: int  # end of the transaction: what a client confirms (see cdc_relay)
    commit_time_us: int  # Unix epoch, microseconds


@dataclass(frozen=True)
class Column:
    flags: int  # 1: part of the replica identity key
    name: str
    type_oid: int
    type_modifier: int

    @property
    def is_key(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True)
class Relation:
    relation_id: int
    namespace: str  # empty for pg_catalog
    name: str
    replica_identity: str  # relreplident: d(efault), n(othing), f(ull), i(ndex)
    columns: tuple[Column, ...]

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace or 'pg_catalog'}.{self.name}"

    @functools.cached_property
    def converters(self) -> tuple[tuple[str, Callable[[bytes], Value]], ...]:
        """(name, text form → value) per column, chosen once per relation by type OID."""
        return tuple((c.name, _converter(c.type_oid)) for c in self.columns)


class TupleValue(NamedTuple):
    # A NamedTuple, not a frozen dataclass: one is built per column of every row streamed,
    # and a frozen dataclass's __init__ costs several times more.
    kind: str  # "n" null, "u" unchanged toast, "t" text, "b" binary
    data: bytes | None

    def convert(self, type_oid: int) -> Value:
        if self.kind == "n":
            return None
        if self.kind == "u":
            return Unchanged.TOAST
        assert self.data is not None
        if self.kind == "b":
            return self.data  # only sent when the client asks for binary; we never do
        return convert(self.data.decode("utf-8"), type_oid)


_NULL = TupleValue("n", None)
_UNCHANGED = TupleValue("u", None)


@dataclass(frozen=True)
class Insert:
    relation_id: int
    values: tuple[TupleValue, ...]

    def row(self, relation: Relation) -> dict[str, Value]:
        """The new row as {column: value}, converted by each column's type OID."""
        if relation.relation_id != self.relation_id:
            raise PgOutputError(
                f"insert into relation {self.relation_id} decoded with relation "
                f"{relation.relation_id} ({relation.qualified_name})"
            )
        if len(relation.columns) != len(self.values):
            raise PgOutputError(
                f"insert into {relation.qualified_name} has {len(self.values)} values for "
                f"{len(relation.columns)} columns"
            )
        row: dict[str, Value] = {}
        for (name, text_to_value), (kind, data) in zip(relation.converters, self.values, strict=True):
            if kind == "t":
                assert data is not None
                row[name] = text_to_value(data)
            elif kind == "n":
                row[name] = None
            elif kind == "u":
                row[name] = Unchanged.TOAST
            else:
                row[name] = data
        return row


@dataclass(frozen=True)
class Skipped:
    """A message the relay does not act on (update, delete, truncate, origin, type, message)."""

    tag: str
    kind: str


Message = Begin | Commit | Relation | Insert | Skipped


def convert(text: str, type_oid: int) -> Value:
    """A column's text form as a Python value: integers and booleans by their type OID,
    everything else (text, varchar, numeric, timestamps, ...) as the text itself."""
    if type_oid in INTEGER_OIDS:
        return int(text)
    if type_oid == BOOL_OID:
        if text not in ("t", "f"):
            raise PgOutputError(f"boolean column with text value {text!r} (expected 't' or 'f')")
        return text == "t"
    return text


def _text(data: bytes) -> Value:
    return data.decode("utf-8")


def _bool(data: bytes) -> Value:
    return convert(data.decode("utf-8"), BOOL_OID)


def _converter(type_oid: int) -> Callable[[bytes], Value]:
    if type_oid in INTEGER_OIDS:
        return int  # int() parses the ASCII digits of a bytes value directly
    if type_oid == BOOL_OID:
        return _bool
    return _text


class _Reader:
    """A cursor over one payload; every read checks that the bytes are there."""

    def __init__(self, payload: bytes) -> None:
        self.buf = payload
        self.pos = 0

    def _take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise PgOutputError(
                f"message ends inside {what} (needs {n} bytes at offset {self.pos}, has {len(self.buf)})"
            )
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def int8(self, what: str) -> int:
        return int(self._take(1, what)[0])

    def byte1(self, what: str) -> str:
        return chr(self._take(1, what)[0])

    def int16(self, what: str) -> int:
        value: int = struct.unpack(">h", self._take(2, what))[0]
        return value

    def int32(self, what: str, *, signed: bool = False) -> int:
        value: int = struct.unpack(">i" if signed else ">I", self._take(4, what))[0]
        return value

    def int64(self, what: str, *, signed: bool = False) -> int:
        value: int = struct.unpack(">q" if signed else ">Q", self._take(8, what))[0]
        return value

    def string(self, what: str) -> str:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            raise PgOutputError(f"{what} at offset {self.pos} has no terminating NUL")
        text = self.buf[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def tuple_data(self) -> tuple[TupleValue, ...]:
        # The hot path (every column of every row): offsets by hand, messages built only
        # when something is wrong.
        count = self.int16("the tuple's column count")
        buf, pos, end = self.buf, self.pos, len(self.buf)
        values: list[TupleValue] = []
        append = values.append
        for index in range(count):
            if pos >= end:
                self.pos = pos
                self._take(1, f"column {index}'s kind")
            kind = buf[pos]
            pos += 1
            if kind == 0x74 or kind == 0x62:  # "t" text, "b" binary
                if pos + 4 > end:
                    self.pos = pos
                    self._take(4, f"column {index}'s length")
                (length,) = _INT32.unpack_from(buf, pos)
                pos += 4
                stop = pos + length
                if length < 0 or stop > end:
                    self.pos = pos
                    self._take(max(length, end - pos + 1), f"column {index}'s value")
                append(TupleValue("t" if kind == 0x74 else "b", buf[pos:stop]))
                pos = stop
            elif kind == 0x6E:  # "n"
                append(_NULL)
            elif kind == 0x75:  # "u"
                append(_UNCHANGED)
            else:
                raise PgOutputError(f"column {index} has kind {chr(kind)!r} (expected 'n', 'u', 't' or 'b')")
        self.pos = pos
        return tuple(values)

    def done(self, what: str) -> None:
        if self.pos != len(self.buf):
            raise PgOutputError(f"{len(self.buf) - self.pos} bytes left over after {what}")


def _timestamp(pg_us: int) -> int:
    return pg_us + PG_EPOCH_OFFSET_US


def decode(payload: bytes) -> Message:
    """One pgoutput message (one ``XLogData`` payload) as a typed value.

    Raises :class:`PgOutputError` on a payload that is truncated, has bytes left over, or
    carries a tag that protocol version 1 does not send."""
    if not payload:
        raise PgOutputError("empty message")
    reader = _Reader(payload)
    tag = reader.byte1("the tag")
    message: Message
    if tag == "B":
        message = Begin(
            final_lsn=reader.int64("Begin's final LSN"),
            commit_time_us=_timestamp(reader.int64("Begin's commit time", signed=True)),
            xid=reader.int32("Begin's xid"),
        )
    elif tag == "C":
        message = Commit(
            flags=reader.int8("Commit's flags"),
            commit_lsn=reader.int64("Commit's LSN"),
            end_lsn=reader.int64("Commit's end LSN"),
            commit_time_us=_timestamp(reader.int64("Commit's commit time", signed=True)),
        )
    elif tag == "R":
        relation_id = reader.int32("Relation's id")
        namespace = reader.string("Relation's namespace")
        name = reader.string("Relation's name")
        identity = reader.byte1("Relation's replica identity")
        count = reader.int16("Relation's column count")
        columns = tuple(
            Column(
                flags=reader.int8(f"column {i}'s flags"),
                name=reader.string(f"column {i}'s name"),
                type_oid=reader.int32(f"column {i}'s type OID"),
                type_modifier=reader.int32(f"column {i}'s type modifier", signed=True),
            )
            for i in range(count)
        )
        message = Relation(relation_id, namespace, name, identity, columns)
    elif tag == "I":
        relation_id = reader.int32("Insert's relation id")
        marker = reader.byte1("Insert's tuple marker")
        if marker != "N":
            raise PgOutputError(f"Insert's tuple marker is {marker!r} (expected 'N')")
        message = Insert(relation_id, reader.tuple_data())
    elif tag in _SKIPPED_TAGS:
        # Whole messages: one payload is one message, so skipping needs no parsing.
        return Skipped(tag, _SKIPPED_TAGS[tag])
    else:
        raise PgOutputError(
            f"unknown message tag {tag!r} (protocol version 1 sends B, C, R, I, U, D, T, O, Y, M)"
        )
    reader.done(f"a {type(message).__name__} message")
    return message


def format_lsn(lsn: int) -> str:
    """An LSN the way PostgreSQL prints it (``0/16B3748``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """``0/16B3748`` as an integer."""
    high, sep, low = text.partition("/")
    if not sep:
        raise ValueError(f"LSN {text!r} is not of the form X/Y")
    return (int(high, 16) << 32) | int(low, 16)


__all__ = [
    "Begin",
    "Column",
    "Commit",
    "Insert",
    "Message",
    "PgOutputError",
    "Relation",
    "Skipped",
    "TupleValue",
    "Unchanged",
    "Value",
    "convert",
    "decode",
    "format_lsn",
    "parse_lsn",
]
