"""Declared components (``[components.NAME]`` with a ``command``): your pipeline's own
processes, which the stack process starts under its supervisor beside (or instead of) the
reference platform.

Three things the stack needs to run one, each small enough to test on its own:

- :class:`Endpoints` — the stack's real endpoints, as the placeholders name them
  (:mod:`datadrill.platform.placeholders`), and :func:`launch`: a component's command,
  environment and working directory with them expanded;
- :func:`ready_probe` — when a started component counts as ready: a line of its log
  containing a text (read from where this start began), a TCP port on 127.0.0.1 that
  accepts connections, or simply running;
- :class:`StartupWatch` — what ``stack up`` waits for: every component ready within its
  ``ready.timeout_s``; a component that does not get there, or keeps exiting, fails the
  start with one line naming it and what was waited for.

Example::

    values = Endpoints(bootstrap_servers="127.0.0.1:9092", ...).values()
    run = launch("enricher", config.components["enricher"], values, source="datadrill.toml")
    supervisor.add("enricher", list(run.argv), env=run.env, cwd=run.cwd,
                   ready=ready_probe(component.ready, paths.log("enricher")), die_with_parent=True)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from datadrill.config import ComponentConfig, ReadyCheck, StackConfig
from datadrill.platform.placeholders import NAMES, expand, expand_all
from datadrill.platform.supervisor import ProcessStatus, ReadyProbe

# A component that exits this often before it was ever ready fails `stack up` at once,
# instead of after its whole readiness timeout.
START_EXITS = 3
# How much of an unfinished log line a log probe keeps between reads.
_MAX_LINE_BYTES = 64 * 1024
# A port probe's connect timeout (127.0.0.1: a refusal comes back at once).
_CONNECT_TIMEOUT_S = 0.25


@dataclass(frozen=True)
class Endpoints:
    """The values of the placeholders on a running stack. ``schema_registry_url`` is None
    where the stack has none (the embedded stack): naming it is then an error."""

    bootstrap_servers: str
    catalog_uri: str  # the SQLAlchemy URI the platform uses (through the catalog proxy)
    catalog_warehouse: str  # file:// or s3:// URI, as pyiceberg takes it
    query_url: str  # Trino's client protocol (through the query proxy)
    connect_url: str
    metrics_url: str
    state_dir: str
    catalog_name: str  # pyiceberg's SQL catalog keys its tables by this name
    python: str  # the interpreter datadrill runs on
    schema_registry_url: str | None = None

    def values(self) -> dict[str, str | None]:
        values: dict[str, str | None] = {
            "kafka.bootstrap_servers": self.bootstrap_servers,
            "catalog.uri": self.catalog_uri,
            "catalog.name": self.catalog_name,
            "catalog.warehouse": self.catalog_warehouse,
            "query.url": self.query_url,
            "connect.url": self.connect_url,
            "schema_registry.url": self.schema_registry_url,
            "metrics.url": self.metrics_url,
            "state_dir": self.state_dir,
            "python": self.python,
        }
        assert set(values) == set(NAMES), "every placeholder has a value here"
        return values


def available_values(config: StackConfig) -> dict[str, str | None]:
    """Which placeholders a stack of ``config`` will have a value for, known before it
    starts (the values themselves, ports, come later): every endpoint but a Schema
    Registry, which only an external cluster has."""
    values: dict[str, str | None] = dict.fromkeys(NAMES, "-")
    external = config.external
    values["schema_registry.url"] = "-" if external is not None and external.schema_registry_url else None
    return values


@dataclass(frozen=True)
class Launch:
    """A declared component's process, placeholders expanded."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str


def launch(
    name: str, component: ComponentConfig, values: Mapping[str, str | None], *, source: str
) -> Launch:
    """``component``'s command, environment and working directory with the stack's
    ``values`` expanded; ConfigError (file, field, placeholder) for one the stack lacks.

    Python components get ``PYTHONUNBUFFERED=1`` unless the environment says otherwise:
    their output goes to a log file, where block buffering would hide a readiness line
    (and a crash's last words) for kilobytes."""
    field = f"components.{name}"
    argv = tuple(
        expand(arg, values, source=source, field=f"{field}.command[{index}]")
        for index, arg in enumerate(component.command)
    )
    env = {"PYTHONUNBUFFERED": os.environ.get("PYTHONUNBUFFERED", "1")}
    env.update(expand_all(component.env, values, source=source, field=f"{field}.env"))
    cwd = expand(component.cwd, values, source=source, field=f"{field}.cwd")
    return Launch(argv, env, cwd)


