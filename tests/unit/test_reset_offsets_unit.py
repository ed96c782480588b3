"""ResetOffsets without Kafka: what ``to`` accepts, the step's spec, and Kafka Connect's
offsets routes (KIP-875) on the stack's real ConnectServer over an in-memory supervisor —
the codes and documents it answers before any consumer group is touched — and the
request shapes ConnectClient sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from datadrill.config import StackConfig, parse_config
from datadrill.interfaces.connect_api import ConnectServer
from datadrill.interfaces.connect_client import ConnectClient, ConnectError, ConnectOffset
from datadrill.model.recovery import ResetOffsets
from datadrill.paths import StatePaths
from datadrill.platform.group_offsets import GroupMove, PartitionMove, describe_to, parse_to
from datadrill.platform.supervisor import ProcessStatus


# -- to= --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("earliest", "earliest"),
        ("latest", "latest"),
        (0, 0),
        (1_700_000_000_000, 1_700_000_000_000),
        ("1700000000000", 1_700_000_000_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
    ],
)
def test_to_accepts_earliest_latest_epoch_ms_and_zoned_iso_times(value: object, expected: object) -> None:
    assert parse_to(value) == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2023-11-14T22:13:20", "needs a zone"),
        ("yesterday", "ISO-8601"),
        (-1, ">= 0"),
        (True, "expected"),
        (1.5, "expected"),
    ],
)
def test_to_refuses_the_rest_saying_what_is_allowed(value: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_to(value)


def test_describe_to_shows_a_timestamp_as_utc_time_and_ms() -> None:
    assert describe_to(1_700_000_000_000) == "2023-11-14T22:13:20.000+00:00 (1700000000000 ms)"
    assert describe_to("earliest") == "earliest"


def test_the_step_names_a_group_or_a_component() -> None:
    assert ResetOffsets(group="g").describe() == "reset consumer group g to earliest"
    assert ResetOffsets(component="enricher", to="latest").describe() == "reset enricher's offsets to latest"
    for bad in ({}, {"group": "g", "component": "c"}):
        with pytest.raises(ValidationError, match="either group"):
            ResetOffsets(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="needs a zone"):
        ResetOffsets(group="g", to="2026-01-01T00:00:00")


def test_a_move_reports_before_after_and_what_is_reprocessed() -> None:
    move = GroupMove(
        "g", "t", (PartitionMove(0, 10, 0, 0, 10), PartitionMove(1, None, 4, 0, 9)), "AdminClient"
    )
    # p0 re-reads 10; p1 had nothing committed: it reads 4..9 from its new offset.
    assert move.reprocess == 15
    assert move.describe() == "group g on t: p0 10→0, p1 none→4; 15 messages to reprocess (AdminClient)"
    skipped = GroupMove("g", "t", (PartitionMove(0, 2, 10, 0, 10),), "x")
    assert "8 messages skipped" in skipped.describe()
    assert json.loads(json.dumps(move.to_json()))["partitions"][1]["before"] is None


# -- the Connect API's offsets routes -----------------------------------------------------------
@dataclass
class Supervisor:
    procs: dict[str, ProcessStatus] = field(
        default_factory=lambda: {
            n: ProcessStatus(n, pid, True, False, 0, None, 1.0)
            for n, pid in (("workload", 11), ("relay", 12), ("sink", 13), ("enricher", 14), ("loader", 15))
        }
    )

    @property
    def names(self) -> list[str]:
        return list(self.procs)

    def status(self) -> list[ProcessStatus]:
        return list(self.procs.values())

    def set(self, name: str, **changes: object) -> None:
        self.procs[name] = replace(self.procs[name], **changes)  # type: ignore[arg-type]

    def pause(self, name: str) -> None:
        self.set(name, paused=True, running=False)

    def resume(self, name: str) -> int:
        self.set(name, paused=False, stopped=False, running=True)
        return 99

    def release(self, name: str) -> None:
        self.set(name, paused=False, stopped=False)

    def stop(self, name: str) -> None:
        self.set(name, stopped=True, running=False)

    def restart(self, name: str) -> int | None:
        return 100


def _config() -> StackConfig:
    return parse_config(
        {
            "components": {
                "enricher": {"command": ["python", "-m", "enricher"], "group": "enricher"},
                "loader": {"command": ["python", "-m", "loader"]},
            }
        },
        source="test",
    )


@pytest.fixture
def supervisor() -> Supervisor:
    return Supervisor()


@pytest.fixture
def connect(supervisor: Supervisor, tmp_path: Path) -> Iterator[ConnectClient]:
    paths = StatePaths(tmp_path)
    paths.make()
    # No Kafka behind it: every answer here comes before a consumer group is touched.
    server = ConnectServer(supervisor, paths, _config(), bootstrap_servers="127.0.0.1:9")
    server.start()
    client = ConnectClient(server.url)
    try:
        yield client
    finally:
        client.close()
        server.stop()


SOME = [ConnectOffset({"kafka_topic": "orders.v1", "kafka_partition": 0}, {"kafka_offset": 0})]


def test_offsets_move_only_while_the_connector_is_stopped(connect: ConnectClient) -> None:
    for call in (lambda: connect.reset_offsets("enricher"), lambda: connect.alter_offsets("enricher", SOME)):
        with pytest.raises(ConnectError) as caught:
            call()
        assert caught.value.status == 400
        assert (
            "Connectors must be in the STOPPED state before their offsets can be modified. This can be "
            "done for the specified connector by issuing a 'PUT' request to the "
            "'/connectors/enricher/stop' endpoint"
        ) in str(caught.value)


def test_the_reference_sink_and_relay_refuse_as_connect_answers_such_a_connector(
    connect: ConnectClient,
) -> None:
    for name, why in (("sink", "exactly once"), ("relay", "outbox")):
        connect.stop(name)
        assert connect.status(name).state == "STOPPED"
        for call in (lambda n=name: connect.reset_offsets(n), lambda n=name: connect.alter_offsets(n, SOME)):
            with pytest.raises(ConnectError) as caught:
                call()
            assert caught.value.status == 500
            message = str(caught.value)
            assert (
                f"Failed to modify offsets for connector {name} because it doesn't support external "
                "modification of offsets"
            ) in message
            assert why in message


def test_a_component_without_a_group_has_no_offsets_to_move(connect: ConnectClient) -> None:
    connect.stop("loader")
    with pytest.raises(ConnectError, match=r"\[components.loader\] names no consumer group") as caught:
        connect.reset_offsets("loader")
    assert caught.value.status == 500


def test_unknown_connectors_are_404(connect: ConnectClient) -> None:
    with pytest.raises(ConnectError) as caught:
        connect.reset_offsets("nope")
    assert caught.value.status == 404 and "Connector nope not found" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "Partitions / offsets need to be provided for an alter offsets request"),
        ({"offsets": []}, "Partitions / offsets need to be provided for an alter offsets request"),
        ({"offsets": [{"offset": {"kafka_offset": 1}}]}, "cannot be null or missing"),
        (
            {"offsets": [{"partition": {"kafka_topic": "t"}, "offset": {"kafka_offset": 1}}]},
            "must contain the keys 'kafka_topic' and 'kafka_partition'",
        ),
        (
            {"offsets": [{"partition": {"kafka_topic": "t", "kafka_partition": "x"}, "offset": None}]},
            "Partition values for sink connectors need to be integers",
        ),
        (
            {
                "offsets": [
                    {"partition": {"kafka_topic": "t", "kafka_partition": 0}, "offset": {"kafka_offset": -3}}
                ]
            },
            "Offset values for sink connectors need to be integers",
        ),
        (
            {"offsets": [{"partition": {"kafka_topic": "t", "kafka_partition": 0}, "offset": {"other": 1}}]},
            "should either be null or contain the key 'kafka_offset'",
        ),
    ],
)
def test_malformed_offsets_are_connects_400(
    connect: ConnectClient, body: dict[str, object], says: str
) -> None:
    response = httpx.patch(connect.url + "/connectors/enricher/offsets", json=body)
    assert response.status_code == 400
    document = response.json()
    assert document["error_code"] == 400 and says in document["message"]


def test_the_client_sends_connects_request_shapes() -> None:
    seen: list[tuple[str, str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        verb = "altered" if request.method == "PATCH" else "reset"
        return httpx.Response(
            200, json={"message": f"The offsets for this connector have been {verb} successfully"}
        )

    client = ConnectClient("http://connect:8083", transport=httpx.MockTransport(handler))
    offsets = [
        ConnectOffset({"kafka_topic": "orders.v1", "kafka_partition": 1}, {"kafka_offset": 42}),
        ConnectOffset({"kafka_topic": "orders.v1", "kafka_partition": 2}, {}),
    ]
    assert (
        client.alter_offsets("iceberg-sink", offsets)
        == "The offsets for this connector have been altered successfully"
    )
    assert (
        client.reset_offsets("iceberg-sink") == "The offsets for this connector have been reset successfully"
    )
    assert seen == [
        (
            "PATCH",
            "/connectors/iceberg-sink/offsets",
            {
                "offsets": [
                    {
                        "partition": {"kafka_topic": "orders.v1", "kafka_partition": 1},
                        "offset": {"kafka_offset": 42},
                    },
                    # An empty offset is sent as null: Connect resets that partition.
                    {"partition": {"kafka_topic": "orders.v1", "kafka_partition": 2}, "offset": None},
                ]
            },
        ),
        ("DELETE", "/connectors/iceberg-sink/offsets", None),
    ]
