"""Fault implementations. A spec (plain data, :mod:`datadrill.model.faults`) resolves to a
fault whose ``inject`` returns a handle; ``revert`` on the handle is idempotent and runs
whatever happens (the runner pushes every handle onto an ExitStack).

Example::

    handle = inject(DeleteCatalogEntry(at_s=0), context)
    ...
    handle.revert()     # re-registers the table if the recovery has not
"""

from datadrill.faults.base import DrillContext, FaultHandle, inject

__all__ = ["DrillContext", "FaultHandle", "inject"]