def check_placeholders(config: StackConfig, *, source: str) -> None:
    """ConfigError, before any process starts, for a placeholder this stack will have no
    value for (``{schema_registry.url}`` on the embedded stack)."""
    values = available_values(config)
    for name, component in config.components.items():
        if component.command:
            launch(name, component, values, source=source)


# -- readiness -------------------------------------------------------------------------------
class LogReady:
    """Ready once a line of the log written since this start contains ``text``."""

    def __init__(self, text: str, log_path: Path) -> None:
        self.text = text
        self.log_path = log_path
        self._needle = text.encode("utf-8")
        self._offset = 0
        self._carry = b""

    @property
    def waiting_for(self) -> str:
        return f"a line containing {self.text!r} in logs/{self.log_path.name}"

    def begin(self) -> None:
        try:
            self._offset = self.log_path.stat().st_size
        except FileNotFoundError:
            self._offset = 0
        self._carry = b""

    def check(self) -> bool:
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                if size < self._offset:  # truncated by someone: read it from the start
                    self._offset, self._carry = 0, b""
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return False
        self._offset += len(data)
        lines = (self._carry + data).split(b"\n")
        # The last piece has no newline yet: searched now, and kept for the next read.
        self._carry = lines[-1][-_MAX_LINE_BYTES:]
        return any(self._needle in line for line in lines)


class PortReady:
    """Ready once 127.0.0.1:``port`` accepts a TCP connection."""

    def __init__(self, port: int) -> None:
        self.port = port

    @property
    def waiting_for(self) -> str:
        return f"127.0.0.1:{self.port} to accept connections"

    def begin(self) -> None:
        pass

    def check(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=_CONNECT_TIMEOUT_S):
                return True
        except OSError:
            return False


class RunningReady:
    """Ready as soon as it runs (no ``ready`` setting)."""

    waiting_for = "the process to run"

    def begin(self) -> None:
        pass

    def check(self) -> bool:
        return True


def ready_probe(check: ReadyCheck, log_path: Path) -> ReadyProbe:
    if check.log:
        return LogReady(check.log, log_path)
    if check.port:
        return PortReady(check.port)
    return RunningReady()


# -- start-up --------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartupFailure:
    component: str
    message: str


class StartupWatch:
    """Declared components that must get ready before the stack counts as started, each
    within its own timeout from ``now``.

    Example::

        watch = StartupWatch({"enricher": 60.0}, now=clock.monotonic())
        failure = watch.update(supervisor.status(), now=clock.monotonic())   # None: all fine
        watch.done        # True once every one was ready once
    """

    def __init__(self, timeouts: Mapping[str, float], *, now: float) -> None:
        self._timeouts = dict(timeouts)
        self._deadlines = {name: now + timeout for name, timeout in timeouts.items()}

    @property
    def done(self) -> bool:
        return not self._deadlines

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(self._deadlines)

    def update(self, statuses: Iterable[ProcessStatus], *, now: float) -> StartupFailure | None:
        """Forget the components that are ready; the first one that is late, or keeps
        exiting, as a failure (then the watch is done)."""
        for proc in statuses:
            deadline = self._deadlines.get(proc.name)
            if deadline is None:
                continue
            if proc.ready:
                del self._deadlines[proc.name]
                continue
            waiting_for = proc.waiting_for or "the process to run"
            exits = proc.restarts + (1 if not proc.running and proc.last_exit is not None else 0)
            if exits >= START_EXITS:
                message = (
                    f"component {proc.name} exited {exits} times before it was ready "
                    f"(last: {proc.last_exit}); waited for {waiting_for}"
                )
            elif now >= deadline:
                state = f"running as pid {proc.pid}" if proc.running else f"not running (last exit: {proc.last_exit})"
                message = (
                    f"component {proc.name} was not ready after {self._timeouts[proc.name]:g}s: "
                    f"waited for {waiting_for}; it is {state}"
                )
            else:
                continue
            self._deadlines.clear()
            return StartupFailure(proc.name, message)
        return None
