"""The CDC relay on a real PostgreSQL (wal_level=logical): orders reach the table exactly
once through a replication slot, also after a SIGKILL between publishing and confirming;
a stall keeps the connection and confirms nothing; a dropped slot is recreated; a server
without logical WAL gets one clear line; the decoder reads what a live server sends."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extras
import pytest

from conftest import (
    drain,
    events,
    heartbeat,
    new_database,
    run_cli,
    stop_stack,
    throwaway_postgres,
    wait_for_event,
)
from conftest import start_stack as start_test_stack
from datadrill.config import parse_config, write_running_config
from datadrill.engine.wait import wait_until
from datadrill.paths import StatePaths
from datadrill.platform import pgoutput
from datadrill.platform.cdc_relay import EXIT_NO_LOGICAL_DECODING, wal_level_message
from datadrill.platform.relay import CRASH_AFTER_PUBLISH
from datadrill.platform.source_db import OrderRow, connect, insert_orders, outbox_depth
from datadrill.stack.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SLOT = "cdc_test_relay"
# Short, so that the stall test shows the relay's keepalives hold the connection.
WAL_SENDER_TIMEOUT_S = 4


@pytest.fixture(scope="module")
def cdc_server(postgres_bindir: Path) -> Iterator[str]:
    with throwaway_postgres(
        postgres_bindir, "wal_level=logical", f"wal_sender_timeout={WAL_SENDER_TIMEOUT_S}s"
    ) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def cdc_stack(cdc_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    source = new_database(cdc_server, "cdc_relay_e2e")
    stack = start_test_stack(
        tmp_path_factory.mktemp("cdc") / ".datadrill",
        **{"source.uri": source, "relay.mode": "cdc", "relay.slot": SLOT},
    )
    yield stack
    stop_stack(stack)


def _slot(dsn: str, slot: str = SLOT) -> dict[str, Any] | None:
    with psycopg2.connect(dsn) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
        cursor.execute(
            "SELECT slot_name, plugin, active_pid, confirmed_flush_lsn::text AS confirmed"
            " FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        )
        row = cursor.fetchone()
    conn.close()
    return dict(row) if row else None


def _relay_beat(stack: StackClient) -> dict[str, Any]:
    return wait_until(
        lambda: heartbeat(stack, "relay") if stack.paths.heartbeat("relay").exists() else None,
        timeout=60,
        what="the relay's heartbeat",
    )


def test_orders_reach_the_table_exactly_once_through_the_slot(cdc_stack: StackClient) -> None:
    wait_until(
        lambda: _relay_beat(cdc_stack).get("marked", 0) > 200, timeout=90, what="the CDC relay to publish"
    )
    beat = _relay_beat(cdc_stack)
    assert beat["mode"] == "cdc" and beat["slot"] == SLOT and beat["slot_recreated"] == 0
    with cdc_stack.source() as db:
        source_uri = db.target
    slot = _slot(source_uri)
    assert slot is not None and slot["plugin"] == "pgoutput" and slot["active_pid"] is not None
    result = drain(cdc_stack)
    assert result.exact, result.describe()
    assert result.source_orders > 200
    # The confirmations reached the server (an LSN past the slot's start).
    assert (
        pgoutput.parse_lsn(_slot(source_uri)["confirmed"])
        >= pgoutput.parse_lsn(  # type: ignore[index]
            _relay_beat(cdc_stack)["confirmed_lsn"]
        )
        > 0
    )


def test_sigkill_between_publish_and_confirm_stays_exact(cdc_stack: StackClient) -> None:
    seen = len(events(cdc_stack))
    dropped_before = heartbeat(cdc_stack, "sink").get("duplicates_dropped", 0)
    cdc_stack.paths.crash_point("relay").write_text(CRASH_AFTER_PUBLISH)
    wait_for_event(
        cdc_stack,
        lambda e: (
            e["event"] == "process_exited" and e["component"] == "relay" and e["cause"] == "killed by SIGKILL"
        ),
        after=seen,
    )
    wait_for_event(
        cdc_stack,
        lambda e: e["event"] == "process_started" and e["component"] == "relay" and e["restarts"] > 0,
        after=seen,
    )
    assert not cdc_stack.paths.crash_point("relay").exists()  # it fired, once
    # The restarted relay streams the unconfirmed transactions again; the sink drops them.
    wait_until(
        lambda: heartbeat(cdc_stack, "sink")["duplicates_dropped"] > dropped_before,
        timeout=60,
        what="the sink to see the replayed batch",
    )
    result = drain(cdc_stack)
    assert result.exact, result.describe()
    assert _relay_beat(cdc_stack)["slot_recreated"] == 0


def test_a_stall_confirms_nothing_and_keeps_the_connection(cdc_stack: StackClient) -> None:
    with cdc_stack.source() as db:
        source_uri = db.target
    wait_until(lambda: (_slot(source_uri) or {}).get("active_pid"), timeout=60, what="an active slot")
    cdc_stack.paths.relay_stall.touch()
    try:
        wait_until(lambda: _relay_beat(cdc_stack).get("stalled"), timeout=30, what="the relay to stall")
        before = _slot(source_uri)
        reconnects = _relay_beat(cdc_stack)["reconnects"]
        assert before is not None
        # Longer than wal_sender_timeout twice over: without keepalives the server would have
        # dropped the connection (a new walsender pid, a reconnect in the heartbeat).
        time.sleep(2.5 * WAL_SENDER_TIMEOUT_S)
        during = _slot(source_uri)
        assert during is not None
        assert during["active_pid"] == before["active_pid"]
        assert during["confirmed"] == before["confirmed"]
        assert _relay_beat(cdc_stack)["reconnects"] == reconnects
        with cdc_stack.source() as db:
            assert outbox_depth(db) > 0  # the workload kept writing; nothing was published
    finally:
        cdc_stack.paths.relay_stall.unlink(missing_ok=True)
    wait_until(lambda: not _relay_beat(cdc_stack).get("stalled"), timeout=30, what="the stall to end")
    result = drain(cdc_stack)
    assert result.exact, result.describe()
    after = _slot(source_uri)
    assert after is not None
    assert pgoutput.parse_lsn(after["confirmed"]) > pgoutput.parse_lsn(before["confirmed"])


def _drop_slot(dsn: str, slot: str) -> None:
    """What an operator does to an active slot: end its walsender, then drop it."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                    " WHERE slot_name = %s AND active_pid IS NOT NULL",
                    (slot,),
                )
                try:
                    cursor.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                    return
                except psycopg2.errors.ObjectInUse:
                    time.sleep(0.02)  # the walsender is still exiting (or the relay came back)
            raise AssertionError(f"slot {slot} stayed active")
    finally:
        conn.close()


