"""A conformance check a fault plugin (ours or a third party's) runs against itself.

It injects the fault through the ledger on a live stack, then checks what datadrill relies
on: the spec declares the plugin's kind; prepare's undo data survives a JSON round trip
(cleanup after a SIGKILL reads it back from the ledger); revert works from that copy alone;
revert is idempotent; the ledger ends with nothing outstanding.

Example::

    problems = check_plugin(MyFault(), MyFaultSpec(at_s=0), context)
    assert not problems, problems
"""

from __future__ import annotations

import json
from typing import Any

from datadrill.faults.base import DrillContext, FaultPlugin
from datadrill.faults.ledger import FaultLedger


def check_plugin(
    plugin: Any, spec: Any, context: DrillContext, *, ledger: FaultLedger | None = None
) -> list[str]:
    """Returns the problems found (empty when the plugin conforms)."""
    problems: list[str] = []
    if not isinstance(plugin, FaultPlugin):
        return ["does not implement FaultPlugin (kind, spec_type, prepare, apply, revert, exclusive_key)"]
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
    data = plugin.prepare(spec, context)
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        return [f"prepare() returned undo data that is not JSON: {exc}"]
    fault_id = ledger.intent(plugin.kind, spec.describe(), data, context.run_dir)
    learned = plugin.apply(spec, context, data) or {}
    try:
        json.dumps(learned)
    except (TypeError, ValueError) as exc:
        problems.append(f"apply() returned undo data that is not JSON: {exc}")
        learned = {}
    ledger.applied(fault_id, learned)
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
