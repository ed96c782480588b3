"""Pause, resume and restart connectors and components as runbook steps.

A connector (the relay, the sink, or a Kafka Connect cluster's connector named with
``[connect] url``) is paused and resumed through Kafka Connect's REST API; the workload
through the components port. Any declared component (``[components.NAME]``) may be named:
a process through the stack, a ``connector = "X"`` component as connector ``X``. The runner runs pauses through the fault ledger instead (so
a killed run's paused sink comes back); these are what
:func:`~datadrill.recovery.registry.run_step` does outside a run. ``RestartConnector``
restarts a connector's failed tasks through the REST API.
"""

from __future__ import annotations

from datadrill.engine.wait import wait_until
from datadrill.errors import WaitTimeout
from datadrill.faults.base import DrillContext
from datadrill.faults.connector import connector_name, connector_port, pause_component, resume_component
from datadrill.model.recovery import PauseComponent, RestartConnector, ResumeComponent
from datadrill.recovery.result import StepResult


def run_pause_component(step: PauseComponent, context: DrillContext) -> StepResult:
    pause_component(context, step.component)
    via = " through Kafka Connect's API" if connector_port(context, step.component) is not None else ""
    return StepResult(f"{step.component} stopped{via}")


def run_resume_component(step: ResumeComponent, context: DrillContext) -> StepResult:
    return StepResult(resume_component(context, step.component))


def run_restart_connector(step: RestartConnector, context: DrillContext) -> StepResult:
    """``POST /connectors/{name}/restart?includeTasks=true&onlyFailed=true``, then wait until
    no task is FAILED or restarting (RUNNING, or PAUSED for a paused connector); says what
    was restarted and how long it took to run again."""
    connect = context.stack.connect
    name = connector_name(context, step.component)
    clock = context.clock
    began = clock.monotonic()
    answer = connect.restart(name, include_tasks=True, only_failed=True)
    restarted = [t.id for t in answer.tasks if t.state == "RESTARTING"] if answer is not None else []
    seen: list[str] = []

    def settled() -> bool:
        status = connect.status(name)
        seen.append(status.describe())
        held = status.state in ("PAUSED", "STOPPED")
        return status.running or (held and all(t.state == status.state for t in status.tasks))

    try:
        wait_until(
            settled,
            timeout=step.timeout_s,
            interval=0.1,
            what=f"connector {name}'s tasks to run",
            clock=clock,
        )
    except WaitTimeout as exc:
        raise WaitTimeout(
            f"{exc}; Kafka Connect at {connect.url} last reported {seen[-1] if seen else 'nothing'}"
        ) from None
    took = clock.monotonic() - began
    if not restarted:
        return StepResult(f"nothing to restart: no task of {name} was FAILED; {seen[-1]}")
    tasks = ", ".join(f"task {t}" for t in restarted)
    return StepResult(
        f"connector {name}: {tasks} restarted (was FAILED); {seen[-1]} after {took:.1f} s",
        extra={"restarted_tasks": restarted, "connect_url": connect.url},
    )