def test_a_dropped_slot_is_recreated_and_the_relay_goes_on(cdc_stack: StackClient) -> None:
    # Last in the module: the changes between the drop and the new slot are lost for good.
    with cdc_stack.source() as db:
        source_uri = db.target
    wait_until(lambda: (_slot(source_uri) or {}).get("active_pid"), timeout=60, what="an active slot")
    _drop_slot(source_uri, SLOT)
    wait_until(
        lambda: _relay_beat(cdc_stack)["slot_recreated"] == 1, timeout=60, what="the slot to be recreated"
    )
    marked = _relay_beat(cdc_stack)["marked"]
    wait_until(lambda: _relay_beat(cdc_stack)["marked"] > marked, timeout=60, what="publishing to go on")
    slot = _slot(source_uri)
    assert slot is not None and slot["active_pid"] is not None
    log = cdc_stack.paths.log("relay").read_text(encoding="utf-8")
    assert f"replication slot {SLOT} was gone and is recreated" in log


def test_a_server_without_logical_wal_gets_one_clear_line(postgres_dsn: str, tmp_path: Path) -> None:
    # The session's server runs with the default wal_level (replica).
    source = new_database(postgres_dsn, "cdc_replica")
    paths = StatePaths(tmp_path / ".datadrill")
    paths.make()
    write_running_config(
        paths, parse_config({}, source="test", overrides={"source.uri": source, "relay.mode": "cdc"})
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "datadrill.platform.cdc_relay",
            "--state-dir",
            str(paths.root),
            "--bootstrap",
            "127.0.0.1:1",
            "--source",
            source,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_NO_LOGICAL_DECODING, done.stderr
    assert done.stderr.strip().splitlines() == [wal_level_message(source, "replica")]
    assert "wal_level=replica; the CDC relay needs wal_level=logical" in done.stderr


def test_stack_up_refuses_a_source_without_logical_wal_before_starting(postgres_dsn: str, tmp_path: Path) -> None:
    """`stack up` (and `run` on a throwaway stack) say it in one line, exit 2, and start
    nothing: not a relay exiting again and again on a stack that came up."""
    source = new_database(postgres_dsn, "cdc_replica_cli")
    (tmp_path / "datadrill.toml").write_text(f'[source]\nuri = "{source}"\n', encoding="utf-8")
    state = tmp_path / "state"
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "cdc_slot_loss.py"
    for args in (("stack", "up", "--relay", "cdc"), ("run", "--relay", "cdc", str(scenario))):
        done = run_cli(*args, "--state-dir", str(state), "--config", str(tmp_path / "datadrill.toml"), cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: [source]: uri = ") and "wal_level=logical" in lines[0], lines[0]
        assert "it has wal_level=replica" in lines[0]
        assert not (state / "stack.json").exists()
    (tmp_path / "datadrill.toml").write_text(
        '[source]\nuri = "postgresql://drill@127.0.0.1:1/nowhere"\n', encoding="utf-8"
    )
    done = run_cli("stack", "up", "--state-dir", str(state), "--config", str(tmp_path / "datadrill.toml"), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "a PostgreSQL server that answers" in done.stderr


def test_decoder_reads_a_live_servers_bytes(cdc_server: str) -> None:
    """Capture pgoutput bytes from the server and decode them into the rows we wrote."""
    source = new_database(cdc_server, "cdc_capture")
    db = connect(source)
    db.execute("CREATE PUBLICATION capture_pub FOR TABLE outbox WITH (publish = 'insert')")
    repl = psycopg2.connect(source, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    cursor = repl.cursor()
    cursor.create_replication_slot("capture_slot", output_plugin="pgoutput")
    rows = [
        OrderRow(1, 7, 1250, "EUR", "created", 1_700_000_000_000_000, False),
        OrderRow(2, 8, 99, "USD", "paid", 1_700_000_000_000_001, True),
    ]
    insert_orders(db, rows)
    db.execute("DELETE FROM outbox")  # not published: the publication is insert-only
    insert_orders(db, [OrderRow(3, 9, 5, "EUR", "created", 1_700_000_000_000_002, False)])
    cursor.start_replication(
        slot_name="capture_slot",
        decode=False,
        options={"proto_version": "1", "publication_names": "capture_pub"},
    )
    captured: list[bytes] = []
    deadline = time.monotonic() + 30
    while sum(p[:1] == b"C" for p in captured) < 2 and time.monotonic() < deadline:
        message = cursor.read_message()
        if message is None:
            select.select([cursor], [], [], 0.5)
            continue
        captured.append(bytes(message.payload))
    repl.close()
    try:
        decoded = [pgoutput.decode(p) for p in captured]
        assert [type(m).__name__ for m in decoded] == [
            "Begin", "Relation", "Insert", "Insert", "Commit", "Begin", "Insert", "Commit",
        ]  # fmt: skip
        relation = decoded[1]
        assert isinstance(relation, pgoutput.Relation) and relation.name == "outbox"
        got = [m.row(relation) for m in decoded if isinstance(m, pgoutput.Insert)]
        assert [(r["event_id"], r["order_id"], r["currency"], r["is_canary"]) for r in got] == [
            (1, 1, "EUR", 0),
            (2, 2, "USD", 1),
            (3, 3, "EUR", 0),
        ]
        first_commit, second_begin = decoded[4], decoded[5]
        assert isinstance(first_commit, pgoutput.Commit) and isinstance(second_begin, pgoutput.Begin)
        assert second_begin.final_lsn > first_commit.end_lsn
    finally:
        db.close()
        _drop_slot(source, "capture_slot")  # its walsender may still be exiting
