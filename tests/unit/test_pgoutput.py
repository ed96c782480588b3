"""The pgoutput decoder on bytes built by hand from the protocol's documentation and on
bytes a PostgreSQL 15 server sent (recorded from a walsender with proto_version 1; the
integration test test_cdc_relay.py captures them afresh from a live server)."""

from __future__ import annotations

import struct

import pytest

from datadrill.platform import pgoutput
from datadrill.platform.pgoutput import (
    PG_EPOCH_OFFSET_US,
    Begin,
    Column,
    Commit,
    Insert,
    PgOutputError,
    Relation,
    Skipped,
    TupleValue,
    Unchanged,
    decode,
    format_lsn,
    parse_lsn,
)

# -- built by hand ---------------------------------------------------------------------------


def _string(text: str) -> bytes:
    return text.encode() + b"\0"


def _tuple(*values: bytes | str | None) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == "u":
            out += b"u"
        else:
            assert isinstance(value, bytes)
            out += b"t" + struct.pack(">i", len(value)) + value
    return out


def test_begin() -> None:
    payload = b"B" + struct.pack(">QqI", 0x1_0000_0042, 1_000_000, 4242)
    assert decode(payload) == Begin(
        final_lsn=0x1_0000_0042, commit_time_us=PG_EPOCH_OFFSET_US + 1_000_000, xid=4242
    )


def test_commit() -> None:
    payload = b"C" + struct.pack(">bQQq", 0, 100, 148, -5)
    assert decode(payload) == Commit(
        flags=0, commit_lsn=100, end_lsn=148, commit_time_us=PG_EPOCH_OFFSET_US - 5
    )


def _relation_payload() -> bytes:
    payload = b"R" + struct.pack(">I", 77) + _string("shop") + _string("items") + b"f" + struct.pack(">h", 4)
    for flags, name, oid in ((1, "id", 20), (0, "label", 1043), (0, "paid", 16), (0, "small", 21)):
        payload += struct.pack(">b", flags) + _string(name) + struct.pack(">Ii", oid, -1)
    return payload


def test_relation() -> None:
    relation = decode(_relation_payload())
    assert isinstance(relation, Relation)
    assert (relation.relation_id, relation.namespace, relation.name, relation.replica_identity) == (
        77,
        "shop",
        "items",
        "f",
    )
    assert [c.name for c in relation.columns] == ["id", "label", "paid", "small"]
    assert [c.is_key for c in relation.columns] == [True, False, False, False]
    assert relation.columns[1] == Column(flags=0, name="label", type_oid=1043, type_modifier=-1)


def test_insert_converts_by_type_oid() -> None:
    relation = decode(_relation_payload())
    assert isinstance(relation, Relation)
    insert = decode(b"I" + struct.pack(">I", 77) + b"N" + _tuple(b"9000000000", "né".encode(), b"t", b"-3"))
    assert isinstance(insert, Insert)
    assert insert.row(relation) == {"id": 9_000_000_000, "label": "né", "paid": True, "small": -3}


def test_null_and_unchanged_toast() -> None:
    relation = decode(_relation_payload())
    assert isinstance(relation, Relation)
    insert = decode(b"I" + struct.pack(">I", 77) + b"N" + _tuple(b"1", None, b"f", "u"))
    assert isinstance(insert, Insert)
    assert insert.values[1] == TupleValue("n", None)
    assert insert.row(relation) == {"id": 1, "label": None, "paid": False, "small": Unchanged.TOAST}


@pytest.mark.parametrize(
    ("payload", "tag"),
    [
        (b"U" + struct.pack(">I", 77) + b"N" + _tuple(b"1", b"a", b"t", b"2"), "U"),
        (b"D" + struct.pack(">I", 77) + b"K" + _tuple(b"1", None, None, None), "D"),
        (b"T" + struct.pack(">IbI", 1, 0, 77), "T"),
        (b"O" + struct.pack(">Q", 5) + _string("upstream"), "O"),
        (b"Y" + struct.pack(">I", 600) + _string("public") + _string("mood"), "Y"),
        (b"M" + struct.pack(">bQ", 1, 5) + _string("dd") + struct.pack(">I", 2) + b"hi", "M"),
    ],
)
def test_other_messages_are_skipped(payload: bytes, tag: str) -> None:
    message = decode(payload)
    assert isinstance(message, Skipped) and message.tag == tag


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", "empty message"),
        (b"B" + struct.pack(">Q", 1), "ends inside Begin's commit time"),
        (b"C" + struct.pack(">bQQq", 0, 1, 2, 3) + b"!", "1 bytes left over after a Commit"),
        (b"R" + struct.pack(">I", 1) + b"public", "no terminating NUL"),
        (b"I" + struct.pack(">I", 1) + b"K" + _tuple(b"1"), "tuple marker is 'K'"),
        (b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 1) + b"x", "kind 'x'"),
        (
            b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 1) + b"t" + struct.pack(">i", 9) + b"ab",
            "value",
        ),
        (b"S" + struct.pack(">I", 1), "unknown message tag 'S'"),
    ],
)
def test_malformed_payloads_say_what_is_wrong(payload: bytes, error: str) -> None:
    with pytest.raises(PgOutputError, match=error):
        decode(payload)


