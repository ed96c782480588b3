"""Pause and resume a platform component as runbook steps.

The runner runs these through the fault ledger instead (so a killed run's paused sink
comes back); these are what :func:`~datadrill.recovery.registry.run_step` does outside a run.
"""

from __future__ import annotations

from datadrill.faults.base import DrillContext
from datadrill.model.recovery import PauseComponent, ResumeComponent
from datadrill.recovery.result import StepResult


def run_pause_component(step: PauseComponent, context: DrillContext) -> StepResult:
    context.stack.components.pause(step.component)
    return StepResult(f"{step.component} stopped")


def run_resume_component(step: ResumeComponent, context: DrillContext) -> StepResult:
    pid = context.stack.components.resume(step.component)
    return StepResult(f"{step.component} started again (pid {pid})")
