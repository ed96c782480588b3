"""The fault plugin protocol and what a fault works with.

A fault is three steps, so a crash at any point can be undone:

1. ``prepare(spec, context) -> data``: no side effects; everything needed to undo the fault
   (a metadata location, a previous rate, file names). The ledger writes it down, durably,
   before anything changes.
2. ``apply(spec, context, data) -> data``: the effect; may add to the undo data.
3. ``revert(data, context) -> str``: idempotent, works from the recorded data alone, so
   ``datadrill cleanup`` can run it after the process that applied the fault was killed.

Two more make a fault checkable:

- ``confirm(spec, context, data, within_s) -> str``: after apply, look at the stack from
  the outside until the effect shows (a catalog row gone, a broker missing from the
  metadata, a new pid) and say what was seen; raise :class:`FaultNotLanded` if it does not
  show within ``within_s``. A run that measured a fault which never took hold would report
  a resilience it never tested.
- ``target(spec, context) -> str``: what the fault would hit on this stack, for a person
  ("broker 2 of 3 (127.0.0.1:40411)"), changing nothing; :class:`ConfigError` when the
  target does not exist. ``datadrill run --dry-run`` prints it.

Third-party faults implement :class:`FaultPlugin` and register under the
``datadrill.faults`` entry-point group; ``datadrill.faults.conformance`` checks them.

Example::

    note = plugin.confirm(spec, context, {**prepared, **applied}, within_s=10)
    # "catalog has no row for dwh.orders"
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from datadrill.clock import Clock
from datadrill.errors import FaultNotLanded

if TYPE_CHECKING:
    from datadrill.stack.port import Stack

RevertData = dict[str, Any]
# A long step's progress: (units done so far, units in all or None when unknown, unit name).
Progress = Callable[[int, int | None, str], None]


@dataclass(frozen=True)
class DrillContext:
    """The stack under test and where this run keeps its files."""

    stack: Stack
    run_dir: Path
    clock: Clock
    # The run lease this run holds on the stack (None outside a run): the ledger files every
    # fault under it, so the stack process reverts them when the lease expires.
    run_id: str | None = None
    # Where long steps (replay, reconciliation) report how far they are (the live view).
    progress: Progress | None = None

    def report_progress(self, done: int, total: int | None = None, unit: str = "rows") -> None:
        if self.progress is not None:
            self.progress(done, total, unit)

    @property
    def quarantine(self) -> Path:
        """Where deleted files wait, so a fault can always be reverted."""
        path = self.run_dir / "quarantine"
        path.mkdir(parents=True, exist_ok=True)
        return path


@runtime_checkable
class FaultPlugin(Protocol):
    """One kind of fault. ``spec_type`` is the frozen dataclass scenarios declare it with;
    its ``kind`` field equals ``kind``."""

    kind: str
    spec_type: type[Any]

    def prepare(self, spec: Any, context: DrillContext) -> RevertData: ...

    def apply(self, spec: Any, context: DrillContext, data: RevertData) -> RevertData: ...

    def revert(self, data: RevertData, context: DrillContext) -> str: ...

    def exclusive_key(self, spec: Any) -> str | None:
        """Faults with the same key must not overlap in time (None: no constraint)."""
        ...

    def confirm(self, spec: Any, context: DrillContext, data: RevertData, within_s: float) -> str:
        """After apply: wait up to ``within_s`` seconds for the effect to show, seen from
        outside the plugin, and return what was seen. ``data`` is prepare's and apply's
        undo data merged. Raises :class:`FaultNotLanded` saying what was expected and
        what was seen instead; it must raise for data that was prepared and never applied."""
        ...

    def target(self, spec: Any, context: DrillContext) -> str:
        """What the fault would hit on this stack, described for a person; changes nothing
        (no files, no directories: not even ``context.quarantine``). Raises
        :class:`~datadrill.errors.ConfigError` when the target is missing."""
        ...


@dataclass(frozen=True)
class Seen:
    """One look at the stack while confirming a fault: did the effect show, and what was
    seen (the note returned when it did, the "saw ..." of the error when it never does)."""

    landed: bool
    what: str


# The first look comes at once; later ones back off to this interval, so a confirm costs
# the stack a few requests per second at most.
CONFIRM_FIRST_INTERVAL_S = 0.05
CONFIRM_MAX_INTERVAL_S = 0.5


def await_effect(
    context: DrillContext, within_s: float, *, expected: str, look: Callable[[], Seen]
) -> str:
    """Look until the effect shows (at least once, even with ``within_s`` 0) and return
    what was seen; raise :class:`FaultNotLanded` naming ``expected`` and the last sight.

    A look that raises counts as "not yet" (the stack may be busy with the very fault);
    its error is what was seen, and the last one is chained.

    Example::

        await_effect(context, 10, expected="broker 2 missing from the cluster metadata",
                     look=lambda: Seen(2 not in brokers(), f"brokers {sorted(brokers())}"))
    """
    clock = context.clock
    deadline = clock.monotonic() + within_s
    interval = CONFIRM_FIRST_INTERVAL_S
    looks = 0
    last_error: Exception | None = None
    while True:
        looks += 1
        try:
            seen = look()
        except Exception as exc:  # noqa: BLE001 - a failing look is "not yet"; reported below
            last_error, last = exc, f"{type(exc).__name__}: {exc}"
        else:
            if seen.landed:
                return seen.what
            last_error, last = None, seen.what
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise FaultNotLanded(
                f"expected {expected} within {within_s:g} s; saw {last} "
                f"({looks} look{'s' if looks != 1 else ''})"
            ) from last_error
        clock.sleep(min(interval, remaining))
        interval = min(interval * 2, CONFIRM_MAX_INTERVAL_S)


def look_timeout(within_s: float) -> float:
    """The timeout of one look's own request (a metadata request, a TCP connect): short, so
    a confirm overruns ``within_s`` by little, and never zero."""
    return max(0.2, min(2.0, within_s))


def refuses_connections(address: str, *, timeout_s: float) -> bool:
    """Does the listener at ``host:port`` refuse a TCP connection (or reset it at once)?"""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return False
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except OSError:
        return False  # a timeout or an unreachable host says nothing about the listener


class FaultHandle(Protocol):
    description: str

    def revert(self) -> str:
        """Undo the fault if it is still in effect; idempotent. Returns what it did."""
        ...
