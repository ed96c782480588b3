"""Connector faults: crashes (once or in a loop) and consumer-lag spikes."""

from __future__ import annotations

import json
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
        pid = context.stack.kill(spec.component)
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
                            context.stack.kill(spec.component)
                            break
                        except ControlError:
                            if stop.wait(0.1):
                                return
                _LOOPS.pop(data["token"], None)

            threading.Thread(target=loop, name=f"crash-loop-{spec.component}", daemon=True).start()
        return {"first_pid": pid}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        # A crash point still armed (the process never reached it) must not fire later.
        context.stack.paths.crash_point(data["component"]).unlink(missing_ok=True)
        stop = _LOOPS.pop(data["token"], None)
        if stop is not None:
            stop.set()
            return f"crash loop of {data['component']} stopped; the supervisor restarts it"
        return f"nothing to revert: the supervisor restarts {data['component']}"

    def exclusive_key(self, spec: KillComponent) -> str | None:
        return f"component:{spec.component}"


MID_COMMIT_POINTS = {"sink": "after-write-before-commit", "relay": "after-publish-before-mark"}
MID_COMMIT_TIMEOUT_S = 30.0


def _pid(context: DrillContext, component: str) -> int | None:
    entry = next(c for c in context.stack.status()["components"] if c["name"] == component)
    return int(entry["pid"]) if entry.get("pid") else None


def _kill_mid_commit(component: str, context: DrillContext) -> int:
    """Arm the component's crash point and wait until it has killed itself there."""
    before = _pid(context, component)
    point = context.stack.paths.crash_point(component)
    point.write_text(MID_COMMIT_POINTS[component], encoding="utf-8")
    deadline = context.clock.monotonic() + MID_COMMIT_TIMEOUT_S
    while point.exists():
        if context.clock.monotonic() >= deadline:
            point.unlink(missing_ok=True)
            raise ControlError(
                f"{component} did not reach a commit within {MID_COMMIT_TIMEOUT_S:g} s "
                "(is data flowing?); the crash point is disarmed"
            )
        context.clock.sleep(0.02)
    return before or 0


def _current_rate(context: DrillContext) -> float:
    data = json.loads(context.stack.paths.workload_file.read_text(encoding="utf-8"))
    return float(data["rate"])


def throttle_file(context: DrillContext) -> str:
    return str(context.stack.paths.run / "sink.throttle")


class LagSpikeFault:
    """Producer burst while the sink is paused or throttled."""

    kind = "consumer.lag_spike"
    spec_type = LagSpike

    def prepare(self, spec: LagSpike, context: DrillContext) -> RevertData:
        return {
            "previous_rate": _current_rate(context),
            "mode": spec.mode,
            "throttle_file": throttle_file(context),
        }

    def apply(self, spec: LagSpike, context: DrillContext, data: RevertData) -> RevertData:
        from pathlib import Path

        stack = context.stack
        stack.set_workload(rate=data["previous_rate"] * spec.burst_factor)
        if spec.mode == "pause":
            stack.pause("sink")
        else:
            Path(data["throttle_file"]).write_text(str(spec.throttle_rows_per_s), encoding="utf-8")
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        from pathlib import Path

        stack = context.stack
        stack.set_workload(rate=data["previous_rate"])
        if data["mode"] == "pause":
            sink = next(c for c in stack.status()["components"] if c["name"] == "sink")
            if sink["detail"].startswith("PAUSED"):
                stack.resume("sink")
            return f"rate back to {data['previous_rate']:g} orders/s, sink resumed"
        Path(data["throttle_file"]).unlink(missing_ok=True)
        return f"rate back to {data['previous_rate']:g} orders/s, sink throttle lifted"

    def exclusive_key(self, spec: LagSpike) -> str | None:
        return "workload"
