"""Runbook actions, each timed as its own phase by the runner. Steps are found by kind in
:mod:`datadrill.recovery.registry` (built-ins and ``datadrill.recovery`` entry points).

Example::

    result = run_step(RestoreCatalogBackup(backup="nightly"), context)
    result.detail   # "dwh.orders restored to snapshot 123… (18,000 rows), a backup taken 41.2 s earlier"
"""

from datadrill.recovery.registry import register_step, run_step, unregister_step
from datadrill.recovery.result import StepResult

__all__ = ["StepResult", "register_step", "run_step", "unregister_step"]
