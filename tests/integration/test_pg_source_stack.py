"""The embedded stack on its own throwaway PostgreSQL source (``stack up --source
postgresql``): orders flow from PostgreSQL through the polling relay to the table exactly
once, the platform reaches the server through the fault proxy's ``source`` path, status
shows the server, a restart on the same state directory finds its data again, and neither
``stack down`` nor a killed stack process leaves a PostgreSQL process behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from conftest import drain, run_cli, sink_rows
from datadrill.engine.wait import wait_until
from datadrill.paths import StatePaths
from datadrill.stack.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _postmaster(paths: StatePaths) -> int:
    # The first line of postmaster.pid is the server's pid (PostgreSQL's own lock file).
    return int((paths.postgres_dir / "data" / "postmaster.pid").read_text().splitlines()[0])


def _server_processes(postmaster: int) -> set[int]:
    """The server and its children (checkpointer, WAL writer, backends...): each child runs
    in a session of its own, so the stack's process group does not hold them."""
    pids = {postmaster}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            pids.add(int(entry.name))
    return pids


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"}


def _state(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _status(state_dir: Path) -> dict[str, Any]:
    result = run_cli("stack", "status", "--state-dir", str(state_dir), "--json")
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def _up(state_dir: Path) -> StackClient:
    result = run_cli(
        "stack", "up", "--state-dir", str(state_dir), "--source", "postgresql", "--rate", "300", timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "source   postgresql://drill@127.0.0.1:" in result.stdout
    return StackClient.attach(state_dir)


def _wait_gone(pids: set[int], what: str) -> None:
    wait_until(lambda: not _alive(pids), timeout=60, interval=0.2, what=f"PostgreSQL processes gone after {what}")


def test_stack_up_source_postgresql_end_to_end(tmp_path: Path) -> None:
    state_dir = tmp_path / ".datadrill"
    paths = StatePaths(state_dir)
    stack = _up(state_dir)
    try:
        state = stack.state
        port = int(state["source_uri"].rsplit(":", 1)[1].split("/")[0])
        assert state["source_uri"] == f"postgresql://drill@127.0.0.1:{port}/source"
        # The platform's path goes through the fault proxy; the harness's does not.
        proxy = state["proxies"]["source"]
        assert proxy["upstream"] == f"127.0.0.1:{port}"
        assert state["source_via"] == f"postgresql://drill@{proxy['listen']}/source"

        wait_until(lambda: sink_rows(stack) >= 300, timeout=90, interval=0.5, what="orders in the table")
        with stack.source() as db:
            assert db.is_postgres
            orders_before = db.execute("SELECT count(*) FROM orders").fetchone()[0]
            assert db.execute("SHOW wal_level").fetchone()[0] == "logical"
        result = drain(stack)
        assert result.exact, result

        status = _status(state_dir)
        entries = {c["name"]: c for c in status["components"]}
        source = entries["source-db"]
        assert status["healthy"] and source["healthy"], source
        assert source["endpoint"] == state["source_uri"]
        postmaster = _postmaster(paths)
        assert re.fullmatch(
            rf"PostgreSQL \d+\.\d+, \d+ orders, outbox depth \d+; server pid {postmaster}", source["detail"]
        ), source["detail"]
        assert source["pid"] == postmaster and source["running"] and source["restarts"] == 0
        # One entry for the server: not a second "source-db" among the processes.
        assert [c["name"] for c in status["components"]].count("source-db") == 1
        server = _server_processes(postmaster)
        assert len(server) > 1  # the postmaster and its children
    finally:
        down = run_cli("stack", "down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    # Nothing had to be killed: the server stopped with the stack (fast shutdown).
    assert "killed" not in down.stdout, down.stdout
    _wait_gone(server, "stack down")
    assert "received fast shutdown request" in paths.log("source-db").read_text()

    # The same state directory again: the same data (initdb is not run twice), same port.
    stack = _up(state_dir)
    try:
        assert stack.state["source_uri"] == f"postgresql://drill@127.0.0.1:{port}/source"
        with stack.source() as db:
            assert db.execute("SELECT count(*) FROM orders").fetchone()[0] >= orders_before
        postmaster = _postmaster(paths)
        server = _server_processes(postmaster)
        # A stack process killed outright: the kernel kills the server (parent-death
        # signal), whose children then end by themselves.
        os.kill(int(stack.state["pid"]), signal.SIGKILL)
        _wait_gone(server, "the stack process was killed")
    finally:
        run_cli("stack", "down", "--state-dir", str(state_dir))
        data = paths.postgres_dir / "data"
        if data.is_symlink():  # as root under pytest's private directory: data lives in /tmp
            shutil.rmtree(data.resolve().parent, ignore_errors=True)
    assert not _alive(server)
