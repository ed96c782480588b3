"""Connector faults: crashes (once or in a loop) and consumer-lag spikes."""

from __future__ import annotations

import threading
import uuid

from datadrill.errors import ControlError
from datadrill.faults.base import DrillContext, RevertData
from datadrill.model.faults import KillComponent, LagSpike

# Crash loops running in this process, by token; they die with the process.
_LOOPS: dict[str, threading.Event] = {}


class KillComponentFault:
    """SIGKILL a connector; for a crash loop, again every ``every_s`` seconds."""

    kind = "connector.crash"
    spec_type = KillComponent

    def prepare(self, spec: KillComponent, context: DrillContext) -> RevertData:
        return {"component": spec.component, "token": uuid.uuid4().hex}

    def apply(self, spec: KillComponent, context: DrillContext, data: RevertData) -> RevertData:
        if spec.moment == "mid_commit":
            return {"first_pid": _kill_mid_commit(spec.component, context)}
        pid = context.stack.components.kill(spec.component)
        if spec.times > 1:
            stop = threading.Event()
            _LOOPS[data["token"]] = stop

            def loop() -> None:
                for _ in range(spec.times - 1):
                    if stop.wait(spec.every_s):
                        return
                    # Between kills the supervisor may still be restarting it: try briefly.
                    for _attempt in range(50):
                        try:
                            context.stack.components.kill(spec.component)
                            break
                        except ControlError:
                            if stop.wait(0.1):
                                return
                _LOOPS.pop(data["token"], None)

            threading.Thread(target=loop, name=f"crash-loop-{spec.component}", daemon=True).start()
        return {"first_pid": pid}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        # A crash point still armed (the process never reached it) must not fire later.
        context.stack.components.disarm_crash_point(data["component"])
        stop = _LOOPS.pop(data["token"], None)
        if stop is not None:
            stop.set()
            return f"crash loop of {data['component']} stopped; the supervisor restarts it"
        return f"nothing to revert: the supervisor restarts {data['component']}"

    def exclusive_key(self, spec: KillComponent) -> str | None:
        return f"component:{spec.component}"


MID_COMMIT_POINTS = {"sink": "after-write-before-commit", "relay": "after-publish-before-mark"}
MID_COMMIT_TIMEOUT_S = 30.0


def _kill_mid_commit(component: str, context: DrillContext) -> int:
    """Arm the component's crash point and wait until it has killed itself there."""
    components = context.stack.components
    before = components.get(component).pid
    components.arm_crash_point(component, MID_COMMIT_POINTS[component])
    deadline = context.clock.monotonic() + MID_COMMIT_TIMEOUT_S
    while components.crash_point_armed(component):
        if context.clock.monotonic() >= deadline:
            components.disarm_crash_point(component)
            raise ControlError(
                f"{component} did not reach a commit within {MID_COMMIT_TIMEOUT_S:g} s "
                "(is data flowing?); the crash point is disarmed"
            )
        context.clock.sleep(0.02)
    return before or 0


class LagSpikeFault:
    """Producer burst while the sink is paused or throttled."""

    kind = "consumer.lag_spike"
    spec_type = LagSpike

    def prepare(self, spec: LagSpike, context: DrillContext) -> RevertData:
        return {"previous_rate": context.stack.workload.get().rate, "mode": spec.mode}

    def apply(self, spec: LagSpike, context: DrillContext, data: RevertData) -> RevertData:
        stack = context.stack
        stack.workload.set(rate=data["previous_rate"] * spec.burst_factor)
        if spec.mode == "pause":
            stack.components.pause("sink")
        else:
            stack.platform.throttle_sink(spec.throttle_rows_per_s)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        stack = context.stack
        stack.workload.set(rate=data["previous_rate"])
        if data["mode"] == "pause":
            if stack.components.get("sink").paused:
                stack.components.resume("sink")
            return f"rate back to {data['previous_rate']:g} orders/s, sink resumed"
        stack.platform.throttle_sink(None)
        return f"rate back to {data['previous_rate']:g} orders/s, sink throttle lifted"

    def exclusive_key(self, spec: LagSpike) -> str | None:
        return "workload"
