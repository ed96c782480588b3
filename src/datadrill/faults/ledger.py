"""The crash-safe fault ledger: every fault is written down before it takes effect and
marked when reverted, so whatever a killed run left applied can be undone.

One ledger per stack (``<state dir>/fault-ledger.jsonl``), JSON lines, fsync'd per record:

    {"op": "intent",   "id": ..., "kind": ..., "description": ..., "data": {...}, "run_dir": ...,
                       "run_id": ..., "journal_id": ...}
    {"op": "applied",  "id": ..., "data": {...}}        # undo data learned while applying
    {"op": "landed",   "id": ..., "note": "..."}        # what the plugin saw take effect
    {"op": "reverted", "id": ..., "note": "..."}

An "intent" without "reverted" is outstanding, applied or not (the process may have died
mid-apply); reverts are idempotent, so undoing it is always safe. ``run_id`` is the run
lease the fault was applied under: when that lease expires the stack reverts the run's
faults (``reverted by lease expiry``), and ``cleanup`` never touches a live run's faults.

Example::

    ledger = FaultLedger(paths.fault_ledger)
    handle = inject(spec, context, ledger=ledger)
    ...
    cleanup(stack)        # reverts whatever is outstanding, e.g. after a SIGKILL
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datadrill import jsonl
from datadrill.clock import MonotonicClock
from datadrill.errors import DrillError, FaultNotLanded
from datadrill.faults.base import DrillContext, FaultPlugin, RevertData
from datadrill.paths import StatePaths

# How long a fault may take to show its effect after apply (a broker leaving the metadata,
# a process stopping) before the run calls it a fault that did not land.
LANDING_BOUND_S = 10.0


@dataclass(frozen=True)
class Outstanding:
    id: str
    kind: str
    description: str
    data: RevertData
    run_dir: str
    applied: bool
    run_id: str | None = None
    journal_id: int | None = None


class FaultLedger:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_stack(cls, state_dir: Path) -> FaultLedger:
        return cls(StatePaths(state_dir).fault_ledger)

    def _append(self, record: dict[str, Any]) -> None:
        # Two runners (or a runner and `datadrill cleanup`) may write at once: jsonl locks
        # the file for each record. Nothing is held open between records.
        jsonl.append_record(self.path, record, default=str)

    def intent(
        self,
        kind: str,
        description: str,
        data: RevertData,
        run_dir: Path,
        *,
        run_id: str | None = None,
        journal_id: int | None = None,
    ) -> str:
        fault_id = uuid.uuid4().hex[:12]
        self._append(
            {
                "op": "intent",
                "id": fault_id,
                "kind": kind,
                "description": description,
                "data": data,
                "run_dir": str(run_dir),
                "pid": os.getpid(),
                "run_id": run_id,
                "journal_id": journal_id,
            }
        )
        return fault_id

    def applied(self, fault_id: str, data: RevertData) -> None:
        self._append({"op": "applied", "id": fault_id, "data": data})

    def landed(self, fault_id: str, note: str) -> None:
        self._append({"op": "landed", "id": fault_id, "note": note})

    def reverted_note(self, fault_id: str) -> str | None:
        """The note of the fault's revert, if anyone (the stack's reaper, cleanup) did it."""
        note = None
        for record in self.records():
            if record.get("op") == "reverted" and record.get("id") == fault_id:
                note = str(record.get("note", ""))
        return note

    def reverted(self, fault_id: str, note: str) -> None:
        self._append({"op": "reverted", "id": fault_id, "note": note})

    def records(self) -> list[dict[str, Any]]:
        # A torn last line is a record whose writer died mid-write, before its effect
        # (intents are written before applying): ignored, as jsonl does for every file.
        return jsonl.read_records(
            self.path,
            what="fault ledger",
            expected="a fault ledger record (one JSON object)",
            missing_ok=True,
        )

    def outstanding(self) -> list[Outstanding]:
        intents: dict[str, dict[str, Any]] = {}
        applied: dict[str, RevertData] = {}
        done: set[str] = set()
        for record in self.records():
            op, fault_id = record.get("op"), str(record.get("id"))
            if op == "intent":
                intents[fault_id] = record
            elif op == "applied":
                applied[fault_id] = record.get("data", {})
            elif op == "reverted":
                done.add(fault_id)
        return [
            Outstanding(
                id=fault_id,
                kind=record["kind"],
                description=record.get("description", ""),
                data={**record.get("data", {}), **applied.get(fault_id, {})},
                run_dir=record.get("run_dir", ""),
                applied=fault_id in applied,
                run_id=record.get("run_id"),
                journal_id=record.get("journal_id"),
            )
            for fault_id, record in intents.items()
            if fault_id not in done
        ]


@dataclass
class LedgeredHandle:
    """A fault in effect: reverting it runs the plugin's revert and marks the ledger."""

    plugin: FaultPlugin
    context: DrillContext
    ledger: FaultLedger
    fault_id: str
    data: RevertData
    description: str
    _note: str | None = None

    landed: str = ""

    def revert(self) -> str:
        if self._note is not None:
            return self._note
        # Someone else may have reverted it already: the stack, when this run's lease
        # expired. Reverting again could undo a later run's fault on the same target.
        done = self.ledger.reverted_note(self.fault_id)
        if done is not None:
            self._note = f"already reverted ({done})"
            return self._note
        note = self.plugin.revert(self.data, self.context)
        self.ledger.reverted(self.fault_id, note)
        self._note = note
        return note


