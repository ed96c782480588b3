"""Fault implementations. A spec (plain data, :mod:`datadrill.model.faults`) resolves to a
:class:`FaultPlugin`; injecting goes through the crash-safe ledger and returns a handle
whose ``revert`` is idempotent and runs whatever happens.

Example::

    ledger = FaultLedger.for_stack(stack.paths.root)
    handle = inject(DeleteCatalogEntry(at_s=0), context, ledger=ledger)
    ...
    handle.revert()     # re-registers the table if the recovery has not
"""

from datadrill.faults.base import DrillContext, FaultHandle, FaultPlugin
from datadrill.faults.ledger import FaultLedger, cleanup, inject

__all__ = ["DrillContext", "FaultHandle", "FaultLedger", "FaultPlugin", "cleanup", "inject"]
