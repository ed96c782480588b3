"""Connector faults: crashes (once or in a loop), task failures and consumer-lag spikes.

Connectors (the relay and the sink; with ``[connect] url``, a Kafka Connect cluster's
connectors by name) are driven through Kafka Connect's REST API (the stack's ``connect``
port): pause and resume are ``PUT /connectors/{name}/pause|resume``. The workload is not
a connector and stays on the components port. On the embedded stack a kill stays a
SIGKILL of the process (the supervisor restarts it); on a real Connect cluster it is
``POST /connectors/{name}/restart?includeTasks=true``, the closest thing its API offers.

Declared components (``[components.NAME]`` in ``datadrill.toml``) are named by their
component name: one with ``command`` is a process the stack supervises (the components
port, or the stack's own Connect API, which lists it); one with ``connector = "X"`` is
connector ``X`` of the Connect cluster at ``[connect] url`` (:func:`connector_name`).

A kill is confirmed by the supervisor's view of the component (a new pid, a restart
counted), or by Connect's answer and status; a task failure by Connect's status (FAILED);
a lag spike by the workload's rate as the generator reports it and the sink's state
(paused, or the throttle it reads).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from datadrill.errors import ConfigError, ControlError
from datadrill.faults.base import DrillContext, RevertData, Seen, await_effect
from datadrill.model.faults import ConnectorTaskFailure, KillComponent, LagSpike
from datadrill.stack.port import ComponentStatus, ConnectPort

if TYPE_CHECKING:
    from datadrill.config import ComponentConfig

# Crash loops running in this process, by token; they die with the process.
_LOOPS: dict[str, threading.Event] = {}


class KillComponentFault:
    """SIGKILL a connector; for a crash loop, again every ``every_s`` seconds."""

    kind = "connector.crash"
    spec_type = KillComponent

    def prepare(self, spec: KillComponent, context: DrillContext) -> RevertData:
        if remote_connector(context, spec.component) is not None:
            # A real Connect cluster's connector: a restart through its REST API.
            return {
                "component": spec.component,
                "connector": connector_name(context, spec.component),
                "token": uuid.uuid4().hex,
                "via": "connect",
            }
        before = context.stack.components.get(spec.component)
        # pid and restart count before the kill: what confirm compares against.
        return {
            "component": spec.component,
            "token": uuid.uuid4().hex,
            "pid_before": before.pid,
            "restarts_before": before.restarts,
        }

    def apply(self, spec: KillComponent, context: DrillContext, data: RevertData) -> RevertData:
        if data.get("via") == "connect":
            return self._restart_through_connect(spec, context, data)
        if spec.moment == "mid_commit":
            return {"first_pid": _kill_mid_commit(spec.component, context)}
        pid = context.stack.components.kill(spec.component)

        def kill_again(stop: threading.Event) -> None:
            # Between kills the supervisor may still be restarting it: try briefly.
            for _attempt in range(50):
                try:
                    context.stack.components.kill(spec.component)
                    return
                except ControlError:
                    if stop.wait(0.1):
                        return

        _repeat(spec, data["token"], kill_again, name=f"crash-loop-{spec.component}")
        return {"first_pid": pid}

    def _restart_through_connect(
        self, spec: KillComponent, context: DrillContext, data: RevertData
    ) -> RevertData:
        connect = context.stack.connect
        connector = connector_name(context, spec.component)
        answer = connect.restart(connector, include_tasks=True)
        restarting = [t.id for t in answer.tasks if t.state == "RESTARTING"] if answer else []

        def restart_again(stop: threading.Event) -> None:
            # A worker busy rebalancing refuses: the next round tries again.
            with contextlib.suppress(ControlError):
                connect.restart(connector, include_tasks=True)

        _repeat(spec, data["token"], restart_again, name=f"restart-loop-{spec.component}")
        return {"restart_answered": answer.describe() if answer else "204", "restarting": restarting}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        if data.get("via") == "connect":
            stop = _LOOPS.pop(data["token"], None)
            connector = data.get("connector", data["component"])
            if stop is not None:
                stop.set()
                return f"restart loop of connector {connector} stopped"
            return f"nothing to revert: Kafka Connect restarted connector {connector}"
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
        if data.get("via") == "connect":
            return _confirm_connect_restart(context, str(data.get("connector", name)), data, within_s)
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
        remote = remote_connector(context, spec.component)
        if remote is not None:
            if spec.moment == "mid_commit":
                raise ConfigError(
                    "scenario",
                    "KillComponent.moment",
                    spec.moment,
                    f"'any' on a real Kafka Connect cluster ({remote.url}): its REST API can "
                    "restart a connector, not stop it at a chosen point",
                )
            connector = connector_name(context, spec.component)
            state = remote.status(connector).describe()
            loop = f", {spec.times} times {spec.every_s:g} s apart" if spec.times > 1 else ""
            return (
                f"connector {connector} of Kafka Connect at {remote.url} ({state}): "
                f"POST /connectors/{connector}/restart?includeTasks=true{loop}"
            )
        status = component_status(context, spec.component, field="KillComponent.component")
        where = f"component {spec.component} ({_pid_text(status)})"
        if spec.moment == "mid_commit":
            return f"{where}, at its crash point {MID_COMMIT_POINTS[spec.component]!r}"
        if spec.times > 1:
            return f"{where}, {spec.times} times {spec.every_s:g} s apart"
        return where


def _confirm_connect_restart(context: DrillContext, name: str, data: RevertData, within_s: float) -> str:
    """Connect accepted the restart (its 202 answer) and reports the connector afterwards."""
    connect = context.stack.connect

    def look() -> Seen:
        if "restart_answered" not in data:
            return Seen(False, f"no restart of connector {name} was requested")
        now = connect.status(name)
        return Seen(
            True, f"Kafka Connect answered the restart ({data['restart_answered']}); now {now.describe()}"
        )

    return await_effect(
        context, within_s, expected=f"connector {name} restarted through Kafka Connect", look=look
    )


def connector_port(context: DrillContext, name: str) -> ConnectPort | None:
    """The Connect API that drives ``name`` when it is a connector, else None (the workload,
    a user's component, a stack serving no Connect API). With ``[connect] url`` a name
    the cluster does not know is an error naming its connectors: the same fault must not
    quietly hit the stack's own process instead."""
    if name == "workload":
        return None
    declared = declared_component(context, name)
    if declared is not None and declared.connector:
        # A connector of the Connect cluster at [connect] url (the config requires one).
        cluster = context.stack.connect
        listed = cluster.connectors()
        if declared.connector not in listed:
            raise ConfigError(
                "scenario",
                "component",
                name,
                f"a component whose connector Kafka Connect at {cluster.url} lists; it has no "
                f"{declared.connector!r} ([components.{name}] connector), only {', '.join(listed) or 'none'}",
            )
        return cluster
    try:
        # A third party's Stack from before the Connect port has none: its components port does it.
        connect: ConnectPort | None = getattr(context.stack, "connect", None)
    except ControlError:
        return None  # a stack serving no Connect API (and none configured)
    if connect is None:
        return None
    if connect.embedded:
        try:
            names = connect.connectors()
        except ControlError:
            return None  # an older stack process: its components port does it all
        return connect if name in names else None
    if declared is not None:
        return None  # a process the stack supervises, beside a real Connect cluster
    names = connect.connectors()
    if name not in names:
        raise ConfigError(
            "scenario",
            "component",
            name,
            f"a connector of the Kafka Connect cluster at {connect.url}: {', '.join(names) or 'none'}",
        )
    return connect


def declared_component(context: DrillContext, name: str) -> ComponentConfig | None:
    """``[components.NAME]`` of the running stack's config, if ``name`` is declared there."""
    config = getattr(context.stack, "config", None)
    components: dict[str, ComponentConfig] = getattr(config, "components", None) or {}
    return components.get(name)


def connector_name(context: DrillContext, name: str) -> str:
    """The name Kafka Connect knows component ``name`` by: a declared component's
    ``connector`` (``[components.orders-sink] connector = "iceberg-sink"``), else ``name``."""
    declared = declared_component(context, name)
    return declared.connector if declared is not None and declared.connector else name


def remote_connector(context: DrillContext, name: str) -> ConnectPort | None:
    """``name``'s Connect API when it is a real Connect cluster's connector (``[connect] url``)."""
    connect = connector_port(context, name)
    return connect if connect is not None and not connect.embedded else None


def pause_component(context: DrillContext, name: str) -> None:
    """Pause a connector through Kafka Connect's API (``PUT .../pause``), any other
    component through the components port."""
    connect = connector_port(context, name)
    if connect is not None:
        connect.pause(connector_name(context, name))
    else:
        context.stack.components.pause(name)


def resume_component(context: DrillContext, name: str) -> str:
    """Resume what :func:`pause_component` paused; says what it did."""
    connect = connector_port(context, name)
    if connect is not None:
        connector = connector_name(context, name)
        connect.resume(connector)
        return f"connector {connector} resumed ({connect.status(connector).describe()})"
    pid = context.stack.components.resume(name)
    return f"{name} started again (pid {pid})"


def component_paused(context: DrillContext, name: str) -> bool:
    """Is ``name`` paused: Connect's connector state for a connector, else the supervisor's."""
    connect = connector_port(context, name)
    if connect is not None:
        return connect.status(connector_name(context, name)).state == "PAUSED"
    return context.stack.components.get(name).paused


def _repeat(
    spec: KillComponent, token: str, hit: Callable[[threading.Event], None], *, name: str
) -> None:
    """The rest of a loop of ``spec.times`` hits, ``spec.every_s`` apart, in a thread that
    stops as soon as the fault is reverted (its stop event, under ``token`` in _LOOPS)."""
    if spec.times <= 1:
        return
    stop = threading.Event()
    _LOOPS[token] = stop

    def loop() -> None:
        for _ in range(spec.times - 1):
            if stop.wait(spec.every_s):
                return
            hit(stop)
        _LOOPS.pop(token, None)

    threading.Thread(target=loop, name=name, daemon=True).start()


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


class ConnectorTaskFailureFault:
    """A connector's task goes FAILED and stays failed until restarted (Kafka Connect's
    ``POST /connectors/{name}/restart``): the stack kills the process and its supervisor
    keeps it down, with the trace Connect's status shows. Reverting restarts the connector
    if its task is still FAILED. Embedded stack only: Connect's REST API has no call that
    fails a task, so on a real cluster (``[connect] url``) ``target()`` refuses it."""

    # Checked before a run starts (engine.preflight): only the stack's own Connect API can.
    needs_own_connect = True

    kind = "connector.task_failure"
    spec_type = ConnectorTaskFailure

    def prepare(self, spec: ConnectorTaskFailure, context: DrillContext) -> RevertData:
        return {"component": spec.component}

    def apply(self, spec: ConnectorTaskFailure, context: DrillContext, data: RevertData) -> RevertData:
        _own_connect(context, spec.component)
        reason = (
            "org.apache.kafka.connect.errors.ConnectException: task failed by datadrill fault "
            f"{self.kind} ({spec.describe()})"
        )
        trace = context.stack.components.fail(spec.component, reason)
        return {"trace_head": trace.splitlines()[0] if trace else reason}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        name = data["component"]
        connect = context.stack.connect
        status = connect.status(name)
        if not status.failed_tasks:
            return f"nothing to revert: {status.describe()}"
        connect.restart(name, include_tasks=True, only_failed=True)
        return f"connector {name} restarted (its task was FAILED); now {connect.status(name).describe()}"

    def exclusive_key(self, spec: ConnectorTaskFailure) -> str | None:
        return f"component:{spec.component}"

    def confirm(
        self, spec: ConnectorTaskFailure, context: DrillContext, data: RevertData, within_s: float
    ) -> str:
        """Kafka Connect's status of the connector shows a FAILED task (with its trace)."""
        name = data["component"]
        connect = context.stack.connect

        def look() -> Seen:
            status = connect.status(name)
            failed = status.failed_tasks
            if not failed:
                return Seen(False, status.describe())
            trace = (failed[0].trace or "").splitlines()
            return Seen(True, f"{status.describe()}; trace: {trace[0] if trace else '(none)'}")

        return await_effect(context, within_s, expected=f"connector {name}'s task FAILED", look=look)

    def target(self, spec: ConnectorTaskFailure, context: DrillContext) -> str:
        connect = _own_connect(context, spec.component)
        return f"connector {spec.component}'s task 0 ({connect.status(spec.component).describe()}) at {connect.url}"


def _own_connect(context: DrillContext, name: str) -> ConnectPort:
    """The stack's own Connect API when ``name`` is one of its connectors; ConfigError
    otherwise (a real Connect cluster's task cannot be failed through REST)."""
    field = "ConnectorTaskFailure.component"
    try:
        connect = context.stack.connect
    except ControlError as exc:
        raise ConfigError(
            "scenario", field, name, f"a connector of this stack's Connect API ({exc})"
        ) from None
    if not connect.embedded:
        raise ConfigError(
            "scenario",
            field,
            name,
            f"a connector of the embedded stack: the Kafka Connect cluster at {connect.url} "
            "cannot be made to fail a task through its REST API (it has no such call); "
            "drill this fault on the embedded stack, or fail the task by the cluster's own means",
        )
    names = connect.connectors()
    if name not in names:
        raise ConfigError("scenario", field, name, f"a connector of this stack: {', '.join(names) or 'none'}")
    return connect


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
