"""HangComponent: a component that hangs, neither crashed nor working.

On a process the stack supervises the hang is a SIGSTOP through the stack's components
port (``POST /components/{name}/signal``), undone by a SIGCONT. The process keeps its
sockets and so its consumer group membership and partitions (until its session times
out, which the broker decides), and makes no progress: the hung consumer a crash-only
harness never shows. A connector of a real Kafka Connect cluster (``[components.NAME]
connector = "X"`` with ``[connect] url``) is paused and resumed through Connect's REST API
instead: a paused task keeps its partitions and makes no progress too.

Landing is read from the kernel, not from the harness's own bookkeeping: the process's
state in ``/proc/<pid>/stat`` is ``T`` (stopped); after the SIGCONT it must leave ``T``.
The undo data names the pid and its start time (``/proc/<pid>/stat`` field 22), so a
revert after the run died (the stack's reaper, ``datadrill cleanup``) continues that very
process and leaves alone a new one the supervisor started meanwhile (it needs no SIGCONT).

Example::

    handle = inject(HangComponent("enricher", at_s=0, duration_s=10), context, ledger=ledger)
    handle.landed    # "enricher (pid 4242) stopped: state T in /proc/4242/stat"
    handle.revert()  # "enricher (pid 4242) continued (SIGCONT): state S"
"""

from __future__ import annotations

from datadrill.errors import ControlError
from datadrill.faults.base import DrillContext, RevertData, Seen, await_effect
from datadrill.faults.connector import component_status, connector_name, remote_connector
from datadrill.model.faults import HangComponent
from datadrill.procs import ProcState, read_proc_state

# How long a SIGCONT may take to show in /proc before the revert calls it failed.
CONTINUE_BOUND_S = 5.0
STOPPED = "T"


def same_process(pid: int, start_ticks: int | None) -> ProcState | None:
    """``pid``'s state if it is still the process that started at ``start_ticks``."""
    now = read_proc_state(pid)
    if now is None or (start_ticks is not None and now.start_ticks != start_ticks):
        return None
    return now


