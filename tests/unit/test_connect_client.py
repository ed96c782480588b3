"""The Kafka Connect REST client against httpx.MockTransport: what it sends, how it reads
Connect's documents, and the one-line errors it raises."""

from __future__ import annotations

import httpx
import pytest

from datadrill.errors import ControlError
from datadrill.interfaces.connect_client import ConnectClient, ConnectError, ConnectOffset

URL = "http://127.0.0.1:8083"
STATUS = {
    "name": "orders-sink",
    "connector": {"state": "RUNNING", "worker_id": "10.0.0.5:8083"},
    "tasks": [
        {"id": 0, "state": "RUNNING", "worker_id": "10.0.0.5:8083"},
        {"id": 1, "state": "FAILED", "worker_id": "10.0.0.6:8083", "trace": "org.apache.kafka...\n\tat ..."},
    ],
    "type": "sink",
}


def client(handler: object, seen: list[httpx.Request] | None = None) -> ConnectClient:
    def transport(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return handler(request)  # type: ignore[operator]

    return ConnectClient(URL, transport=httpx.MockTransport(transport))


def test_status_is_typed() -> None:
    status = client(lambda r: httpx.Response(200, json=STATUS)).status("orders-sink")
    assert status.state == "RUNNING" and status.type == "sink"
    assert [t.state for t in status.tasks] == ["RUNNING", "FAILED"]
    assert status.failed_tasks[0].trace == "org.apache.kafka...\n\tat ..."
    assert not status.running
    assert status.describe() == "orders-sink RUNNING (task 1 FAILED)"


def test_a_stopped_connector_with_no_tasks_is_not_running() -> None:
    doc = {
        "name": "relay",
        "connector": {"state": "STOPPED", "worker_id": "w"},
        "tasks": [],
        "type": "source",
    }
    status = client(lambda r: httpx.Response(200, json=doc)).status("relay")
    assert not status.running and status.describe() == "relay STOPPED"


def test_actions_send_connects_methods_and_parameters() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/restart") and request.url.params.get("includeTasks") == "true":
            return httpx.Response(202, json=STATUS)
        return httpx.Response(204 if request.method != "PUT" or "stop" in request.url.path else 202)

    connect = client(answer, seen)
    connect.pause("s")
    connect.resume("s")
    connect.stop("s")
    assert connect.restart("s") is None  # 204: the connector instance alone
    answered = connect.restart("s", include_tasks=True, only_failed=True)
    assert answered is not None and answered.name == "orders-sink"
    connect.restart_task("s", 1)
    assert [(r.method, r.url.path, r.url.query.decode()) for r in seen] == [
        ("PUT", "/connectors/s/pause", ""),
        ("PUT", "/connectors/s/resume", ""),
        ("PUT", "/connectors/s/stop", ""),
        ("POST", "/connectors/s/restart", "includeTasks=false&onlyFailed=false"),
        ("POST", "/connectors/s/restart", "includeTasks=true&onlyFailed=true"),
        ("POST", "/connectors/s/tasks/1/restart", ""),
    ]


def test_offsets_and_listing() -> None:
    offsets = {
        "offsets": [
            {"partition": {"kafka_topic": "orders.v1", "kafka_partition": 2}, "offset": {"kafka_offset": 41}}
        ]
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/connectors" and request.url.params.get("expand") == "status":
            return httpx.Response(200, json={"orders-sink": {"status": STATUS}})
        if request.url.path == "/connectors":
            return httpx.Response(200, json=["orders-sink"])
        return httpx.Response(200, json=offsets)

    connect = client(answer)
    assert connect.connectors() == ("orders-sink",)
    assert connect.statuses()["orders-sink"].tasks[1].state == "FAILED"
    assert connect.offsets("orders-sink") == (
        ConnectOffset({"kafka_topic": "orders.v1", "kafka_partition": 2}, {"kafka_offset": 41}),
    )


def test_an_error_document_names_the_url_the_request_and_connects_message() -> None:
    body = {"error_code": 404, "message": "Connector orders-jdbc not found"}
    connect = client(lambda r: httpx.Response(404, json=body))
    with pytest.raises(ConnectError) as caught:
        connect.pause("orders-jdbc")
    assert str(caught.value) == (
        f"Kafka Connect at {URL}: PUT /connectors/orders-jdbc/pause → 404: Connector orders-jdbc not found"
    )
    assert caught.value.status == 404
    assert isinstance(caught.value, ControlError)  # one line at the CLI, like the stack's own errors


def test_a_rebalance_conflict_and_a_non_json_error_are_one_line_too() -> None:
    conflict = {"error_code": 409, "message": "Cannot complete request because of a conflicting operation"}
    with pytest.raises(ConnectError, match=r"→ 409: Cannot complete request because of a conflicting"):
        client(lambda r: httpx.Response(409, json=conflict)).restart("s", include_tasks=True)
    with pytest.raises(ConnectError, match=r"→ 502: bad gateway"):
        client(lambda r: httpx.Response(502, text="bad gateway")).connectors()


def test_an_unreachable_worker_names_its_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(
        ConnectError, match=rf"Kafka Connect at {URL}: GET /connectors failed: connection refused"
    ):
        client(refuse).connectors()


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(ConnectError, match="not JSON"):
        client(lambda r: httpx.Response(200, text="<html>")).version()
