"""Changes the runner makes to a stack that are not faults but must come back out all the
same: a paused component, a changed workload rate. They go through the ledger like faults."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic.dataclasses import dataclass as model_dataclass

from datadrill.faults.base import DrillContext, RevertData, Seen, await_effect
from datadrill.faults.connector import (
    component_paused,
    component_status,
    connector_name,
    pause_component,
    remote_connector,
    resume_component,
    workload_seen,
)


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
        if remote_connector(context, spec.component) is not None:
            # A Connect cluster's connector: paused and confirmed through its REST API. (The
            # stack's own connectors are paused through it too, and confirmed below.)
            return {"component": spec.component, "via": "connect"}
        # The pid before: confirm names the process that stopped.
        return {"component": spec.component, "pid_before": context.stack.components.get(spec.component).pid}

    def apply(self, spec: _ComponentPaused, context: DrillContext, data: RevertData) -> RevertData:
        pause_component(context, spec.component)
        return {"paused": True}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        component = data["component"]
        if component_paused(context, component):
            return resume_component(context, component)
        return f"nothing to do: {component} runs"

    def exclusive_key(self, spec: _ComponentPaused) -> str | None:
        return None

    def confirm(self, spec: _ComponentPaused, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The supervisor reports the component paused with no process running (a pause
        stops the process: SIGTERM, then SIGKILL)."""
        name = data["component"]
        before = data.get("pid_before")
        if data.get("via") == "connect":
            connect = context.stack.connect
            connector = connector_name(context, name)

            def look_connect() -> Seen:
                status = connect.status(connector)
                if "paused" not in data:
                    return Seen(False, f"no pause was requested; {status.describe()}")
                return Seen(status.state == "PAUSED", f"Kafka Connect reports {status.describe()}")

            return await_effect(context, within_s, expected=f"connector {name} PAUSED", look=look_connect)

        def look() -> Seen:
            now = context.stack.components.get(name)
            if not now.paused:
                return Seen(False, f"{name} runs (pid {now.pid})")
            if now.pid is not None and now.pid == before:
                return Seen(False, f"{name} marked paused, pid {now.pid} still listed")
            return Seen(True, f"{name} stopped and kept stopped (was pid {before})")

        return await_effect(context, within_s, expected=f"{name} paused", look=look)

    def target(self, spec: _ComponentPaused, context: DrillContext) -> str:
        status = component_status(context, spec.component, field="PauseComponent.component")
        running = "paused already" if status.paused else f"pid {status.pid}"
        return f"component {spec.component} ({running})"


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

    def confirm(self, spec: _WorkloadChanged, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The rate and canary interval are set, and the generator reports running at the
        rate (when it runs and reports one)."""

        def look() -> Seen:
            seen = workload_seen(context, spec.rate)
            interval = context.stack.workload.get().canary_interval_s
            if seen.landed and interval != spec.canary_interval_s:
                return Seen(False, f"{seen.what}, canaries every {interval:g} s")
            return seen

        expected = f"workload at {spec.rate:g} orders/s, canaries every {spec.canary_interval_s:g} s"
        return await_effect(context, within_s, expected=expected, look=look)

    def target(self, spec: _WorkloadChanged, context: DrillContext) -> str:
        now = context.stack.workload.get()
        return (
            f"the workload generator (now {now.rate:g} orders/s, canaries every "
            f"{now.canary_interval_s:g} s)"
        )


def pause_spec(component: str) -> _ComponentPaused:
    return _ComponentPaused(component)


def workload_spec(rate: float, canary_interval_s: float) -> _WorkloadChanged:
    return _WorkloadChanged(rate, canary_interval_s)
