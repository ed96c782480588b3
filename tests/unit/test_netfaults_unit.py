"""Pure logic of the fault proxy: loopback guard, toxic validation, routing and JSON shapes. No sockets."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest

import datadrill.netfaults as netfaults
from datadrill.errors import ConfigError, ControlError
from datadrill.netfaults.__main__ import main
from datadrill.netfaults.admin import ToxiproxyAdmin
from datadrill.netfaults.engine import FaultProxyEngine
from datadrill.netfaults.http_api import (
    VERSION,
    ApiApp,
    ApiError,
    Route,
    error_json,
    parse_proxy_request,
    resolve_route,
)
from datadrill.netfaults.spec import (
    HostPort,
    ProxyInfo,
    Stream,
    ToxicType,
    make_toxic,
    parse_address,
    parse_allowed_address,
    parse_attributes,
    parse_toxic,
    update_toxic_spec,
)
from datadrill.netfaults.toxics import run_class
from datadrill.safety import HostPolicy

# --------------------------------------------------------------------------- public surface


def test_public_names_are_pinned() -> None:
    assert netfaults.__all__ == [
        "FaultProxyError",
        "FaultProxyServer",
        "FaultProxyUnreachable",
        "HostPolicy",
        "ProxyAlreadyExists",
        "ProxyInfo",
        "ProxyNotFound",
        "Stream",
        "TargetNotAllowed",
        "ToxicAlreadyExists",
        "ToxicNotFound",
        "ToxicSpec",
        "ToxicType",
        "ToxiproxyAdmin",
        "is_loopback_host",
        "make_toxic",
    ]


def test_errors_sit_under_the_project_roots() -> None:
    assert issubclass(netfaults.TargetNotAllowed, ConfigError)
    for error in (netfaults.ProxyNotFound, netfaults.ToxicAlreadyExists, netfaults.FaultProxyUnreachable):
        assert issubclass(error, netfaults.FaultProxyError) and issubclass(error, ControlError)
    assert (netfaults.ProxyNotFound("x").status, netfaults.ToxicAlreadyExists("x").status) == (404, 409)


@pytest.mark.parametrize("toxic_type", list(ToxicType))
def test_every_toxic_type_has_an_implementation(toxic_type: ToxicType) -> None:
    assert run_class(toxic_type).__name__.lstrip("_").lower() == toxic_type.value.replace("_", "")


# --------------------------------------------------------------------------- blast radius


def test_the_proxy_decides_through_the_one_host_policy() -> None:
    # The cases themselves are in test_host_policy.py, run against every entry point.
    from datadrill import safety

    assert netfaults.HostPolicy is safety.HostPolicy
    assert netfaults.is_loopback_host is safety.is_loopback


def test_refusal_names_the_host_and_the_setting() -> None:
    with pytest.raises(netfaults.TargetNotAllowed) as refused:
        parse_allowed_address(
            "10.1.2.3:5432", policy=HostPolicy(), source="proxy 'pg'", field="upstream", port_zero_ok=False
        )
    message = str(refused.value)
    assert refused.value.host == "10.1.2.3"
    assert "proxy 'pg': upstream = '10.1.2.3:5432'" in message
    assert "allow_hosts" in message and "--allow-host 10.1.2.3" in message


def test_an_allowed_address_is_returned_parsed() -> None:
    policy = HostPolicy(allow_hosts=("10.1.0.0/16",))
    assert parse_allowed_address(
        "10.1.2.3:5432", policy=policy, source="proxy 'pg'", field="upstream", port_zero_ok=False
    ) == HostPort("10.1.2.3", 5432)


def test_server_refuses_a_remote_api_address_before_binding() -> None:
    with pytest.raises(netfaults.TargetNotAllowed, match=re.escape("0.0.0.0")):
        netfaults.FaultProxyServer(listen="0.0.0.0:8474")


def test_standalone_refuses_a_remote_listen_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--listen", "10.0.0.1:0"]) == 2
    assert "--allow-host 10.0.0.1" in capsys.readouterr().err


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5432", HostPort("127.0.0.1", 5432)),
        ("[::1]:0", HostPort("::1", 0)),
        ("localhost:65535", HostPort("localhost", 65535)),
        (":8474", HostPort("0.0.0.0", 8474)),
    ],
)
def test_parse_address(text: str, expected: HostPort) -> None:
    assert parse_address(text, source="s", field="f", port_zero_ok=True) == expected


@pytest.mark.parametrize(
    "text", ["127.0.0.1", "::1:80", "[::1]80", "host:", "host:65536", "host:-1", "h:٣", 5432]
)
def test_parse_address_rejects(text: object) -> None:
    with pytest.raises(ConfigError, match="host:port"):
        parse_address(text, source="s", field="f", port_zero_ok=True)


def test_upstream_port_zero_is_rejected() -> None:
    with pytest.raises(ConfigError, match=re.escape("1..65535")):
        parse_address("127.0.0.1:0", source="s", field="upstream", port_zero_ok=False)


def test_host_port_brackets_ipv6() -> None:
    assert (str(HostPort("::1", 80)), str(HostPort("127.0.0.1", 80))) == ("[::1]:80", "127.0.0.1:80")


# --------------------------------------------------------------------------- toxics


def test_toxic_defaults_follow_upstream() -> None:
    spec = parse_toxic({"type": "latency", "attributes": {"latency": 100}})
    assert (spec.name, spec.stream, spec.toxicity) == ("latency_downstream", Stream.DOWNSTREAM, 1.0)
    assert spec.attributes == (("latency", 100), ("jitter", 0))
    assert parse_toxic({"type": "timeout", "stream": "Upstream"}).name == "timeout_upstream"


def test_make_toxic_builds_the_same_spec() -> None:
    assert make_toxic("bandwidth", stream="upstream", rate=50, name="bw") == parse_toxic(
        {"type": "bandwidth", "stream": "upstream", "name": "bw", "attributes": {"rate": 50}}
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "jitter"}, "type = 'jitter' is invalid: one of latency, bandwidth, timeout"),
        ({"type": "latency", "stream": "sideways"}, "stream = 'sideways' is invalid: upstream or downstream"),
        ({"type": "latency", "toxicity": 1.5}, "toxicity = 1.5 is invalid: a number from 0.0 to 1.0"),
        ({"type": "latency", "toxicity": True}, "toxicity = True is invalid"),
        ({"type": "latency", "toxcity": 0.5}, "toxcity = 0.5 is invalid: not a toxic field"),
        ({"type": "latency", "name": "a/b"}, "name = 'a/b' is invalid: a non-empty string without '/'"),
        (
            {"type": "latency", "attributes": {"latncy": 5}},
            "attributes.latncy = 5 is invalid: not an attribute of a latency toxic; its attributes are: latency, jitter",
        ),
        (
            {"type": "latency", "attributes": {"latency": -1}},
            "attributes.latency = -1 is invalid: a whole number of",
        ),
        ({"type": "latency", "attributes": {"latency": 1.5}}, "attributes.latency = 1.5 is invalid"),
        ({"type": "latency", "attributes": {"latency": "100"}}, "attributes.latency = '100' is invalid"),
        (
            {"type": "slow_close", "attributes": {"delay": 2**31}},
            "is invalid: a whole number of milliseconds, 0 to",
        ),
        ({"type": "bandwidth"}, "attributes.rate = None is invalid: missing; a bandwidth toxic needs rate"),
        (
            {"type": "bandwidth", "attributes": {"rate": 0}},
            "attributes.rate = 0 is invalid: a whole number of KB/s",
        ),
        (
            {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 10}},
            "size_variation = 10 is invalid: less than average_size (10)",
        ),
        ({"type": "limit_data", "attributes": [1]}, "attributes = [1] is invalid: an object with bytes"),
        ("latency", "body = 'latency' is invalid"),
    ],
)
def test_invalid_toxics_are_refused_with_the_value_and_what_is_allowed(raw: object, expected: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_toxic(raw)
    assert expected in str(refused.value)


def test_whole_floats_are_accepted_as_json_numbers_may_be() -> None:
    assert parse_attributes(ToxicType.TIMEOUT, {"timeout": 250.0}, source="s") == (("timeout", 250),)


def test_update_merges_attributes_and_keeps_identity() -> None:
    spec = parse_toxic({"type": "latency", "name": "slow", "attributes": {"latency": 100, "jitter": 5}})
    updated = update_toxic_spec(spec, {"attributes": {"jitter": 20}, "toxicity": 0.5, "type": "latency"})
    assert updated.attributes == (("latency", 100), ("jitter", 20))
    assert (updated.name, updated.toxicity) == ("slow", 0.5)
    with pytest.raises(ConfigError, match="type = 'bandwidth' is invalid: unchanged"):
        update_toxic_spec(spec, {"type": "bandwidth"})
    with pytest.raises(ConfigError, match=re.escape("attributes.latency = -5")):
        update_toxic_spec(spec, {"attributes": {"latency": -5}})


# --------------------------------------------------------------------------- JSON shapes


def test_toxic_json_matches_upstream_fields() -> None:
    spec = make_toxic("limit_data", stream="upstream", toxicity=0.25, bytes=10)
    assert spec.to_json() == {
        "attributes": {"bytes": 10},
        "name": "limit_data_upstream",
        "type": "limit_data",
        "stream": "upstream",
        "toxicity": 0.25,
    }


def test_proxy_json_matches_upstream_fields() -> None:
    info = ProxyInfo("pg", "127.0.0.1:4000", "127.0.0.1:5432", True, (make_toxic("timeout"),))
    assert info.to_json() == {
        "name": "pg",
        "listen": "127.0.0.1:4000",
        "upstream": "127.0.0.1:5432",
        "enabled": True,
        "toxics": [make_toxic("timeout").to_json()],
    }
    assert (info.listen_host, info.listen_port) == ("127.0.0.1", 4000)


def test_error_json_matches_upstream() -> None:
    assert error_json("proxy not found", 404) == {"error": "proxy not found", "status": 404}


def test_proxy_request_defaults_to_loopback_and_enabled() -> None:
    assert parse_proxy_request({"name": "pg", "upstream": "127.0.0.1:5432"}) == (
        "pg",
        "127.0.0.1:0",
        "127.0.0.1:5432",
        True,
    )
    with pytest.raises(ConfigError, match="enabled = 'yes' is invalid: true or false"):
        parse_proxy_request({"name": "pg", "upstream": "127.0.0.1:5432", "enabled": "yes"})


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("method", "target", "route", "names"),
    [
        ("GET", "/version", Route.VERSION, ()),
        ("POST", "/reset", Route.RESET, ()),
        ("GET", "/proxies", Route.PROXIES, ()),
        ("POST", "/proxies/", Route.PROXIES, ()),
        ("POST", "/populate", Route.POPULATE, ()),
        ("PATCH", "/proxies/pg", Route.PROXY, ("pg",)),
        ("GET", "/proxies/my%20proxy?x=1", Route.PROXY, ("my proxy",)),
        ("POST", "/proxies/pg/toxics", Route.TOXICS, ("pg",)),
        ("DELETE", "/proxies/pg/toxics/latency_downstream", Route.TOXIC, ("pg", "latency_downstream")),
    ],
)
def test_routes(method: str, target: str, route: Route, names: tuple[str, ...]) -> None:
    assert resolve_route(method, target) == (route, names)


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [("GET", "/", 404), ("GET", "/proxies/a/b", 404), ("DELETE", "/proxies", 405), ("POST", "/version", 405)],
)
def test_route_errors(method: str, target: str, status: int) -> None:
    with pytest.raises(ApiError) as failed:
        resolve_route(method, target)
    assert failed.value.status == status


# --------------------------------------------------------------------------- the API over an idle engine


@pytest.fixture
def app() -> Iterator[ApiApp]:
    """The request handling with a real engine. Only disabled proxies are created: no sockets."""
    loop = asyncio.new_event_loop()

    async def make() -> FaultProxyEngine:
        return FaultProxyEngine(policy=HostPolicy(), rng=random.Random(7))

    engine = loop.run_until_complete(make())

    def call(coro: Any) -> Any:
        return loop.run_until_complete(coro)

    yield ApiApp(engine, call)
    loop.run_until_complete(engine.close())
    loop.close()


def json_call(app: ApiApp, method: str, target: str, body: bytes = b"", **kw: str) -> tuple[int, object]:
    response = app.handle(method, target, body, **kw)
    return response.status, response.body


def test_api_over_a_disabled_proxy(app: ApiApp) -> None:
    create = b'{"name": "pg", "listen": "127.0.0.1:0", "upstream": "localhost:5432", "enabled": false}'
    assert json_call(app, "POST", "/proxies", create) == (
        201,
        {"name": "pg", "listen": "127.0.0.1:0", "upstream": "localhost:5432", "enabled": False, "toxics": []},
    )
    assert json_call(app, "POST", "/proxies", create)[0] == 409
    toxic = b'{"type": "latency", "stream": "upstream", "attributes": {"latency": 5}}'
    status, added = json_call(app, "POST", "/proxies/pg/toxics", toxic)
    assert status == 200 and isinstance(added, dict) and added["name"] == "latency_upstream"
    assert json_call(app, "POST", "/proxies/pg/toxics", toxic)[0] == 409
    assert json_call(app, "GET", "/proxies/pg/toxics") == (200, [added])
    assert json_call(app, "DELETE", "/proxies/pg/toxics/latency_upstream") == (204, None)
    assert json_call(app, "DELETE", "/proxies/pg/toxics/latency_upstream")[0] == 404
    assert json_call(app, "DELETE", "/proxies/pg") == (204, None)
    assert json_call(app, "GET", "/proxies") == (200, {})


@pytest.mark.parametrize(
    ("method", "target", "body", "status", "fragment"),
    [
        ("GET", "/version", b"", 200, VERSION),
        ("GET", "/proxies/nope", b"", 404, "proxy 'nope' not found"),
        ("POST", "/proxies/nope/toxics", b'{"type": "timeout"}', 404, "proxy 'nope' not found"),
        ("POST", "/proxies", b"{not json", 400, "not JSON"),
        ("POST", "/proxies", b"[]", 400, "expected a JSON object"),
        ("POST", "/proxies", b'{"name": "pg"}', 400, "upstream = None is invalid: missing required field"),
        ("POST", "/proxies", b'{"name": "pg", "upstream": "10.1.2.3:5432"}', 400, "allow_hosts"),
        (
            "POST",
            "/proxies",
            b'{"name": "pg", "upstream": "db.internal:5432"}',
            400,
            "'db.internal' is outside",
        ),
        ("POST", "/populate", b'{"name": "pg"}', 400, "expected a JSON array"),
        ("POST", "/reset", b"", 204, ""),
    ],
)
def test_api_answers(app: ApiApp, method: str, target: str, body: bytes, status: int, fragment: str) -> None:
    response = app.handle(method, target, body)
    assert response.status == status
    assert fragment in response.encode().decode()
    if status >= 400:
        assert isinstance(response.body, dict) and set(response.body) == {"error", "status"}


def test_api_refuses_browsers(app: ApiApp) -> None:
    assert app.handle("GET", "/proxies", b"", user_agent="Mozilla/5.0 (X11)").status == 403


# --------------------------------------------------------------------------- the client's edge


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8474", "127.0.0.1:8474", "http://:8474", "http://h:99999"])
def test_admin_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="ToxiproxyAdmin: url"):
        ToxiproxyAdmin(url)


def test_admin_validates_toxics_before_sending() -> None:
    # Nothing listens at this URL: a request would fail differently.
    with pytest.raises(ConfigError, match=re.escape("attributes.rate = -1")):
        ToxiproxyAdmin("http://127.0.0.1:9").add_toxic("pg", "bandwidth", rate=-1)
