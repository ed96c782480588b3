"""StackClient's typed methods against the control API, through httpx's MockTransport:
the requests each method makes, the answers it parses, and the errors it raises."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from datadrill.config import StackConfig
from datadrill.errors import ControlError, StackNotRunning, StackProcessDied
from datadrill.paths import StatePaths
from datadrill.stack.client import StackClient
from datadrill.stack.port import KafkaCapability, ProducerContract, Stack

URL = "http://127.0.0.1:5999"


def _client(tmp_path: Path, handler: Any, *, pid: int | None = None, **state: Any) -> StackClient:
    base = {"control_url": URL, "bootstrap_servers": "127.0.0.1:1", "pid": pid or os.getpid(), **state}
    return StackClient(StatePaths(tmp_path), StackConfig(), base, transport=httpx.MockTransport(handler))


def _recorder(answers: dict[tuple[str, str], Any]) -> tuple[list[tuple[str, str, Any]], Any]:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        answer = answers.get((request.method, request.url.path), {})
        return httpx.Response(200, json=answer)

    return seen, handler


def test_the_client_is_a_stack(tmp_path: Path) -> None:
    assert isinstance(_client(tmp_path, lambda r: httpx.Response(200, json={})), Stack)


def test_kafka_methods_make_the_control_requests(tmp_path: Path) -> None:
    seen, handler = _recorder({})
    kafka = _client(tmp_path, handler).kafka
    kafka.broker_down(2)
    kafka.broker_up(2)
    kafka.set_rtt(-1, 100)
    kafka.push_request_errors(0, [6, 6])
    kafka.clear_request_errors(0)
    kafka.move_leader("orders.v1", 3, 1)
    assert seen == [
        ("POST", "/kafka/brokers/2/down", {}),
        ("POST", "/kafka/brokers/2/up", {}),
        ("POST", "/kafka/brokers/-1/rtt", {"rtt_ms": 100}),
        ("POST", "/kafka/request-errors", {"api_key": 0, "errors": [6, 6]}),
        ("DELETE", "/kafka/request-errors/0", None),
        ("POST", "/kafka/partitions/leader", {"topic": "orders.v1", "partition": 3, "broker_id": 1}),
    ]


def test_capabilities_and_their_reasons_come_from_the_state_file(tmp_path: Path) -> None:
    stack = _client(
        tmp_path,
        lambda r: httpx.Response(200, json={}),
        kafka_capabilities={"broker_loss": "", "broker_rtt": "", "leader_move": "a mock-only fault"},
    )
    assert stack.kafka.capabilities == {KafkaCapability.BROKER_LOSS, KafkaCapability.BROKER_RTT}
    assert stack.kafka.why_not(KafkaCapability.LEADER_MOVE) == "a mock-only fault"
    assert "does not say" in stack.kafka.why_not(KafkaCapability.DELETE_RECORDS)


def test_components_workload_and_platform_parse_typed_answers(tmp_path: Path) -> None:
    seen, handler = _recorder(
        {
            ("GET", "/components/sink"): {"name": "sink", "endpoint": "-", "healthy": False, "detail": "PAUSED",
                                          "pid": None, "paused": True, "restarts": 2},
            ("POST", "/components/sink/resume"): {"pid": 4321},
            ("GET", "/workload"): {"rate": 50.0, "canary_interval_s": 0.5},
            ("POST", "/workload"): {"rate": 0.0, "canary_interval_s": 0.5},
            ("GET", "/platform/producer-contract"): {"writer": "rename", "enforce": False},
        }
    )
    stack = _client(tmp_path, handler)
    sink = stack.components.get("sink")
    assert sink.paused and sink.pid is None and sink.restarts == 2
    assert stack.components.resume("sink") == 4321
    assert stack.workload.get().rate == 50.0
    assert stack.workload.set(rate=0).rate == 0.0
    assert stack.platform.producer_contract() == ProducerContract(writer="rename", enforce=False)
    stack.platform.set_producer_contract(ProducerContract())
    stack.platform.throttle_sink(None)
    assert ("POST", "/workload", {"rate": 0}) in seen  # only what was asked to change
    assert ("POST", "/platform/producer-contract", {"writer": None, "enforce": True}) in seen
    assert ("POST", "/platform/sink-throttle", {"rows_per_s": None}) in seen


def test_a_refusal_is_a_control_error_with_the_stacks_reason(tmp_path: Path) -> None:
    stack = _client(tmp_path, lambda r: httpx.Response(400, json={"error": "unknown component 'nosuch'"}))
    with pytest.raises(ControlError, match=r"POST /components/nosuch/signal: unknown component 'nosuch'"):
        stack.components.kill("nosuch")


def test_an_unreachable_stack_says_whether_its_process_died(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    alive = _client(tmp_path, refuse)  # this test's own pid: alive
    with pytest.raises(StackNotRunning, match="unreachable") as caught:
        alive.status()
    assert not isinstance(caught.value, StackProcessDied)
    dead = _client(tmp_path, refuse, pid=2**22 + 12345)  # above pid_max: never a live process
    with pytest.raises(StackProcessDied, match=r"stack process \(pid 4206649\) died"):
        dead.status()
    assert not dead.alive()


def test_only_loopback_control_urls_are_used(tmp_path: Path) -> None:
    stack = StackClient(StatePaths(tmp_path), StackConfig(), {"control_url": "http://10.0.0.1:80", "pid": 1})
    with pytest.raises(ControlError, match="loopback only"):
        stack.status()
