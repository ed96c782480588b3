"""Connector faults: crashes (once or in a loop) and consumer-lag spikes.

A kill is confirmed by the supervisor's view of the component (a new pid, a restart
counted); a lag spike by the workload's rate as the generator reports it and the sink's
state (paused, or the throttle it reads).
"""

from __future__ import annotations

import threading
import uuid

from datadrill.errors import ConfigError, ControlError
from datadrill.faults.base import DrillContext, RevertData, Seen, await_effect
from datadrill.model.faults import KillComponent, LagSpike
from datadrill.stack.port import ComponentStatus

# Crash loops running in this process, by token; they die with the process.
_LOOPS: dict[str, threading.Event] = {}


class KillComponentFault:
    """SIGKILL a connector; for a crash loop, again every ``every_s`` seconds."""

    kind = "connector.crash"
    spec_type = KillComponent

    def prepare(self, spec: KillComponent, context: DrillContext) -> RevertData:
        before = context.stack.components.get(spec.component)
        # pid and restart count before the kill: what confirm compares against.
        return {
            "component": spec.component,
            "token": uuid.uuid4().hex,
            "pid_before": before.pid,
            "restarts_before": before.restarts,
        }

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

    def confirm(self, spec: KillComponent, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The component's pid changed or its restart count rose (a kill mid-commit: and
        the crash point fired, i.e. it is no longer armed)."""
        name = data["component"]
        pid_before = data.get("pid_before", data.get("first_pid"))
        restarts_before = int(data.get("restarts_before", 0))
        components = context.stack.components

        def look() -> Seen:
            now = components.get(name)
            if spec.moment == "mid_commit" and components.crash_point_armed(name):
                return Seen(False, f"{name}'s crash point still armed (pid {now.pid})")
            restarted = now.restarts > restarts_before
            if now.pid is not None and now.pid != pid_before:
                how = "killed at its crash point" if spec.moment == "mid_commit" else "killed"
                return Seen(True, f"{name} {how}: pid {pid_before} → {now.pid}")
            if restarted:
                return Seen(
                    True,
                    f"{name} killed: restarts {restarts_before} → {now.restarts} "
                    f"(last exit: {now.last_exit or 'unknown'})",
                )
            return Seen(False, f"{name} still pid {now.pid}, {now.restarts} restarts")

        return await_effect(
            context, within_s, expected=f"{name} killed (a new pid or a restart counted)", look=look
        )

    def target(self, spec: KillComponent, context: DrillContext) -> str:
        status = component_status(context, spec.component, field="KillComponent.component")
        where = f"component {spec.component} ({_pid_text(status)})"
        if spec.moment == "mid_commit":
            return f"{where}, at its crash point {MID_COMMIT_POINTS[spec.component]!r}"
        if spec.times > 1:
            return f"{where}, {spec.times} times {spec.every_s:g} s apart"
        return where


def component_status(context: DrillContext, name: str, *, field: str) -> ComponentStatus:
    """The component's status; ConfigError naming the components this stack runs when it
    has no ``name``."""
    try:
        return context.stack.components.get(name)
    except ControlError:
        try:
            known = ", ".join(c.name for c in context.stack.components.list()) or "none"
        except ControlError:
            known = "(the stack did not say)"
        raise ConfigError("scenario", field, name, f"a component of this stack: {known}") from None


def _pid_text(status: ComponentStatus) -> str:
    if status.paused:
        return "paused now"
    return f"pid {status.pid}" if status.pid is not None else "not running now"


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

    def confirm(self, spec: LagSpike, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The burst rate is set and the generator runs at it (when it reports a rate), and
        the sink is paused, or throttled: for the throttle, what is read is the limit the
        sink itself reads before each poll (``StatePaths.sink_throttle``), as the stack's
        control API offers no read of it; the sink's actual consumption is not measured."""
        stack = context.stack
        rate = data["previous_rate"] * spec.burst_factor

        def look() -> Seen:
            burst = workload_seen(context, rate)
            if not burst.landed:
                return burst
            if spec.mode == "pause":
                sink = stack.components.get("sink")
                if not sink.paused:
                    return Seen(False, f"{burst.what}, but the sink runs (pid {sink.pid})")
                return Seen(True, f"{burst.what}, sink paused")
            limit = sink_throttle(context)
            if limit != spec.throttle_rows_per_s:
                return Seen(False, f"{burst.what}, but the sink throttle is {limit}")
            return Seen(True, f"{burst.what}, sink throttled to {limit:g} rows/s")

        how = "paused" if spec.mode == "pause" else f"throttled to {spec.throttle_rows_per_s:g} rows/s"
        return await_effect(
            context, within_s, expected=f"workload at {rate:g} orders/s and the sink {how}", look=look
        )

    def target(self, spec: LagSpike, context: DrillContext) -> str:
        rate = context.stack.workload.get().rate
        sink = component_status(context, "sink", field="LagSpike (the sink)")
        how = "paused" if spec.mode == "pause" else f"throttled to {spec.throttle_rows_per_s:g} rows/s"
        return (
            f"the workload ({rate:g} → {rate * spec.burst_factor:g} orders/s) and "
            f"component sink ({_pid_text(sink)}), {how}"
        )


def workload_seen(context: DrillContext, rate: float) -> Seen:
    """Is the workload at ``rate``: its setting, and the generator's own report of the rate
    it runs at when it is running and reports one (its heartbeat)."""
    setting = context.stack.workload.get().rate
    if setting != rate:
        return Seen(False, f"workload set to {setting:g} orders/s")
    generator = context.stack.components.get("workload")
    reported = generator.stats.get("rate")
    if generator.healthy and reported is not None:
        if float(reported) != rate:
            return Seen(False, f"workload set to {rate:g} orders/s; the generator reports {reported:g}")
        return Seen(True, f"workload at {rate:g} orders/s (the generator reports it)")
    return Seen(True, f"workload set to {rate:g} orders/s (the generator reports no rate now)")


def sink_throttle(context: DrillContext) -> float | None:
    """The throttle the sink reads (None: no limit); see ``platform.sink._throttle``."""
    try:
        return float(context.stack.paths.sink_throttle.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):  # as the sink reads it: no limit
        return None
