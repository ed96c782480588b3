"""Starting, inspecting and stopping an embedded stack from the outside (the CLI side).

Example::

    info = stack_up(StatePaths(Path(".datadrill")), config)
    stack_status(paths)["healthy"]
    stack_down(paths)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datadrill.backends.base import BeforeHealth
from datadrill.backends.stackd import EXIT_ALREADY_RUNNING
from datadrill.config import DEFAULT_CONFIG_FILE, StackConfig, write_running_config
from datadrill.errors import StackAlreadyRunning, StackNotRunning, StackStartFailed
from datadrill.paths import StatePaths
from datadrill.procs import alive, group_members
from datadrill.stack.client import ControlClient
from datadrill.stack.state import read_state, require_state

# Stack processes this Python process started and must reap (tests start several).
_children: dict[int, subprocess.Popen[bytes]] = {}


def _lock_is_held(paths: StatePaths) -> bool:
    if not paths.lock_file.exists():
        return False
    with paths.lock_file.open("a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False


def _reap(pid: int) -> None:
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def _last_lines(path: Path, count: int = 20) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-count:])


def clean_stale(paths: StatePaths) -> list[int]:
    """Kill whatever a killed stack left behind in this directory; returns the pids."""
    killed: list[int] = []
    state = read_state(paths)
    pgids = {int(state["pgid"])} if state and "pgid" in state else set()
    with contextlib.suppress(FileNotFoundError, ValueError):
        pgids.add(int(paths.pid_file.read_text().strip()))
    for pgid in pgids:
        for pid in group_members(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    paths.state_file.unlink(missing_ok=True)
    paths.pid_file.unlink(missing_ok=True)
    return killed


def stack_up(
    paths: StatePaths,
    config: StackConfig,
    *,
    timeout_s: float = 60.0,
    on_progress: Callable[[str], None] | None = None,
    before_health: BeforeHealth | None = None,
) -> dict[str, Any]:
    """Start a background stack in ``paths.root`` and wait until every component is healthy.

    Returns the stack's state (endpoints, pids). Raises :class:`StackAlreadyRunning` when a
    stack already runs there and :class:`StackStartFailed`, with the last log lines, when
    the stack dies or stays unhealthy.
    """
    progress = on_progress or (lambda message: None)
    paths.make()
    if _lock_is_held(paths):
        state = read_state(paths) or {}
        raise StackAlreadyRunning(
            f"a stack is already running in {paths.root} (pid {state.get('pid', '?')}, "
            f"control {state.get('control_url', '?')}); use 'datadrill stack status' or "
            "'datadrill stack down'"
        )
    leftovers = clean_stale(paths)
    if leftovers:
        progress(f"killed {len(leftovers)} processes left by a stack that was not stopped")

    from datadrill.platform.declared import check_placeholders

    if config.catalog.uri or config.external is not None:
        # Only a catalog database of the user's is checked: the embedded stack's SQLite file
        # needs nothing, nor pyiceberg imported (a third of a second before the start).
        from datadrill.platform.catalog_uris import catalog_uri, check_catalog_reachable

        check_catalog_reachable(catalog_uri(config, paths), source="stack up")
    # A placeholder this stack will have no value for: said now, before anything starts.
    check_placeholders(config, source=DEFAULT_CONFIG_FILE)
    write_running_config(paths, config)
    log_path = paths.log("stack")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "datadrill.backends.stackd.daemon",
                "--state-dir",
                str(paths.root.resolve()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _children[process.pid] = process
    progress(f"stack process {process.pid} starting")
    # Declared components may take their own `ready.timeout_s` on top of the stack's start.
    timeout_s += max((c.ready.timeout_s for c in config.components.values() if c.command), default=0.0)
    deadline = time.monotonic() + timeout_s
    last_status: dict[str, Any] | None = None
    reverted = False
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            _children.pop(process.pid, None)
            if code == EXIT_ALREADY_RUNNING:
                raise StackAlreadyRunning(f"a stack is already running in {paths.root}")
            error = StackStartFailed(
                f"the stack process exited with code {code} while starting; see {log_path}"
            )
            error.add_note("last log lines:\n" + _last_lines(log_path))
            raise error
        started = read_state(paths)
        if started is not None and started.get("pid") == process.pid:
            try:
                last_status = ControlClient(started["control_url"]).get("/status")
            except StackNotRunning:
                last_status = None
            if not reverted and last_status is not None:
                # Before health counts: a leftover fault (a query path left down on a real
                # cluster's Toxiproxy, a deleted catalog row) may be why it is not healthy.
                if before_health is not None:
                    before_health(paths, progress)
                reverted = True
                continue
            failure = last_status.get("start_failure") if last_status else None
            if failure:
                stack_down(paths)
                error = StackStartFailed(failure["message"])
                error.add_note(f"last lines of {failure['log']}:\n" + (failure["log_tail"] or "(empty)"))
                raise error
            if last_status and last_status["healthy"]:
                return started
            if last_status:
                waiting = [c["name"] for c in last_status["components"] if not c["healthy"]]
                progress("waiting for " + ", ".join(waiting))
        time.sleep(0.1)
    unhealthy = (
        "; ".join(f"{c['name']}: {c['detail']}" for c in last_status["components"] if not c["healthy"])
        if last_status
        else "the stack never wrote its state file"
    )
    stack_down(paths)
    error = StackStartFailed(f"the stack was not healthy after {timeout_s:g}s: {unhealthy}")
    error.add_note(f"logs are in {paths.logs}; last lines of {log_path}:\n" + _last_lines(log_path))
    raise error


def stack_status(paths: StatePaths) -> dict[str, Any]:
    state = require_state(paths)
    status = ControlClient(state["control_url"]).get("/status")
    status["pid"] = state["pid"]
    return status


def stack_down(paths: StatePaths, *, timeout_s: float = 30.0) -> list[int]:
    """Stop the stack and every process it started. Returns pids that had to be killed.
    Stopping a directory with no stack only cleans up leftovers."""
    state = read_state(paths)
    pid: int | None = None
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(paths.pid_file.read_text().strip())
    if state is not None:
        pid = int(state["pid"])
    if pid is None:
        return clean_stale(paths)
    if state is not None:
        with contextlib.suppress(StackNotRunning):
            ControlClient(state["control_url"], timeout_s=5).post("/shutdown")
    elif alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _reap(pid)
    killed = []
    for member in group_members(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
            killed.append(member)
    _reap(pid)
    paths.state_file.unlink(missing_ok=True)
    paths.pid_file.unlink(missing_ok=True)
    return killed
