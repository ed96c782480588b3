"""Supervises the platform's processes: restart on exit, with backoff, and say why.

Each exit is recorded in ``events.jsonl`` (flushed and fsync'd) with its cause ("killed
by SIGKILL", "exit code 1") and the delay before the restart, so restart-rate SLIs and
reports can count them.

A process may carry a readiness probe (:class:`ReadyProbe`: a line in its log, a port
that accepts connections): the supervisor evaluates it on each :meth:`Supervisor.poll`
after every start, records ``component_ready`` with the time it took, and reports
``ready`` in :class:`ProcessStatus`. A process started with ``die_with_parent`` is
killed by the kernel when the stack process dies (Linux: ``PR_SET_PDEATHSIG``) — for
declared components, which do not poll for their parent the way datadrill's own
processes do (:class:`~datadrill.platform.component.Component`).

Besides running, a process can be *paused* (stopped until resumed), *stopped* (Kafka
Connect's STOPPED: stopped until resumed, a state of its own) or *failed* (Connect's
FAILED task: killed by :meth:`Supervisor.fail`, with a trace, and not restarted until
:meth:`Supervisor.restart`). Kafka Connect's REST API (:mod:`datadrill.interfaces.connect_api`)
maps its connector and task states onto these.

Example::

    supervisor = Supervisor(paths, events=EventLog(paths.events_file), clock=MonotonicClock())
    supervisor.add("relay", [sys.executable, "-m", "datadrill.platform.relay", ...])
    supervisor.start_all()
    supervisor.poll()        # call periodically: restarts what exited
    supervisor.fail("sink", "task failed by datadrill fault")   # FAILED until restarted
    supervisor.restart("sink")
    supervisor.stop_all()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from datadrill import jsonl
from datadrill.clock import Clock
from datadrill.errors import ControlError
from datadrill.paths import StatePaths

# A process that stayed up this long has recovered: its next crash starts backoff afresh.
_HEALTHY_AFTER_S = 10.0
# How much of a component's log a failed task's trace carries (Connect's trace is a stack
# trace: the lines just before the end say what went wrong).
_TRACE_LINES = 20
_TRACE_BYTES = 8192


class EventLog:
    """Append-only JSON lines (:mod:`datadrill.jsonl`), one fsync per event, safe across
    threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: dict[str, Any]) -> None:
        jsonl.append_record(self.path, event, sort_keys=True)

    def read(self) -> list[dict[str, Any]]:
        return jsonl.read_records(self.path, what="event log", missing_ok=True)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit code {returncode}"


def log_tail(path: Path, *, lines: int = _TRACE_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when there is none)."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - _TRACE_BYTES))
            data = log.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


class ReadyProbe(Protocol):
    """When a started process counts as ready (:mod:`datadrill.platform.declared`)."""

    @property
    def waiting_for(self) -> str:
        """What the probe waits for, for messages: "a line containing 'ready' in ..."."""
        ...

    def begin(self) -> None:
        """Called just before each start (a log probe remembers where this start begins)."""
        ...

    def check(self) -> bool:
        """True once the process is ready; called while it runs, until it is."""
        ...


@dataclass
class ProcessStatus:
    name: str
    pid: int | None
    running: bool
    paused: bool
    restarts: int
    last_exit: str | None
    uptime_s: float | None
    stopped: bool = False
    # Set while the process is FAILED (not restarted until a restart request): why.
    failed_trace: str | None = None
    # For a process with a readiness probe: ready since its last start (None: no probe).
    ready: bool | None = None
    waiting_for: str | None = None


class _Supervised:
    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        ready: ReadyProbe | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.probe = ready
        self.ready = False
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.last_exit: str | None = None
        self.restart_at: float | None = None
        self.backoff = 0.0
        self.paused = False
        self.stopped = False
        self.failed_trace: str | None = None
        self._log: IO[bytes] | None = None


