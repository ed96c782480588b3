"""Runbook actions, each timed as its own phase by the runner.

Example::

    result = run_step(RestoreCatalogBackup(backup="nightly"), context)
    result.detail   # "dwh.orders restored to snapshot 123… (18,000 rows, backup age 41.2 s)"
"""

from datadrill.recovery.steps import StepResult, run_step

__all__ = ["StepResult", "run_step"]
