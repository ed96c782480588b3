"""Connector faults: SIGKILL a platform process (the supervisor restarts it)."""

from __future__ import annotations

from dataclasses import dataclass

from datadrill.faults.base import DrillContext
from datadrill.model.faults import KillComponent


@dataclass
class ComponentKilled:
    component: str
    pid: int
    description: str

    def revert(self) -> str:
        # A killed process cannot be un-killed; the supervisor restarts it by itself.
        return f"nothing to revert: the supervisor restarts {self.component} (killed pid {self.pid})"


def kill_component(spec: KillComponent, context: DrillContext) -> ComponentKilled:
    pid = context.stack.kill(spec.component)
    return ComponentKilled(spec.component, pid, spec.describe())