class HangComponentFault:
    """SIGSTOP a component's process for ``duration_s`` (a Connect cluster's connector:
    pause it), then SIGCONT (resume)."""

    kind = "component.hang"
    spec_type = HangComponent

    def prepare(self, spec: HangComponent, context: DrillContext) -> RevertData:
        name = spec.component
        if remote_connector(context, name) is not None:
            return {"component": name, "connector": connector_name(context, name), "via": "connect"}
        status = context.stack.components.get(name)
        if status.pid is None:
            raise ControlError(f"{name} has no process to hang now ({status.detail or 'not running'})")
        seen = read_proc_state(status.pid)
        return {
            "component": name,
            "pid": status.pid,
            "start_ticks": seen.start_ticks if seen is not None else None,
        }

    def apply(self, spec: HangComponent, context: DrillContext, data: RevertData) -> RevertData:
        if data.get("via") == "connect":
            context.stack.connect.pause(data["connector"])
            return {"paused": True}
        pid = context.stack.components.kill(data["component"], signal="SIGSTOP")
        if pid == data["pid"]:
            return {"stopped": True}
        # The supervisor restarted it between prepare and apply: the process stopped is this one.
        seen = read_proc_state(pid)
        return {"stopped": True, "pid": pid, "start_ticks": seen.start_ticks if seen is not None else None}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        name = data["component"]
        if data.get("via") == "connect":
            connect = context.stack.connect
            connector = data["connector"]
            status = connect.status(connector)
            if status.state != "PAUSED":
                return f"nothing to revert: connector {connector} is {status.describe()}"
            connect.resume(connector)
            return f"connector {connector} resumed ({connect.status(connector).describe()})"
        pid = int(data["pid"])
        seen = same_process(pid, data.get("start_ticks"))
        if seen is None:
            now = context.stack.components.get(name).pid
            now_text = f"pid {now}" if now else "not running"
            return (
                f"nothing to revert: pid {pid} of {name} is gone (now {now_text}); "
                "a process started since needs no SIGCONT"
            )
        if seen.state != STOPPED:
            return f"nothing to revert: {name} (pid {pid}) is not stopped (state {seen.state})"
        current = context.stack.components.get(name).pid
        if current != pid:
            # The supervisor is stopping it (a pause, a failure): its SIGKILL ends a stopped process.
            current_text = f"pid {current}" if current else "not running"
            return (
                f"nothing to revert: the supervisor let go of pid {pid} (now {current_text}); "
                "it ends the stopped process itself"
            )
        context.stack.components.kill(name, signal="SIGCONT")
        return self._continued(context, name, pid, data.get("start_ticks"))

    def _continued(self, context: DrillContext, name: str, pid: int, start_ticks: int | None) -> str:
        """Wait until ``pid`` left state T after the SIGCONT; ControlError if it does not (the
        ledger keeps the fault outstanding, so cleanup tries again)."""
        clock = context.clock
        deadline = clock.monotonic() + CONTINUE_BOUND_S
        while True:
            seen = same_process(pid, start_ticks)
            if seen is None:
                return f"{name} (pid {pid}) continued (SIGCONT) and has exited since"
            if seen.state != STOPPED:
                return f"{name} (pid {pid}) continued (SIGCONT): state {seen.state}"
            if clock.monotonic() >= deadline:
                raise ControlError(
                    f"{name} (pid {pid}) is still stopped (state T in /proc/{pid}/stat) "
                    f"{CONTINUE_BOUND_S:g} s after SIGCONT"
                )
            clock.sleep(0.02)

    def exclusive_key(self, spec: HangComponent) -> str | None:
        return f"component:{spec.component}"

    def confirm(self, spec: HangComponent, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The process's state in ``/proc/<pid>/stat`` is T (stopped); a Connect cluster's
        connector: Connect reports it PAUSED."""
        name = data["component"]
        if data.get("via") == "connect":
            connect = context.stack.connect
            connector = data["connector"]

            def look_connect() -> Seen:
                status = connect.status(connector)
                if "paused" not in data:
                    return Seen(False, f"no pause was requested; {status.describe()}")
                return Seen(status.state == "PAUSED", f"Kafka Connect reports {status.describe()}")

            return await_effect(
                context, within_s, expected=f"connector {connector} PAUSED (hung)", look=look_connect
            )
        pid = int(data["pid"])
        start_ticks = data.get("start_ticks")

        def look() -> Seen:
            seen = same_process(pid, start_ticks)
            if seen is None:
                return Seen(False, f"no process {pid} (of {name}) in /proc")
            where = f"state {seen.state} in /proc/{pid}/stat"
            if seen.state != STOPPED:
                return Seen(False, f"{name} (pid {pid}): {where}")
            return Seen(True, f"{name} (pid {pid}) stopped: {where}")

        return await_effect(context, within_s, expected=f"{name} (pid {pid}) stopped (state T)", look=look)

    def target(self, spec: HangComponent, context: DrillContext) -> str:
        remote = remote_connector(context, spec.component)
        if remote is not None:
            connector = connector_name(context, spec.component)
            return (
                f"connector {connector} of Kafka Connect at {remote.url} ({remote.status(connector).describe()}): "
                f"PUT /connectors/{connector}/pause, resume after {spec.duration_s:g} s"
            )
        status = component_status(context, spec.component, field="HangComponent.component")
        if status.pid is None:
            return f"component {spec.component} (not running now: nothing to stop until it runs)"
        seen = read_proc_state(status.pid)
        state = (
            f"state {seen.state}"
            if seen is not None
            else "not in this machine's /proc: the hang cannot be confirmed"
        )
        return (
            f"component {spec.component} (pid {status.pid}, {state}): SIGSTOP, "
            f"SIGCONT after {spec.duration_s:g} s"
        )
