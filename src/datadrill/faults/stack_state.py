"""Changes the runner makes to a stack that are not faults but must come back out all the
same: a paused component, a changed workload rate. They go through the ledger like faults."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic.dataclasses import dataclass as model_dataclass

from datadrill.faults.base import DrillContext, RevertData


@model_dataclass(frozen=True)
class _ComponentPaused:
    component: str
    kind: str = "stack.component_paused"

    def describe(self) -> str:
        return f"{self.component} paused"


@model_dataclass(frozen=True)
class _WorkloadChanged:
    rate: float
    canary_interval_s: float
    kind: str = "stack.workload"

    def describe(self) -> str:
        return f"workload set to {self.rate:g} orders/s"


@dataclass
class ComponentPausedState:
    kind: str = "stack.component_paused"
    spec_type: type = _ComponentPaused

    def prepare(self, spec: _ComponentPaused, context: DrillContext) -> RevertData:
        return {"component": spec.component}

    def apply(self, spec: _ComponentPaused, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.components.pause(spec.component)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        component = data["component"]
        if context.stack.components.get(component).paused:
            context.stack.components.resume(component)
            return f"{component} resumed"
        return f"nothing to do: {component} runs"

    def exclusive_key(self, spec: _ComponentPaused) -> str | None:
        return None


@dataclass
class WorkloadState:
    kind: str = "stack.workload"
    spec_type: type = _WorkloadChanged

    def prepare(self, spec: _WorkloadChanged, context: DrillContext) -> RevertData:
        current = context.stack.workload.get()
        return {"rate": current.rate, "canary_interval_s": current.canary_interval_s}

    def apply(self, spec: _WorkloadChanged, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.workload.set(rate=spec.rate, canary_interval_s=spec.canary_interval_s)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.workload.set(rate=data["rate"], canary_interval_s=data["canary_interval_s"])
        return f"workload back to {data['rate']:g} orders/s"

    def exclusive_key(self, spec: _WorkloadChanged) -> str | None:
        return None


def pause_spec(component: str) -> _ComponentPaused:
    return _ComponentPaused(component)


def workload_spec(rate: float, canary_interval_s: float) -> _WorkloadChanged:
    return _WorkloadChanged(rate, canary_interval_s)