def test_row_refuses_a_mismatched_relation() -> None:
    relation = decode(_relation_payload())
    assert isinstance(relation, Relation)
    insert = decode(b"I" + struct.pack(">I", 78) + b"N" + _tuple(b"1", None, b"f", b"2"))
    assert isinstance(insert, Insert)
    with pytest.raises(PgOutputError, match="relation 78 decoded with relation 77"):
        insert.row(relation)
    short = decode(b"I" + struct.pack(">I", 77) + b"N" + _tuple(b"1"))
    assert isinstance(short, Insert)
    with pytest.raises(PgOutputError, match="1 values for 4 columns"):
        short.row(relation)


def test_bad_boolean_text() -> None:
    with pytest.raises(PgOutputError, match="boolean column"):
        pgoutput.convert("yes", pgoutput.BOOL_OID)


def test_lsn_text_round_trip() -> None:
    assert format_lsn(0x1_0192_F070) == "1/192F070"
    assert parse_lsn("1/192F070") == 0x1_0192_F070
    assert parse_lsn(format_lsn(26408128)) == 26408128
    with pytest.raises(ValueError, match="X/Y"):
        parse_lsn("192F070")


# -- captured from PostgreSQL 15.x: one outbox transaction of two inserts ------------------------
# (insert_orders() of orders 1 and 2 into datadrill's PostgreSQL schema, publication FOR TABLE
# outbox WITH (publish = 'insert'), start_replication(proto_version 1, decode=False))

CAPTURED_OUTBOX = [
    b"B\x00\x00\x00\x00\x01\x92\xf4\x90\x00\x03\x04z\xf1\x96\x8bQ\x00\x00\x02\xd7",
    b"R\x00\x00@\npublic\x00outbox\x00d\x00\x08\x01event_id\x00\x00\x00\x00\x14\xff\xff\xff\xff\x00"
    b"order_id\x00\x00\x00\x00\x14\xff\xff\xff\xff\x00customer_id\x00\x00\x00\x00\x14\xff\xff\xff\xff"
    b"\x00amount_cents\x00\x00\x00\x00\x14\xff\xff\xff\xff\x00currency\x00\x00\x00\x00\x19\xff\xff\xff"
    b"\xff\x00status\x00\x00\x00\x00\x19\xff\xff\xff\xff\x00created_at_us\x00\x00\x00\x00\x14\xff\xff"
    b"\xff\xff\x00is_canary\x00\x00\x00\x00\x17\xff\xff\xff\xff",
    b"I\x00\x00@\nN\x00\x08t\x00\x00\x00\x011t\x00\x00\x00\x011t\x00\x00\x00\x017t\x00\x00\x00\x041250"
    b"t\x00\x00\x00\x03EURt\x00\x00\x00\x07createdt\x00\x00\x00\x101700000000000000t\x00\x00\x00\x010",
    b"I\x00\x00@\nN\x00\x08t\x00\x00\x00\x012t\x00\x00\x00\x012t\x00\x00\x00\x018t\x00\x00\x00\x0299"
    b"t\x00\x00\x00\x03USDt\x00\x00\x00\x01xt\x00\x00\x00\x015t\x00\x00\x00\x011",
    b"C\x00\x00\x00\x00\x00\x01\x92\xf4\x90\x00\x00\x00\x00\x01\x92\xf4\xc0\x00\x03\x04z\xf1\x96\x8bQ",
]

# Other message kinds from the same server: a type, an update with an unchanged TOASTed
# column, a delete, a truncate and a logical decoding message (messages = true).
CAPTURED_OTHERS = {
    "Y": b"Y\x00\x00@\x1bpublic\x00mood\x00",
    "U": b"U\x00\x00@\x1fN\x00\x05t\x00\x00\x00\x012t\x00\x00\x00\x03sadt\x00\x00\x00\x01tnu",
    "D": b"D\x00\x00@\x1fK\x00\x05t\x00\x00\x00\x011nnnn",
    "T": b"T\x00\x00\x00\x01\x00\x00\x00@\x1f",
    "M": b"M\x01\x00\x00\x00\x00\x01\x94\x05\xa8dd\x00\x00\x00\x00\x05hello",
}


def test_captured_outbox_transaction() -> None:
    begin, relation, first, second, commit = (decode(p) for p in CAPTURED_OUTBOX)
    assert isinstance(begin, Begin) and isinstance(commit, Commit)
    assert begin.xid == 727
    # Begin carries the commit record's LSN; Commit carries it again and the end LSN.
    assert begin.final_lsn == commit.commit_lsn == 26408080
    assert commit.end_lsn == 26408128 > commit.commit_lsn
    assert begin.commit_time_us == commit.commit_time_us
    assert isinstance(relation, Relation) and relation.qualified_name == "public.outbox"
    assert [c.type_oid for c in relation.columns] == [20, 20, 20, 20, 25, 25, 20, 23]
    assert isinstance(first, Insert) and isinstance(second, Insert)
    assert first.row(relation) == {
        "event_id": 1,
        "order_id": 1,
        "customer_id": 7,
        "amount_cents": 1250,
        "currency": "EUR",
        "status": "created",
        "created_at_us": 1_700_000_000_000_000,
        "is_canary": 0,
    }
    assert second.row(relation)["is_canary"] == 1 and second.row(relation)["event_id"] == 2


@pytest.mark.parametrize("tag", sorted(CAPTURED_OTHERS))
def test_captured_other_messages_are_skipped(tag: str) -> None:
    message = decode(CAPTURED_OTHERS[tag])
    assert isinstance(message, Skipped) and message.tag == tag
