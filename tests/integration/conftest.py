"""Fixtures for tests against a real embedded stack (processes, sockets, files)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datadrill.backends.stackd.manager import group_members, stack_down
from datadrill.config import parse_config
from datadrill.engine.wait import wait_until
from datadrill.errors import WaitTimeout
from datadrill.integrity.exactly_once import ExactlyOnceResult, check_exactly_once
from datadrill.paths import StatePaths
from datadrill.platform.supervisor import EventLog
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

TEST_CONFIG = {
    "workload": {"rate": 400, "canary_interval_s": 0.5},
    "kafka": {"election_delay_s": 1.0},
    "sink": {"batch_max_wait_ms": 100},
    "supervisor": {"backoff_initial_s": 0.1, "backoff_max_s": 1.0},
}


def start_stack(state_dir: Path, **overrides: Any) -> StackClient:
    """A stack left running in ``state_dir`` (stop it with :func:`stop_stack`); started the
    way every backend starts one (table ownership checked, leftovers reverted)."""
    from datadrill.backends.embedded import EmbeddedBackend
    from datadrill.session import start_stack as start

    config = parse_config(TEST_CONFIG, source="test", overrides=overrides)
    return start(EmbeddedBackend(), StatePaths(state_dir), config, timeout_s=90)


def stop_stack(stack: StackClient) -> None:
    pgid = int(stack.state["pgid"])
    stack_down(stack.paths)
    leftover = group_members(pgid)
    assert leftover == [], f"processes left behind by stack down: {leftover}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    running = start_stack(tmp_path_factory.mktemp("stack") / ".datadrill")
    yield running
    stop_stack(running)


def drain(stack: StackClient, *, timeout: float = 90.0) -> ExactlyOnceResult:
    """Stop the workload, wait for the pipeline to empty and return the integrity check.

    Duplicates never go away by waiting, so waiting for an exact result cannot hide one;
    the result is returned either way for the caller to assert on.
    """
    stack.workload.set(rate=0)
    last: list[ExactlyOnceResult] = []

    def settled() -> bool:
        with stack.source() as db:
            depth = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            engine = stack.query_engine()
            try:
                last.append(check_exactly_once(db, engine, table=stack.table))
            finally:
                engine.close()
        return depth == 0 and last[-1].exact

    try:
        # On timeout the caller asserts on the last result, which names what is wrong.
        with contextlib.suppress(WaitTimeout):
            wait_until(settled, timeout=timeout, interval=0.2, what="the pipeline to drain exactly once")
    finally:
        stack.workload.set(rate=TEST_CONFIG["workload"]["rate"])
    return last[-1]


def duplicate_rows(stack: StackClient, limit: int = 20) -> list[tuple[Any, ...]]:
    """The sink's rows of orders it holds more than once: what a duplicate's cause shows in
    (one event written twice, or one order published under two event ids)."""
    engine = stack.query_engine()
    try:
        return [
            tuple(row)
            for row in engine.rows(
                f"""
                SELECT order_id, event_id, kafka_partition, kafka_offset, ingested_at
                FROM {stack.table}
                WHERE order_id IN (
                  SELECT order_id FROM {stack.table} GROUP BY order_id HAVING count(*) > 1
                  ORDER BY order_id LIMIT {int(limit)})
                ORDER BY order_id, ingested_at
                """
            )
        ]
    finally:
        engine.close()


def events(stack: StackClient) -> list[dict[str, Any]]:
    return EventLog(stack.paths.events_file).read()


def sink_rows(stack: StackClient) -> int:
    engine = stack.query_engine()
    try:
        return int(engine.rows(f"SELECT count(*) FROM {stack.table}")[0][0])
    finally:
        engine.close()


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datadrill.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


# -- a throwaway PostgreSQL server on 127.0.0.1 --------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_dsn(postgres_bindir: Path) -> Iterator[str]:
    """A throwaway server with the default settings (wal_level=replica) and a ``catalog``
    database; tests using it are marked ``postgres`` (skipped where the server binaries are
    absent: see tests/conftest.py)."""
    with throwaway_postgres(postgres_bindir, database="catalog") as dsn:
        yield dsn


def new_database(postgres_dsn: str, name: str) -> str:
    """A fresh database on the session's PostgreSQL (a catalog no other test has touched)."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(
        postgres_dsn.replace("postgresql://", "postgresql+psycopg2://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return postgres_dsn.rsplit("/", 1)[0] + f"/{name}"


def wait_for_event(
    stack: StackClient, predicate: Any, *, after: int = 0, timeout: float = 60
) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next((e for e in events(stack)[after:] if predicate(e)), None)

    found: dict[str, Any] = wait_until(find, timeout=timeout, interval=0.1, what="a stack event")
    return found


def heartbeat(stack: StackClient, name: str) -> dict[str, Any]:
    return json.loads(stack.paths.heartbeat(name).read_text())


def monotonic() -> float:
    return time.monotonic()


@contextlib.contextmanager
def throwaway_postgres(bindir: Path, *settings: str, database: str = "source") -> Iterator[str]:
    """A PostgreSQL server of its own on 127.0.0.1 with extra ``-c`` settings (say
    ``wal_level=logical``) and one database; yields its URI. Not under pytest's tmp dir:
    its parents are private to root, and the server runs as the postgres user when we are
    root (initdb refuses to run as root). Stopped and removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="datadrill-pg-"))
    datadir = base / "data"
    datadir.mkdir()
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(datadir, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    options = f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1" + "".join(f" -c {s}" for s in settings)
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "drill", "-E", "UTF8", "--locale=C"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-w", "-l", str(datadir / "server.log"),
             "-o", options, "start"],
            check=True,
            capture_output=True,
        )
        import psycopg2

        admin = psycopg2.connect(f"postgresql://drill@127.0.0.1:{port}/postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {database}")
        admin.close()
        yield f"postgresql://drill@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def logical_postgres_dsn(postgres_bindir: Path) -> Iterator[str]:
    """A throwaway server with ``wal_level=logical`` (the session's ``postgres_dsn`` has
    the default, replica), for the CDC relay; tests using it are marked ``postgres``. Slots
    are server-wide: give each test its own database (:func:`new_database`) and slot."""
    with throwaway_postgres(postgres_bindir, "wal_level=logical") as dsn:
        yield dsn