def inject(
    spec: Any,
    context: DrillContext,
    *,
    ledger: FaultLedger,
    journal_id: int | None = None,
    landing_bound_s: float = LANDING_BOUND_S,
) -> LedgeredHandle:
    """Inject ``spec``: prepare, write the intent durably, apply, record what was learned,
    then check that the effect took hold. A fault that did not land is reverted at once
    and raises :class:`~datadrill.errors.FaultNotLanded`: a run must not go on measuring
    nothing."""
    from datadrill.faults.registry import plugin_for

    plugin = plugin_for(spec.kind)
    data = plugin.prepare(spec, context)
    description = spec.describe()
    fault_id = ledger.intent(
        spec.kind, description, data, context.run_dir, run_id=context.run_id, journal_id=journal_id
    )
    handle = LedgeredHandle(plugin, context, ledger, fault_id, dict(data), description)
    learned = plugin.apply(spec, context, data)
    if learned:
        handle.data.update(learned)
        ledger.applied(fault_id, learned)
    else:
        ledger.applied(fault_id, {})
    confirm = getattr(plugin, "confirm", None)
    if confirm is None:
        handle.landed = "not checked: the plugin has no confirm()"
        return handle
    try:
        handle.landed = str(confirm(spec, context, dict(handle.data), landing_bound_s))
    except FaultNotLanded:
        # A failed revert stays outstanding in the ledger for cleanup; the cause to report
        # is that the fault did not land.
        with contextlib.suppress(DrillError):
            handle.revert()
        raise
    ledger.landed(fault_id, handle.landed)
    return handle


@dataclass(frozen=True)
class CleanupResult:
    fault_id: str
    kind: str
    description: str
    note: str
    ok: bool
    skipped: bool = False  # kept: it belongs to a run that is still alive
    journal_id: int | None = None
    run_dir: str = ""


def _live_run(stack: Any) -> str | None:
    """The run id holding the stack's run lease (held, or being reverted by the stack)."""
    from datadrill.errors import ControlError

    try:
        holder = stack.runs.holder()
    except ControlError:
        return None  # a stack process of an older version: no leases
    return None if holder is None else str(holder.run_id)


def cleanup(
    stack: Any,
    *,
    ledger: FaultLedger | None = None,
    run_id: str | None = None,
    note_prefix: str = "cleanup",
) -> list[CleanupResult]:
    """Revert the outstanding faults in the stack's ledger: those of ``run_id`` (the stack's
    reaper, once that run's lease expired), or else every fault of a run that is dead —
    never the faults of the run holding the stack's lease, which are reported as skipped."""
    from datadrill.faults.registry import PluginError, plugin_for

    ledger = ledger or FaultLedger.for_stack(stack.paths.root)
    live = None if run_id is not None else _live_run(stack)
    results = []
    # Newest first, as an ExitStack would: later changes were made on top of earlier ones.
    for entry in reversed(ledger.outstanding()):
        if run_id is not None and entry.run_id != run_id:
            continue
        if live is not None and entry.run_id == live:
            results.append(
                CleanupResult(
                    entry.id,
                    entry.kind,
                    entry.description,
                    f"kept: it belongs to the live run {live}",
                    True,
                    skipped=True,
                    journal_id=entry.journal_id,
                    run_dir=entry.run_dir,
                )
            )
            continue
        context = DrillContext(stack, Path(entry.run_dir or stack.paths.root), MonotonicClock())
        try:
            plugin = plugin_for(entry.kind)
            note = plugin.revert(entry.data, context)
        except PluginError as exc:
            note, ok = str(exc), False
        except Exception as exc:  # noqa: BLE001 - one failed revert must not stop the others
            note, ok = f"{type(exc).__name__}: {exc}", False
        else:
            ok = True
            ledger.reverted(entry.id, f"{note_prefix}: {note}")
        results.append(
            CleanupResult(
                entry.id,
                entry.kind,
                entry.description,
                note,
                ok,
                journal_id=entry.journal_id,
                run_dir=entry.run_dir,
            )
        )
    return results
