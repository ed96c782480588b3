"""The fault plugin protocol and what a fault works with.

A fault is three steps, so a crash at any point can be undone:

1. ``prepare(spec, context) -> data``: no side effects; everything needed to undo the fault
   (a metadata location, a previous rate, file names). The ledger writes it down, durably,
   before anything changes.
2. ``apply(spec, context, data) -> data``: the effect; may add to the undo data.
3. ``revert(data, context) -> str``: idempotent, works from the recorded data alone, so
   ``datadrill cleanup`` can run it after the process that applied the fault was killed.

Third-party faults implement :class:`FaultPlugin` and register under the
``datadrill.faults`` entry-point group; ``datadrill.faults.conformance`` checks them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from datadrill.clock import Clock

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


class FaultHandle(Protocol):
    description: str

    def revert(self) -> str:
        """Undo the fault if it is still in effect; idempotent. Returns what it did."""
        ...
