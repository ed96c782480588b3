"""The crash-safe fault ledger: every fault is written down before it takes effect and
marked when reverted, so whatever a killed run left applied can be undone.

One ledger per stack (``<state dir>/fault-ledger.jsonl``), JSON lines, fsync'd per record:

    {"op": "intent",   "id": ..., "kind": ..., "description": ..., "data": {...}, "run_dir": ...}
    {"op": "applied",  "id": ..., "data": {...}}        # undo data learned while applying
    {"op": "reverted", "id": ..., "note": "..."}

An "intent" without "reverted" is outstanding, applied or not (the process may have died
mid-apply); reverts are idempotent, so undoing it is always safe.

Example::

    ledger = FaultLedger(paths.fault_ledger)
    handle = inject(spec, context, ledger=ledger)
    ...
    cleanup(stack)        # reverts whatever is outstanding, e.g. after a SIGKILL
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datadrill import jsonl
from datadrill.clock import MonotonicClock
from datadrill.faults.base import DrillContext, FaultPlugin, RevertData
from datadrill.paths import StatePaths


@dataclass(frozen=True)
class Outstanding:
    id: str
    kind: str
    description: str
    data: RevertData
    run_dir: str
    applied: bool


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

    def intent(self, kind: str, description: str, data: RevertData, run_dir: Path) -> str:
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
            }
        )
        return fault_id

    def applied(self, fault_id: str, data: RevertData) -> None:
        self._append({"op": "applied", "id": fault_id, "data": data})

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

    def revert(self) -> str:
        if self._note is not None:
            return self._note
        note = self.plugin.revert(self.data, self.context)
        self.ledger.reverted(self.fault_id, note)
        self._note = note
        return note


def inject(spec: Any, context: DrillContext, *, ledger: FaultLedger) -> LedgeredHandle:
    """Inject ``spec``: prepare, write the intent durably, apply, record what was learned."""
    from datadrill.faults.registry import plugin_for

    plugin = plugin_for(spec.kind)
    data = plugin.prepare(spec, context)
    description = spec.describe()
    fault_id = ledger.intent(spec.kind, description, data, context.run_dir)
    handle = LedgeredHandle(plugin, context, ledger, fault_id, dict(data), description)
    learned = plugin.apply(spec, context, data)
    if learned:
        handle.data.update(learned)
        ledger.applied(fault_id, learned)
    else:
        ledger.applied(fault_id, {})
    return handle


@dataclass(frozen=True)
class CleanupResult:
    fault_id: str
    kind: str
    description: str
    note: str
    ok: bool


def cleanup(stack: Any, *, ledger: FaultLedger | None = None) -> list[CleanupResult]:
    """Revert every outstanding fault in the stack's ledger (a killed run's leftovers)."""
    from datadrill.faults.registry import PluginError, plugin_for

    ledger = ledger or FaultLedger.for_stack(stack.paths.root)
    results = []
    # Newest first, as an ExitStack would: later changes were made on top of earlier ones.
    for entry in reversed(ledger.outstanding()):
        context = DrillContext(stack, Path(entry.run_dir or stack.paths.root), MonotonicClock())
        try:
            plugin = plugin_for(entry.kind)
            note = plugin.revert(entry.data, context)
        except PluginError as exc:
            results.append(CleanupResult(entry.id, entry.kind, entry.description, str(exc), False))
            continue
        except Exception as exc:  # noqa: BLE001 - one failed revert must not stop the others
            results.append(
                CleanupResult(entry.id, entry.kind, entry.description, f"{type(exc).__name__}: {exc}", False)
            )
            continue
        ledger.reverted(entry.id, f"cleanup: {note}")
        results.append(CleanupResult(entry.id, entry.kind, entry.description, note, True))
    return results
