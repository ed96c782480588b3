"""The run lease: one drill at a time per stack, and faults that revert themselves when the
run that applied them stops renewing its lease.

A runner acquires the lease before it touches the stack and renews it while it lives. The
faults it applies are filed in the fault ledger under its run id. When the lease is not
renewed for ``lease_s`` seconds (the runner was SIGKILLed, a laptop lid closed, a CI job
was cancelled), the stack process runs the reaper (``python -m datadrill.reaper``)
in a child process, which reverts that run's outstanding faults from the ledger and marks
them ``reverted by lease expiry`` (:mod:`datadrill.reaper`). Until the reaper finishes, the lease stays taken (state
``reverting``) so a new run cannot start on a half-reverted stack.

The reaper is a separate process for two reasons: the stack process does not import fault
plugins (the layering keeps stack/ and backends/ below faults/), and a revert that hangs
must not hang the stack's control API, which the reaper itself reverts through.

Example::

    leases = RunLeases(clock, reaper=lambda lease: ReapResult(...))
    leases.acquire({"run_id": "a1", "scenario": "metadata-loss", "pid": 42, "lease_s": 10})
    leases.renew("a1")
    leases.tick()          # in the stack process's loop: reaps an expired lease
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datadrill.clock import Clock
from datadrill.errors import RunLeaseHeld, RunLeaseLost
from datadrill.procs import alive, pid_namespace

# A reaper that has not finished after this long is killed: the lease is freed and the
# ledger keeps whatever it could not revert for `datadrill cleanup`.
REAPER_TIMEOUT_S = 300.0
MIN_LEASE_S = 1.0
MAX_LEASE_S = 3600.0


@dataclass
class RunLease:
    run_id: str
    scenario: str
    pid: int
    run_dir: str
    lease_s: float
    since_wall: float
    renewed_mono: float
    state: str = "held"  # "held", then "reverting" once expired
    expired_wall: float | None = None
    pid_ns: str | None = None  # the runner's pid namespace: its pid means something here only if ours
    why_expired: str = ""

    def expires_in(self, now_mono: float) -> float:
        return self.renewed_mono + self.lease_s - now_mono

    def describe(self) -> str:
        return f"run {self.run_id} of scenario {self.scenario!r} (pid {self.pid})"

    def to_json(self, now_mono: float) -> dict[str, Any]:
        return {
            **asdict(self),
            "expires_in_s": round(self.expires_in(now_mono), 3) if self.state == "held" else None,
        }


@dataclass(frozen=True)
class ReapResult:
    """What the reaper reverted (one dict per fault: kind, description, note, ok)."""

    reverted: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


Reaper = Callable[[RunLease], ReapResult]


class RunLeases:
    def __init__(
        self, clock: Clock, *, reaper: Reaper, on_event: Callable[..., None] | None = None
    ) -> None:
        self.clock = clock
        self.reaper = reaper
        self.on_event = on_event or (lambda name, **fields: None)
        self._lock = threading.Lock()
        self._lease: RunLease | None = None

    def current(self) -> dict[str, Any]:
        with self._lock:
            lease = self._lease
            return {"lease": lease.to_json(self.clock.monotonic()) if lease else None}

    def acquire(self, body: dict[str, Any]) -> dict[str, Any]:
        lease_s = float(body.get("lease_s", 10.0))
        if not MIN_LEASE_S <= lease_s <= MAX_LEASE_S:
            raise ValueError(f"lease_s must be within {MIN_LEASE_S:g}..{MAX_LEASE_S:g} s, got {lease_s:g}")
        with self._lock:
            now = self.clock.monotonic()
            held = self._lease
            if held is not None and held.run_id != str(body["run_id"]):
                raise RunLeaseHeld(self._held_message(held, now), holder=held.to_json(now))
            self._lease = RunLease(
                run_id=str(body["run_id"]),
                scenario=str(body.get("scenario", "")),
                pid=int(body.get("pid", 0)),
                run_dir=str(body.get("run_dir", "")),
                pid_ns=body.get("pid_ns"),
                lease_s=lease_s,
                since_wall=self.clock.wall(),
                renewed_mono=now,
            )
            lease = self._lease
        self.on_event("run_lease_acquired", run_id=lease.run_id, scenario=lease.scenario, pid=lease.pid)
        return {"lease": lease.to_json(now)}

    def _held_message(self, held: RunLease, now: float) -> str:
        from datetime import UTC, datetime

        since = datetime.fromtimestamp(held.since_wall, tz=UTC).isoformat(timespec="seconds")
        if held.state == "reverting":
            return (
                f"the stack is reverting the faults of {held.describe()}, whose lease expired; "
                "try again in a moment (or pass --wait)"
            )
        return (
            f"the stack is running {held.describe()} since {since}; one drill at a time per "
            f"stack (its lease runs out in {held.expires_in(now):.1f} s unless renewed). "
            "Wait for it (--wait) or use another stack (--state-dir)"
        )

    def renew(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            now = self.clock.monotonic()
            lease = self._lease
            if lease is None or lease.run_id != run_id or lease.state != "held":
                why = (
                    "its lease expired and the stack reverted its faults"
                    if lease is None or lease.run_id == run_id
                    else f"the stack now runs {lease.describe()}"
                )
                raise RunLeaseLost(f"run {run_id} no longer holds the stack: {why}")
            lease.renewed_mono = now
            return {"lease": lease.to_json(now)}

    def release(self, run_id: str) -> dict[str, Any]:
        with self._lock:
            lease = self._lease
            if lease is None or lease.run_id != run_id or lease.state != "held":
                return {"released": False}
            self._lease = None
        self.on_event("run_lease_released", run_id=run_id)
        return {"released": True}

    def holder_run_id(self) -> str | None:
        with self._lock:
            return self._lease.run_id if self._lease else None

    def tick(self) -> None:
        """Called from the stack process's loop: an expired lease is reaped (once). A runner
        whose process is gone (SIGKILL on this machine) does not need the lease to run out:
        nobody can renew it any more."""
        with self._lock:
            lease = self._lease
            if lease is None or lease.state != "held":
                return
            if lease.expires_in(self.clock.monotonic()) <= 0:
                why = f"not renewed for {lease.lease_s:g} s"
            elif _process_gone(lease):
                why = f"the runner's process (pid {lease.pid}) is gone"
            else:
                return
            lease.state = "reverting"
            lease.expired_wall = self.clock.wall()
            lease.why_expired = why
        self.on_event(
            "run_lease_expired", run_id=lease.run_id, scenario=lease.scenario, pid=lease.pid, why=why
        )
        threading.Thread(target=self._reap, args=(lease,), name=f"reaper-{lease.run_id}", daemon=True).start()

    def _reap(self, lease: RunLease) -> None:
        try:
            result = self.reaper(lease)
        except Exception as exc:  # noqa: BLE001 - the lease must be freed whatever happened
            result = ReapResult(error=f"{type(exc).__name__}: {exc}")
        self.on_event(
            "run_lease_reverted",
            run_id=lease.run_id,
            reverted=result.reverted,
            error=result.error,
        )
        with self._lock:
            if self._lease is lease:
                self._lease = None


def _process_gone(lease: RunLease) -> bool:
    if lease.pid <= 0 or lease.pid_ns is None or lease.pid_ns != pid_namespace():
        return False
    # A zombie (killed, not yet reaped by its parent) renews nothing either.
    return not alive(lease.pid)


def reaper_process(state_dir: Path, log_path: Path) -> Reaper:
    """The reaper as a child process: ``python -m datadrill.reaper``; its last stdout
    line is a JSON list of what it reverted, its log goes to ``log_path``."""

    def reap(lease: RunLease) -> ReapResult:
        argv = [
            sys.executable,
            "-m",
            "datadrill.reaper",
            "--state-dir",
            str(state_dir),
            "--run-id",
            lease.run_id,
            "--run-dir",
            lease.run_dir,
            "--lease-s",
            str(lease.lease_s),
        ]
        with log_path.open("ab") as log:
            try:
                done = subprocess.run(
                    argv, stdout=subprocess.PIPE, stderr=log, timeout=REAPER_TIMEOUT_S, check=False
                )
            except subprocess.TimeoutExpired:
                return ReapResult(error=f"the reaper did not finish within {REAPER_TIMEOUT_S:g} s")
        lines = done.stdout.decode(errors="replace").strip().splitlines()
        try:
            reverted = json.loads(lines[-1]) if lines else []
        except ValueError:
            reverted = []
        error = None if done.returncode == 0 else f"the reaper exited with {done.returncode} (see {log_path})"
        return ReapResult(reverted=reverted if isinstance(reverted, list) else [], error=error)

    return reap