class Supervisor:
    def __init__(
        self,
        paths: StatePaths,
        *,
        events: EventLog,
        clock: Clock,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.paths = paths
        self.events = events
        self.clock = clock
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._procs: dict[str, _Supervised] = {}
        self._lock = threading.RLock()
        self._stopping = False
        # The kernel's parent-death signal fires when the *thread* that forked the child
        # ends, not the process: control requests run on short-lived threads, so children
        # that die with the stack are all forked by this one long-lived thread.
        self._spawner: ThreadPoolExecutor | None = None

    def add(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        ready: ReadyProbe | None = None,
        die_with_parent: bool = False,
    ) -> None:
        """Register a process (started by :meth:`start_all` or :meth:`start`). ``env`` is
        merged over this process's environment; ``cwd`` is its working directory;
        ``ready`` decides when it counts as ready; ``die_with_parent``: killed by the
        kernel if the stack process dies (Linux)."""
        with self._lock:
            self._procs[name] = _Supervised(
                name, argv, self.paths.log(name), env=env, cwd=cwd, ready=ready, die_with_parent=die_with_parent
            )

    @property
    def names(self) -> list[str]:
        return list(self._procs)

    def _popen(self, proc: _Supervised, log: IO[bytes]) -> subprocess.Popen[bytes]:
        env = {**os.environ, **proc.env} if proc.env is not None else None
        options: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": log,
            "stderr": subprocess.STDOUT,
            "close_fds": True,
            "env": env,
            "cwd": proc.cwd,
        }
        if not proc.die_with_parent:
            return self._popen_bytes(proc.argv, **options)
        preexec = _die_with_parent_preexec()
        if self._spawner is None:
            self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="supervisor-spawn")
        return self._spawner.submit(lambda: self._popen_bytes(proc.argv, preexec_fn=preexec, **options)).result()

    @staticmethod
    def _popen_bytes(argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **options)

    def _spawn(self, proc: _Supervised) -> None:
        proc.ready = False
        if proc.probe is not None:
            proc.probe.begin()
        log = proc.log_path.open("ab")
        try:
            proc.process = self._popen(proc, log)
        except (OSError, subprocess.SubprocessError) as exc:
            # A command that cannot start (no such program, a missing working directory)
            # is an exit like any other: said in its log, retried with backoff.
            log.write(f"datadrill: cannot start {proc.argv!r}: {exc}\n".encode())
            log.close()
            proc.process = None
            self._exited(proc, f"cannot start: {exc}", None, None, 0.0, self.clock.monotonic())
            return
        log.close()  # the child holds its own descriptor
        proc.started_at = self.clock.monotonic()
        proc.restart_at = None
        self.events.append(
            {
                "event": "process_started",
                "component": proc.name,
                "pid": proc.process.pid,
                "restarts": proc.restarts,
                "mono": proc.started_at,
                "wall": self.clock.wall(),
            }
        )

    def start_all(self) -> None:
        with self._lock:
            for proc in self._procs.values():
                self._spawn(proc)

    def start(self, name: str) -> None:
        """Start one process added after :meth:`start_all` (a declared component)."""
        with self._lock:
            proc = self._get(name)
            if proc.process is None and proc.restart_at is None:
                self._spawn(proc)

    def _exited(
        self, proc: _Supervised, cause: str, pid: int | None, code: int | None, uptime: float, now: float
    ) -> None:
        """Record an exit and schedule the restart after the backoff."""
        if uptime >= _HEALTHY_AFTER_S or proc.backoff == 0:
            proc.backoff = self.backoff_initial_s
        else:
            proc.backoff = min(proc.backoff * 2, self.backoff_max_s)
        proc.last_exit = cause
        proc.restart_at = now + proc.backoff
        self.events.append(
            {
                "event": "process_exited",
                "component": proc.name,
                "pid": pid,
                "cause": cause,
                "returncode": code,
                "uptime_s": round(uptime, 3),
                "restart_in_s": proc.backoff,
                "mono": now,
                "wall": self.clock.wall(),
            }
        )

    def poll(self) -> None:
        """Notice exits and restart processes whose backoff has passed."""
        with self._lock:
            if self._stopping:
                return
            now = self.clock.monotonic()
            for proc in self._procs.values():
                if proc.paused or proc.stopped or proc.failed_trace is not None:
                    continue
                if proc.process is not None and proc.process.poll() is not None:
                    code = proc.process.returncode
                    self._exited(proc, describe_exit(code), proc.process.pid, code, now - proc.started_at, now)
                    proc.process = None
                if proc.process is None and proc.restart_at is not None and now >= proc.restart_at:
                    proc.restarts += 1
                    self._spawn(proc)
                if proc.process is not None and proc.probe is not None and not proc.ready:
                    self._check_ready(proc, now)

    def _check_ready(self, proc: _Supervised, now: float) -> None:
        assert proc.probe is not None and proc.process is not None
        if not proc.probe.check():
            return
        proc.ready = True
        self.events.append(
            {
                "event": "component_ready",
                "component": proc.name,
                "pid": proc.process.pid,
                "waited_for": proc.probe.waiting_for,
                "took_s": round(now - proc.started_at, 3),
                "restarts": proc.restarts,
                "mono": now,
                "wall": self.clock.wall(),
            }
        )

    def signal(self, name: str, signum: int) -> int:
        """Send ``signum`` to a component; returns the pid signalled."""
        with self._lock:
            proc = self._get(name)
            if proc.process is None or proc.process.poll() is not None:
                raise ControlError(f"component {name!r} is not running (restarting)")
            pid = proc.process.pid
            os.kill(pid, signum)
            return pid

    def pause(self, name: str, *, timeout_s: float = 10.0) -> None:
        """Stop a component (SIGTERM, then SIGKILL) and keep it stopped until resumed."""
        self._hold(name, "process_paused", paused=True, timeout_s=timeout_s)

    def stop(self, name: str, *, timeout_s: float = 10.0) -> None:
        """Stop a component (SIGTERM, then SIGKILL) and keep it stopped until resumed: Kafka
        Connect's STOPPED, which is not PAUSED (a stopped connector has no tasks)."""
        self._hold(name, "process_stopped", paused=False, timeout_s=timeout_s)

    def _hold(self, name: str, event: str, *, paused: bool, timeout_s: float) -> None:
        with self._lock:
            proc = self._get(name)
            proc.paused, proc.stopped = paused, not paused
            process = proc.process
            proc.process = None
            proc.restart_at = None
        if process is not None:
            _terminate(process, timeout_s)
        self.events.append(
            {
                "event": event,
                "component": name,
                "requested": True,
                "mono": self.clock.monotonic(),
                "wall": self.clock.wall(),
            }
        )

    def resume(self, name: str) -> int:
        """Start a paused (or stopped) component again; returns its pid. A failed one stays
        failed: only :meth:`restart` starts it (ControlError)."""
        with self._lock:
            proc = self._get(name)
            if not (proc.paused or proc.stopped):
                raise ControlError(f"component {name!r} is not paused")
            if proc.failed_trace is not None:
                raise ControlError(f"component {name!r} has failed; restart it to start it again")
            proc.paused = proc.stopped = False
            self._spawn(proc)
            if proc.process is None:
                raise ControlError(f"component {name!r} cannot start: {proc.last_exit}")
            return proc.process.pid

    def release(self, name: str) -> None:
        """Forget a pause or stop without starting the process: for a failed component,
        which a resume leaves failed (Kafka Connect resumes a connector's target state,
        not its failed tasks)."""
        with self._lock:
            proc = self._get(name)
            proc.paused = proc.stopped = False

    def fail(self, name: str, reason: str, *, timeout_s: float = 10.0) -> str:
        """Kill a component (SIGKILL) and keep it FAILED, not restarted, until
        :meth:`restart`. Returns the trace: ``reason``, the exit cause and the tail of the
        component's log. Recorded as ``process_failed``."""
        with self._lock:
            proc = self._get(name)
            process = proc.process
            proc.process = None
            proc.restart_at = None
            # Marked before the kill: a poll in between must not restart it.
            proc.failed_trace = reason
        pid = process.pid if process is not None else None
        cause = "not running"
        if process is not None:
            if process.poll() is None:
                process.kill()
            # A SIGKILLed process that lingers is the kernel's business; it is failed all the same.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout_s)
            cause = describe_exit(process.returncode) if process.returncode is not None else "killed"
        tail = log_tail(proc.log_path)
        trace = f"{reason}\n{name} (pid {pid}): {cause}"
        if tail:
            trace += f"\n--- last lines of logs/{proc.log_path.name} ---\n{tail}"
        with self._lock:
            proc.failed_trace = trace
            proc.last_exit = cause
        self.events.append(
            {
                "event": "process_failed",
                "component": name,
                "pid": pid,
                "cause": cause,
                "reason": reason,
                "mono": self.clock.monotonic(),
                "wall": self.clock.wall(),
            }
        )
        return trace

    def restart(self, name: str, *, timeout_s: float = 10.0) -> int | None:
        """Restart a component: a failed one leaves FAILED; a running one is stopped (SIGTERM)
        and started again; a paused or stopped one stays so (no process is started).
        Returns the new pid (None when it stays paused or stopped). Recorded as
        ``process_restarted``."""
        with self._lock:
            proc = self._get(name)
            was_failed = proc.failed_trace is not None
            proc.failed_trace = None
            process = proc.process
            proc.process = None
            proc.restart_at = None
            held = proc.paused or proc.stopped
        if process is not None:
            _terminate(process, timeout_s)
        with self._lock:
            pid = None
            if not held:
                proc.restarts += 1
                self._spawn(proc)
                pid = proc.process.pid if proc.process is not None else None
        self.events.append(
            {
                "event": "process_restarted",
                "component": name,
                "pid": pid,
                "was_failed": was_failed,
                "mono": self.clock.monotonic(),
                "wall": self.clock.wall(),
            }
        )
        return pid

    def _get(self, name: str) -> _Supervised:
        proc = self._procs.get(name)
        if proc is None:
            raise ControlError(f"unknown component {name!r}; components are {self.names}")
        return proc

    def is_paused(self, name: str) -> bool:
        with self._lock:
            return self._get(name).paused

    def status(self) -> list[ProcessStatus]:
        with self._lock:
            now = self.clock.monotonic()
            out = []
            for proc in self._procs.values():
                running = proc.process is not None and proc.process.poll() is None
                out.append(
                    ProcessStatus(
                        proc.name,
                        proc.process.pid if proc.process is not None else None,
                        running,
                        proc.paused,
                        proc.restarts,
                        proc.last_exit,
                        now - proc.started_at if running else None,
                        stopped=proc.stopped,
                        failed_trace=proc.failed_trace,
                        ready=(proc.ready and running) if proc.probe is not None else None,
                        waiting_for=proc.probe.waiting_for if proc.probe is not None else None,
                    )
                )
            return out

    def stop_all(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM everything, then SIGKILL what is left after ``timeout_s``."""
        with self._lock:
            self._stopping = True
            live = [p for p in self._procs.values() if p.process is not None]
            for proc in live:
                assert proc.process is not None
                if proc.process.poll() is None:
                    proc.process.terminate()
                    _continue(proc.process)
            deadline = time.monotonic() + timeout_s
            for proc in live:
                assert proc.process is not None
                try:
                    proc.process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.process.kill()
                    proc.process.wait()
                self.events.append(
                    {
                        "event": "process_stopped",
                        "component": proc.name,
                        "pid": proc.process.pid,
                        "cause": describe_exit(proc.process.returncode),
                        "mono": self.clock.monotonic(),
                        "wall": self.clock.wall(),
                    }
                )
                proc.process = None
            if self._spawner is not None:
                self._spawner.shutdown(wait=False)
                self._spawner = None


def _continue(process: subprocess.Popen[bytes]) -> None:
    """SIGCONT after a SIGTERM: a hung (SIGSTOPped) process only acts on the SIGTERM once
    it runs again, instead of holding its stop until the SIGKILL timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM (and SIGCONT), then SIGKILL after ``timeout_s``; waits for the exit."""
    if process.poll() is not None:
        return
    process.terminate()
    _continue(process)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _die_with_parent_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to SIGKILL the child when the thread that forks
    it (the supervisor's spawner) goes away — the stack process dying, even by SIGKILL.
    Linux only (``prctl(PR_SET_PDEATHSIG)``); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    # Resolved here, in the parent: the child runs as little Python as it can before exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    sigkill = int(signal.SIGKILL)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill)
        if os.getppid() != parent:
            # The stack died between fork and prctl: nobody would kill us later.
            os._exit(1)

    return preexec


_PR_SET_PDEATHSIG = 1
