"""A conformance check a fault plugin (ours or a third party's) runs against itself.

It injects the fault through the ledger on a live stack, then checks what datadrill relies
on: the spec declares the plugin's kind; ``target()`` describes the target before anything
is applied and leaves the run directory and the ledger as they were; prepare's undo data
survives a JSON round trip (cleanup after a SIGKILL reads it back from the ledger);
``confirm()`` refuses, within a short bound, data that was prepared and never applied (a
confirm that always passes checks nothing) and sees the effect once it is applied; revert
works from the ledger's copy alone; revert is idempotent; the ledger ends with nothing
outstanding.

Example::

    problems = check_plugin(MyFault(), MyFaultSpec(at_s=0), context)
    assert not problems, problems
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datadrill.errors import FaultNotLanded
from datadrill.faults.base import DrillContext, FaultPlugin, RevertData
from datadrill.faults.ledger import FaultLedger
from datadrill.faults.registry import not_a_plugin

# within_s of the confirm on data never applied: it must give up about this soon...
UNAPPLIED_WITHIN_S = 1.0
# ...give or take one look's own request (a metadata request, a connect), bounded too.
UNAPPLIED_SLACK_S = 5.0
# within_s of the confirm after apply, as a run allows (a restart, a broker leaving the
# metadata).
LANDING_WITHIN_S = 10.0


def check_plugin(
    plugin: Any,
    spec: Any,
    context: DrillContext,
    *,
    ledger: FaultLedger | None = None,
    landing_within_s: float = LANDING_WITHIN_S,
) -> list[str]:
    """Returns the problems found (empty when the plugin conforms)."""
    problems: list[str] = []
    if not isinstance(plugin, FaultPlugin):
        return [not_a_plugin(plugin)]
    if not isinstance(spec, plugin.spec_type):
        problems.append(
            f"spec {spec!r} is not an instance of the plugin's spec_type {plugin.spec_type.__name__}"
        )
    if getattr(spec, "kind", None) != plugin.kind:
        problems.append(f"spec.kind {getattr(spec, 'kind', None)!r} differs from plugin.kind {plugin.kind!r}")
    for attribute in ("at_s", "describe"):
        if not hasattr(spec, attribute):
            problems.append(f"spec has no {attribute!r}")
    key = plugin.exclusive_key(spec)
    if key is not None and not isinstance(key, str):
        problems.append(f"exclusive_key returned {key!r}; expected a string or None")
    if problems:
        return problems
    ledger = ledger or FaultLedger.for_stack(context.stack.paths.root)
    problems.extend(_check_target(plugin, spec, context, ledger))
    data = plugin.prepare(spec, context)
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        return [*problems, f"prepare() returned undo data that is not JSON: {exc}"]
    problems.extend(_check_confirm_refuses(plugin, spec, context, data))
    fault_id = ledger.intent(plugin.kind, spec.describe(), data, context.run_dir)
    learned = plugin.apply(spec, context, data) or {}
    try:
        json.dumps(learned)
    except (TypeError, ValueError) as exc:
        problems.append(f"apply() returned undo data that is not JSON: {exc}")
        learned = {}
    ledger.applied(fault_id, learned)
    # Reverted below whatever confirm says: the check must not leave the fault in place.
    problems.extend(_check_confirm_sees(plugin, spec, context, {**data, **learned}, landing_within_s))
    # What cleanup would read back after a SIGKILL.
    (entry,) = [e for e in ledger.outstanding() if e.id == fault_id]
    first = plugin.revert(json.loads(json.dumps(entry.data)), context)
    if not isinstance(first, str):
        problems.append(f"revert() returned {first!r}; expected a note (str)")
    try:
        plugin.revert(json.loads(json.dumps(entry.data)), context)
    except Exception as exc:  # noqa: BLE001 - a second revert must be harmless; report why not
        problems.append(f"revert() is not idempotent: the second call raised {type(exc).__name__}: {exc}")
    ledger.reverted(fault_id, "conformance check")
    if any(e.id == fault_id for e in ledger.outstanding()):
        problems.append("the ledger still lists the fault after revert")
    return problems


def _files(root: Path) -> dict[str, tuple[int, int]]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
        for p in root.rglob("*")
    }


def _check_target(plugin: FaultPlugin, spec: Any, context: DrillContext, ledger: FaultLedger) -> list[str]:
    """target() answers a str before apply and leaves the run directory and the ledger alone."""
    problems = []
    run_dir_before = _files(context.run_dir)
    ledger_before = ledger.path.read_bytes() if ledger.path.exists() else None
    try:
        where = plugin.target(spec, context)
    except Exception as exc:  # noqa: BLE001 - a conformance check reports, it does not crash
        problems.append(f"target() raised {type(exc).__name__}: {exc}")
    else:
        if not isinstance(where, str) or not where.strip():
            problems.append(f"target() returned {where!r}; expected a description (a non-empty str)")
    changed = sorted(set(_files(context.run_dir).items()) ^ set(run_dir_before.items()))
    if changed:
        names = sorted({name for name, _ in changed})
        problems.append(f"target() changed the run directory {context.run_dir}: {', '.join(names)}")
    if (ledger.path.read_bytes() if ledger.path.exists() else None) != ledger_before:
        problems.append("target() wrote to the fault ledger")
    return problems


def _check_confirm_refuses(
    plugin: FaultPlugin, spec: Any, context: DrillContext, data: RevertData
) -> list[str]:
    """confirm() on prepared, never applied data raises FaultNotLanded, and soon."""
    began = context.clock.monotonic()
    try:
        note = plugin.confirm(spec, context, dict(data), UNAPPLIED_WITHIN_S)
    except FaultNotLanded:
        took = context.clock.monotonic() - began
        if took > UNAPPLIED_WITHIN_S + UNAPPLIED_SLACK_S:
            return [
                f"confirm(within_s={UNAPPLIED_WITHIN_S:g}) took {took:.1f} s to give up on a fault "
                "never applied; it must stay near within_s"
            ]
        return []
    except Exception as exc:  # noqa: BLE001 - a conformance check reports, it does not crash
        return [
            f"confirm() on a fault never applied raised {type(exc).__name__}: {exc}; "
            "expected FaultNotLanded"
        ]
    return [
        f"confirm() passed on a fault that was never applied ({note!r}): it must look at the "
        "stack for the effect, or it checks nothing"
    ]


def _check_confirm_sees(
    plugin: FaultPlugin, spec: Any, context: DrillContext, data: RevertData, within_s: float
) -> list[str]:
    """confirm() after apply returns a note of what it saw."""
    try:
        note = plugin.confirm(spec, context, data, within_s)
    except FaultNotLanded as exc:
        return [f"confirm() did not see the applied fault: {exc}"]
    except Exception as exc:  # noqa: BLE001 - a conformance check reports, it does not crash
        return [f"confirm() after apply raised {type(exc).__name__}: {exc}"]
    if not isinstance(note, str) or not note.strip():
        return [f"confirm() returned {note!r}; expected a note of what it saw (a non-empty str)"]
    return []
