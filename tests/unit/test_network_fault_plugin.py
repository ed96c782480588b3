"""Network faults: the spec's validation, and the plugin driving a real fault proxy over
Toxiproxy's API on loopback (the stack is stood in for by what the plugin reads of it)."""

from __future__ import annotations

import socket
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_stack import FakeNetwork, FakeStack
from pydantic import ValidationError

from datadrill.clock import MonotonicClock
from datadrill.engine.loader import load_scenario
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.faults.conformance import check_plugin
from datadrill.faults.ledger import FaultLedger
from datadrill.faults.network import NetworkToxicFault
from datadrill.model import NetworkFault
from datadrill.netfaults import FaultProxyServer, ToxiproxyAdmin
from datadrill.stack.port import ProxyPath


def test_a_valid_network_fault_describes_itself() -> None:
    fault = NetworkFault(at_s=1, duration_s=5, toxic="latency", attributes={"latency": 800, "jitter": 50})
    assert fault.describe() == "latency on the query path (jitter=50, latency=800), downstream, for 5 s"
    assert fault.toxic_name == "datadrill_latency_downstream"
    assert NetworkFault(at_s=0, duration_s=2, toxic="down").describe() == "query path down for 2 s"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"toxic": "bandwidth"}, "attributes.rate"),
        ({"toxic": "latency", "attributes": {"latncy": 5}}, "attributes.latncy"),
        ({"toxic": "latency", "attributes": {"latency": -1}}, "attributes.latency"),
        ({"toxic": "down", "attributes": {"timeout": 5}}, "takes no attributes"),
        ({"toxic": "slicer"}, "'down'"),
        ({"toxic": "latency", "toxicity": 1.5}, "toxicity"),
        ({"toxic": "latency", "duration_s": -1}, "duration_s"),
        ({"toxic": "latency", "path": "query/../x"}, "path"),
    ],
)
def test_malformed_network_faults_are_refused(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        NetworkFault(**{"at_s": 0, "duration_s": 1, **fields})
    assert expected in str(caught.value)


def test_a_scenario_with_a_bad_network_fault_names_file_field_and_value(tmp_path: Path) -> None:
    module = tmp_path / "bad_network.py"
    module.write_text(
        textwrap.dedent(
            """
            from datadrill.model import SLO, NetworkFault, QuerySuccess, Scenario

            SCENARIO = Scenario(
                name="bad-network",
                slos=(SLO("q", sli=QuerySuccess(), objective=0.99),),
                schedule=(NetworkFault(at_s=1, duration_s=2, toxic="bandwidth", attributes={"rate": 0}),),
            )
            """
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_scenario(module)
    message = str(caught.value)
    assert "bad_network.py" in message and "rate" in message and "0" in message


def test_overlapping_toxics_of_one_kind_on_one_path_are_refused(tmp_path: Path) -> None:
    module = tmp_path / "overlap.py"
    module.write_text(
        textwrap.dedent(
            """
            from datadrill.model import SLO, NetworkFault, QuerySuccess, Scenario

            SCENARIO = Scenario(
                name="overlap",
                slos=(SLO("q", sli=QuerySuccess(), objective=0.99),),
                schedule=(
                    NetworkFault(at_s=1, duration_s=5, toxic="latency", attributes={"latency": 10}),
                    NetworkFault(at_s=3, duration_s=5, toxic="latency", attributes={"latency": 20}),
                ),
            )
            """
        )
    )
    with pytest.raises(ConfigError, match="overlap"):
        load_scenario(module)


# -- the plugin against a real fault proxy ----------------------------------------------------


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                if data:
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[DrillContext, ToxiproxyAdmin]]:
    echo, port = _echo_server()
    server = FaultProxyServer()
    url = server.start()
    admin = ToxiproxyAdmin(url)
    listen = admin.create_proxy("query", "127.0.0.1:0", f"127.0.0.1:{port}").listen
    stack = FakeStack(tmp_path / "stack")
    stack.network = FakeNetwork(url, {"query": ProxyPath("query", listen, f"127.0.0.1:{port}")})
    context = DrillContext(stack, tmp_path, MonotonicClock())
    try:
        yield context, admin
    finally:
        server.stop()
        echo.close()


def _round_trip(listen: str) -> bytes:
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"ping")
        return conn.recv(1024)


@pytest.mark.parametrize(
    "spec",
    [
        NetworkFault(at_s=0, duration_s=1, toxic="latency", attributes={"latency": 50}),
        NetworkFault(at_s=0, duration_s=1, toxic="reset_peer", attributes={"timeout": 0}),
        NetworkFault(at_s=0, duration_s=1, toxic="limit_data", stream="upstream", attributes={"bytes": 1}),
        NetworkFault(at_s=0, duration_s=1, toxic="down"),
    ],
    ids=lambda s: s.toxic,
)
def test_the_network_plugin_conforms(
    proxied: tuple[DrillContext, ToxiproxyAdmin], tmp_path: Path, spec: NetworkFault
) -> None:
    context, admin = proxied
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    assert check_plugin(NetworkToxicFault(), spec, context, ledger=ledger) == []
    info = admin.get_proxy("query")
    assert info.enabled and info.toxics == ()
    assert _round_trip(info.listen) == b"ping"


def test_applied_toxics_take_effect_and_revert_removes_them(
    proxied: tuple[DrillContext, ToxiproxyAdmin],
) -> None:
    context, admin = proxied
    plugin = NetworkToxicFault()
    listen = admin.get_proxy("query").listen
    spec = NetworkFault(at_s=0, duration_s=1, toxic="reset_peer", attributes={"timeout": 0})
    data = plugin.prepare(spec, context)
    plugin.apply(spec, context, data)
    assert [t.name for t in admin.get_proxy("query").toxics] == ["datadrill_reset_peer_downstream"]
    try:
        answer = _round_trip(listen)
    except ConnectionResetError:
        answer = b""
    assert answer == b"", "the connection should be reset instead of echoing"
    assert "removed" in plugin.revert(data, context)
    assert _round_trip(listen) == b"ping"

    down = NetworkFault(at_s=0, duration_s=1, toxic="down")
    data = plugin.prepare(down, context)
    plugin.apply(down, context, data)
    with pytest.raises(ConnectionRefusedError):
        _round_trip(listen)
    assert "up again" in plugin.revert(data, context)
    assert _round_trip(listen) == b"ping"
    assert plugin.revert(data, context).startswith("nothing to do")


def test_revert_after_the_stack_is_gone_is_a_no_op(tmp_path: Path) -> None:
    server = FaultProxyServer()
    url = server.start()
    server.stop()
    stack = FakeStack(tmp_path / "stack")
    stack.network = FakeNetwork(url, {"query": ProxyPath("query", "127.0.0.1:1", "127.0.0.1:2")})
    context = DrillContext(stack, tmp_path, MonotonicClock())
    note = NetworkToxicFault().revert(
        {"api": url, "proxy": "query", "toxic": "datadrill_latency_downstream"}, context
    )
    assert note.startswith("nothing to do")


def test_an_unknown_path_names_the_proxies_there_are(proxied: tuple[DrillContext, ToxiproxyAdmin]) -> None:
    context, _ = proxied
    spec = NetworkFault(at_s=0, duration_s=1, toxic="down", path="catalog")
    with pytest.raises(ConfigError) as caught:
        NetworkToxicFault().prepare(spec, context)
    message = str(caught.value)
    assert "'catalog'" in message and "query" in message and "PostgreSQL" in message
