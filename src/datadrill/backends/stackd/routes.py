"""The stack process's control API: one handler per route, each taking (path params,
JSON body) and returning a JSON object. :class:`~datadrill.stack.client.StackClient` is
its client; every route is a typed method there.

Routes::

    GET    /health /status /components /components/{name} /workload /kafka/leaders
    POST   /kafka/topics /kafka/brokers/{id}/down|up|rtt /kafka/request-errors
           /kafka/partitions/leader /kafka/topics/{topic}/delete-records|recreate
    DELETE /kafka/request-errors/{api_key}
    POST   /components/{name}/signal|pause|resume /components/{name}/crash-point
    POST   /components/{name}/fail      (FAILED until a restart: Kafka Connect's API restarts it)
    GET    /components/{name}/crash-point      DELETE /components/{name}/crash-point
    POST   /workload /platform/sink-throttle /platform/producer-contract /shutdown
    GET    /platform/producer-contract
    GET    /runs/lease      POST /runs/lease  /runs/lease/{run_id}/renew
    DELETE /runs/lease/{run_id}
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadrill.backends.stackd.status import process_entries, stack_status
from datadrill.errors import ControlError
from datadrill.interfaces.http_server import Handler

if TYPE_CHECKING:
    from datadrill.backends.stackd.process import StackProcess

Body = dict[str, Any]
Params = dict[str, str]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def routes(stack: StackProcess) -> list[tuple[str, str, Handler]]:
    kafka = stack.kafka
    paths = stack.paths

    def supervisor() -> Any:
        assert stack.supervisor is not None
        return stack.supervisor

    def component(name: str) -> dict[str, Any]:
        for entry in process_entries(stack):
            if entry["name"] == name:
                return entry
        known = ", ".join(e["name"] for e in process_entries(stack))
        raise ControlError(f"unknown component {name!r}; this stack runs {known}")

    def topic(p: Params, b: Body) -> Body:
        name = str(b["name"])
        partitions = int(b.get("partitions", 1))
        rf = int(b.get("replication_factor", min(3, stack.config.kafka.brokers)))
        kafka.create_topic(name, partitions=partitions, replication_factor=rf)
        stack.event("topic_created", topic=name, partitions=partitions, replication_factor=rf)
        return {"topic": name, "partitions": partitions, "replication_factor": rf}

    def broker_down(p: Params, b: Body) -> Body:
        broker = int(p["broker"])
        detail = kafka.broker_down(broker)
        stack.event("broker_down", broker=broker, **detail)
        return {"broker": broker, "up": False, **detail}

    def broker_up(p: Params, b: Body) -> Body:
        broker = int(p["broker"])
        detail = kafka.broker_up(broker)
        stack.event("broker_up", broker=broker, **detail)
        return {"broker": broker, "up": True, **detail}

    def rtt(p: Params, b: Body) -> Body:
        broker, rtt_ms = int(p["broker"]), int(b["rtt_ms"])
        if rtt_ms < 0:
            raise ControlError(f"rtt_ms must be >= 0, got {rtt_ms}")
        kafka.set_rtt(broker, rtt_ms)
        stack.event("broker_rtt", broker=broker, rtt_ms=rtt_ms)
        return {"broker": broker, "rtt_ms": rtt_ms}

    def push_errors(p: Params, b: Body) -> Body:
        api_key = int(b["api_key"])
        errors = [int(e) for e in b["errors"]]
        broker = b.get("broker_id")
        rtts = [int(r) for r in b.get("rtts_ms", [])]
        kafka.push_request_errors(
            api_key, errors, broker=None if broker is None else int(broker), rtts_ms=rtts
        )
        stack.event("request_errors_pushed", api_key=api_key, errors=errors, broker=broker)
        return {"api_key": api_key, "count": len(errors)}

    def clear_errors(p: Params, b: Body) -> Body:
        api_key = int(p["api_key"])
        kafka.clear_request_errors(api_key)
        stack.event("request_errors_cleared", api_key=api_key)
        return {"api_key": api_key, "cleared": True}

    def leader(p: Params, b: Body) -> Body:
        name, partition, broker = str(b["topic"]), int(b["partition"]), int(b["broker_id"])
        kafka.move_leader(name, partition, broker)
        stack.event("leader_moved", topic=name, partition=partition, leader=broker)
        return {"topic": name, "partition": partition, "leader": broker}

    def delete_records(p: Params, b: Body) -> Body:
        name = p["topic"]
        before = {int(k): int(v) for k, v in dict(b["before"]).items()}
        if any(o < 0 for o in before.values()):
            raise ControlError(f"offsets in 'before' must be >= 0, got {before}")
        low = kafka.delete_records(name, before)
        stack.event("records_deleted", topic=name, before=before, low_watermarks=low)
        return {"topic": name, "low_watermarks": {str(k): v for k, v in low.items()}}

    def recreate_topic(p: Params, b: Body) -> Body:
        name = p["topic"]
        detail = kafka.recreate_topic(name)
        stack.event("topic_recreated", topic=name, **detail)
        return {"topic": name, **detail}

    def signal_component(p: Params, b: Body) -> Body:
        name = p["name"]
        component(name)
        sig_name = str(b.get("signal", "SIGKILL"))
        try:
            signum = signal.Signals[sig_name]
        except KeyError:
            raise ControlError(f"unknown signal {sig_name!r}; use e.g. SIGKILL or SIGTERM") from None
        pid = supervisor().signal(name, signum)
        stack.event("component_signalled", component=name, signal=sig_name, pid=pid)
        return {"component": name, "signal": sig_name, "pid": pid}

    def pause(p: Params, b: Body) -> Body:
        component(p["name"])
        supervisor().pause(p["name"])
        stack.event("component_paused", component=p["name"])
        return {"component": p["name"], "paused": True}

    def resume(p: Params, b: Body) -> Body:
        component(p["name"])
        pid = supervisor().resume(p["name"])
        stack.event("component_resumed", component=p["name"], pid=pid)
        return {"component": p["name"], "paused": False, "pid": pid}

    def fail(p: Params, b: Body) -> Body:
        component(p["name"])
        reason = str(b.get("reason") or "failed on request")
        trace = supervisor().fail(p["name"], reason)
        stack.event("component_failed", component=p["name"], reason=reason)
        return {"component": p["name"], "failed": True, "trace": trace}

    def arm(p: Params, b: Body) -> Body:
        component(p["name"])
        paths.crash_point(p["name"]).write_text(str(b["point"]), encoding="utf-8")
        stack.event("crash_point_armed", component=p["name"], point=str(b["point"]))
        return {"component": p["name"], "armed": True}

    def armed(p: Params, b: Body) -> Body:
        return {"component": p["name"], "armed": paths.crash_point(p["name"]).exists()}

    def disarm(p: Params, b: Body) -> Body:
        paths.crash_point(p["name"]).unlink(missing_ok=True)
        return {"component": p["name"], "armed": False}

    def workload_get(p: Params, b: Body) -> Body:
        from datadrill.config import WorkloadConfig

        current = WorkloadConfig.model_validate_json(paths.workload_file.read_text(encoding="utf-8"))
        return current.model_dump()

    def workload_set(p: Params, b: Body) -> Body:
        from datadrill.config import WorkloadConfig
        from datadrill.platform.component import write_json_atomic

        updated = WorkloadConfig.model_validate({**workload_get(p, b), **b})
        write_json_atomic(paths.workload_file, updated.model_dump())
        stack.event("workload_changed", **updated.model_dump())
        return updated.model_dump()

    def sink_throttle(p: Params, b: Body) -> Body:
        limit = b.get("rows_per_s")
        if limit is None:
            paths.sink_throttle.unlink(missing_ok=True)
        elif float(limit) <= 0:
            raise ControlError(f"rows_per_s must be > 0 (or null for no limit), got {limit}")
        else:
            paths.sink_throttle.write_text(str(float(limit)), encoding="utf-8")
        stack.event("sink_throttle", rows_per_s=limit)
        return {"rows_per_s": limit}

    def contract_get(p: Params, b: Body) -> Body:
        return {"writer": _read(paths.relay_writer) or None, "enforce": _read(paths.relay_enforce) != "off"}

    def contract_set(p: Params, b: Body) -> Body:
        writer = b.get("writer")
        if writer:
            paths.relay_writer.write_text(str(writer), encoding="utf-8")
        else:
            paths.relay_writer.unlink(missing_ok=True)
        if bool(b.get("enforce", True)):
            paths.relay_enforce.unlink(missing_ok=True)
        else:
            paths.relay_enforce.write_text("off", encoding="utf-8")
        stack.event("producer_contract", writer=writer, enforce=bool(b.get("enforce", True)))
        return contract_get(p, b)

    def shutdown(p: Params, b: Body) -> Body:
        stack.stop_requested.set()
        return {"stopping": True}

    # Declared components' names too (config.COMPONENT_NAME_PATTERN).
    name = r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
    run_id = r"(?P<run_id>[A-Za-z0-9_-]+)"
    topic_name = r"(?P<topic>[A-Za-z0-9._-]+)"  # Kafka's legal topic characters
    leases = stack.leases
    return [
        ("GET", "/runs/lease", lambda p, b: leases.current()),
        ("POST", "/runs/lease", lambda p, b: leases.acquire(b)),
        ("POST", f"/runs/lease/{run_id}/renew", lambda p, b: leases.renew(p["run_id"])),
        ("DELETE", f"/runs/lease/{run_id}", lambda p, b: leases.release(p["run_id"])),
        ("GET", "/health", lambda p, b: {"ok": True, "pid": os.getpid()}),
        ("GET", "/status", lambda p, b: stack_status(stack)),
        ("GET", "/components", lambda p, b: {"components": process_entries(stack)}),
        ("GET", f"/components/{name}", lambda p, b: component(p["name"])),
        ("POST", "/kafka/topics", topic),
        ("POST", r"/kafka/brokers/(?P<broker>\d+)/down", broker_down),
        ("POST", r"/kafka/brokers/(?P<broker>\d+)/up", broker_up),
        ("POST", r"/kafka/brokers/(?P<broker>-?\d+)/rtt", rtt),
        ("POST", "/kafka/request-errors", push_errors),
        ("DELETE", r"/kafka/request-errors/(?P<api_key>\d+)", clear_errors),
        ("POST", "/kafka/partitions/leader", leader),
        ("GET", "/kafka/leaders", lambda p, b: kafka.leaders()),
        ("POST", rf"/kafka/topics/{topic_name}/delete-records", delete_records),
        ("POST", rf"/kafka/topics/{topic_name}/recreate", recreate_topic),
        ("POST", f"/components/{name}/signal", signal_component),
        ("POST", f"/components/{name}/pause", pause),
        ("POST", f"/components/{name}/resume", resume),
        ("POST", f"/components/{name}/fail", fail),
        ("POST", f"/components/{name}/crash-point", arm),
        ("GET", f"/components/{name}/crash-point", armed),
        ("DELETE", f"/components/{name}/crash-point", disarm),
        ("GET", "/workload", workload_get),
        ("POST", "/workload", workload_set),
        ("POST", "/platform/sink-throttle", sink_throttle),
        ("GET", "/platform/producer-contract", contract_get),
        ("POST", "/platform/producer-contract", contract_set),
        ("POST", "/shutdown", shutdown),
    ]
