"""One host policy, one table of cases, every entry point that checks a host.

Each case is ``(host, allow_hosts, allowed)``. Every entry point — the safety functions, each
config setting the loader checks, and each address the fault proxy checks — must agree with
the table: accept an allowed host, refuse any other with its own error naming the setting. No
name is ever resolved to decide (name resolution fails loudly throughout this module). Nothing
here opens a socket: configs are only loaded, proxies are created disabled and the proxy
server is only constructed.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from datadrill import safety
from datadrill.config import load_config
from datadrill.errors import ConfigError
from datadrill.netfaults import FaultProxyServer, TargetNotAllowed
from datadrill.netfaults.engine import FaultProxyEngine
from datadrill.netfaults.http_api import ApiApp
from datadrill.safety import HostPolicy

Case = tuple[str, tuple[str, ...], bool]

CASES: list[Case] = [
    # loopback needs no allow list, in every spelling
    ("127.0.0.1", (), True),
    ("127.255.255.254", (), True),
    ("::1", (), True),
    ("[::1]", (), True),
    ("::ffff:127.0.0.1", (), True),
    ("[::ffff:127.0.0.1]", (), True),
    ("localhost", (), True),
    ("LOCALHOST", (), True),
    ("localhost.", (), True),
    ("LocalHost.", (), True),
    # everything else is remote until listed; names are not resolved to find out
    ("0.0.0.0", (), False),
    ("::", (), False),
    ("10.1.2.3", (), False),
    ("::ffff:10.1.2.3", (), False),
    ("db.internal", (), False),
    ("localhost.localdomain", (), False),
    ("127.0.0.1.nip.io", (), False),
    ("127.1", (), False),  # loopback to inet_aton, but not an address we parse: remote
    # plain addresses in the list
    ("10.1.2.3", ("10.1.2.3",), True),
    ("10.1.2.4", ("10.1.2.3",), False),
    ("::ffff:10.1.2.3", ("10.1.2.3",), True),  # IPv4-mapped counts as its IPv4 address
    ("10.1.2.3", ("::ffff:10.1.2.3",), True),
    ("fd00::5", ("FD00:0::5",), True),  # same address, other spelling
    ("0.0.0.0", ("0.0.0.0",), True),
    # networks
    ("10.1.2.3", ("10.1.0.0/16",), True),
    ("10.1.255.255", ("10.1.0.0/16",), True),
    ("10.2.0.1", ("10.1.0.0/16",), False),
    ("::ffff:10.1.2.3", ("10.1.0.0/16",), True),
    ("fd00::1234", ("fd00::/8",), True),
    ("[fd00::1234]", ("fd00::/8",), True),
    ("fe80::1", ("fd00::/8",), False),
    ("10.1.2.3", ("::/0",), False),  # an IPv4 address is never inside an IPv6 network
    ("10.1.2.3", ("db.internal", "10.1.0.0/16"), True),
    # names in the list: case and the trailing dot do not matter, nothing else is implied
    ("db.internal", ("db.internal",), True),
    ("DB.Internal.", ("db.internal",), True),
    ("db.internal", ("DB.INTERNAL.",), True),
    ("db.internal.evil", ("db.internal",), False),
    ("evil.db.internal", ("db.internal",), False),
    ("db.internal", ("10.1.2.3",), False),
    ("db.internal", ("10.0.0.0/8",), False),
    ("10.1.2.3", ("db.internal",), False),
]


def _bracketed(host: str) -> str:
    """The host as it goes before ``:port`` in an address or a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# --------------------------------------------------------------------------- entry points


@dataclass(frozen=True)
class EntryPoint:
    """A way to have datadrill check a host: ``run`` returns if accepted, raises ``refusal`` if not."""

    run: Callable[[str, tuple[str, ...], Path], object]
    refusal: type[Exception]
    names: str  # what the refusal's message must name
    expressible: Callable[[Case], bool] = lambda case: True


def _is_loopback(host: str, allow: tuple[str, ...], tmp: Path) -> None:
    assert not allow  # only asked for cases without an allow list
    if not safety.is_loopback(host):
        raise ConfigError("is_loopback", "host", host, "loopback")


def _config(setting: str, build: Callable[[str], str]) -> Callable[[str, tuple[str, ...], Path], object]:
    """Load a datadrill.toml through the public loader with ``host`` at ``setting``."""

    def run(host: str, allow: tuple[str, ...], tmp: Path) -> object:
        section, key = setting.split(".")
        external = {
            "bootstrap_servers": "127.0.0.1:9092",
            "catalog_uri": "postgresql://drill:drill@127.0.0.1:5432/catalog",
        }
        tables: dict[str, dict[str, object]] = {"safety": {"allow_hosts": list(allow)}}
        if section == "external":
            tables["external"] = {**external, key: build(host)}
        else:
            tables[section] = {key: build(host)}
        # JSON strings and arrays of strings are valid TOML values.
        text = "".join(
            f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
            for name, table in tables.items()
        )
        path = tmp / "datadrill.toml"
        path.write_text(text, encoding="utf-8")
        return load_config(path)

    return run


def _postgres(host: str) -> str:
    return f"postgresql://drill:drill@{_bracketed(host)}:5432/catalog"


def _http(host: str) -> str:
    return f"http://{_bracketed(host)}:8080"


def _no_ipv6(case: Case) -> bool:
    # trino_url and schema_registry_url take http(s)://HOST:PORT with no ':' in HOST.
    return ":" not in case[0]


def _engine_call(allow: tuple[str, ...], use: Callable[[FaultProxyEngine], Any]) -> object:
    async def scenario() -> object:
        engine = FaultProxyEngine(policy=HostPolicy(allow))
        try:
            return await use(engine)
        finally:
            await engine.close()

    return asyncio.run(scenario())


def _proxy_upstream(host: str, allow: tuple[str, ...], tmp: Path) -> object:
    # Disabled: the upstream is only validated, never dialled, and nothing listens.
    return _engine_call(
        allow,
        lambda engine: engine.create_proxy("p", "127.0.0.1:0", f"{_bracketed(host)}:5432", enabled=False),
    )


def _proxy_listen(host: str, allow: tuple[str, ...], tmp: Path) -> object:
    return _engine_call(
        allow,
        lambda engine: engine.create_proxy("p", f"{_bracketed(host)}:0", "127.0.0.1:5432", enabled=False),
    )


def _proxy_update_upstream(host: str, allow: tuple[str, ...], tmp: Path) -> object:
    async def use(engine: FaultProxyEngine) -> object:
        await engine.create_proxy("p", "127.0.0.1:0", "127.0.0.1:5432", enabled=False)
        return await engine.update_proxy("p", upstream=f"{_bracketed(host)}:5432")

    return _engine_call(allow, use)


class ApiRefused(Exception):
    """The HTTP API answered 400."""


def _http_api_create(host: str, allow: tuple[str, ...], tmp: Path) -> object:
    loop = asyncio.new_event_loop()
    try:
        engine = FaultProxyEngine(policy=HostPolicy(allow))
        app = ApiApp(engine, loop.run_until_complete)
        body = {"name": "p", "upstream": f"{_bracketed(host)}:5432", "enabled": False}
        response = app.handle("POST", "/proxies", json.dumps(body).encode())
        loop.run_until_complete(engine.close())
    finally:
        loop.close()
    if response.status == 400:
        raise ApiRefused(response.encode().decode())
    assert response.status == 201, response.body
    return response.body


def _server_api_listen(host: str, allow: tuple[str, ...], tmp: Path) -> object:
    # The constructor validates the API's address; only start() would bind it.
    return FaultProxyServer(allow_hosts=allow, listen=f"{_bracketed(host)}:0")


ENTRY_POINTS: dict[str, EntryPoint] = {
    "safety.is_loopback": EntryPoint(_is_loopback, ConfigError, "loopback", lambda case: not case[1]),
    "safety.HostPolicy.check": EntryPoint(
        lambda host, allow, tmp: HostPolicy(allow).check(host, what="the test"),
        ConfigError,
        "safety.allow_hosts",
    ),
    "safety.check_host": EntryPoint(
        lambda host, allow, tmp: safety.check_host(host, allow_hosts=allow, what="the test"),
        ConfigError,
        "safety.allow_hosts",
    ),
    "safety.check_servers": EntryPoint(
        lambda host, allow, tmp: safety.check_servers(
            f"127.0.0.1:9092,{_bracketed(host)}:9092", allow_hosts=allow, what="the test"
        ),
        ConfigError,
        "safety.allow_hosts",
    ),
    "config catalog.uri": EntryPoint(_config("catalog.uri", _postgres), ConfigError, "catalog.uri"),
    "config external.bootstrap_servers": EntryPoint(
        _config("external.bootstrap_servers", lambda host: f"127.0.0.1:9092,{_bracketed(host)}:9093"),
        ConfigError,
        "external.bootstrap_servers",
    ),
    "config external.catalog_uri": EntryPoint(
        _config("external.catalog_uri", _postgres), ConfigError, "external.catalog_uri"
    ),
    "config external.direct_catalog_uri": EntryPoint(
        _config("external.direct_catalog_uri", _postgres), ConfigError, "external.direct_catalog_uri"
    ),
    "config external.trino_url": EntryPoint(
        _config("external.trino_url", _http), ConfigError, "external.trino_url", _no_ipv6
    ),
    "config external.toxiproxy_url": EntryPoint(
        _config("external.toxiproxy_url", _http), ConfigError, "external.toxiproxy_url"
    ),
    "config external.s3_endpoint": EntryPoint(
        _config("external.s3_endpoint", _http), ConfigError, "external.s3_endpoint"
    ),
    "config external.schema_registry_url": EntryPoint(
        _config("external.schema_registry_url", _http), ConfigError, "external.schema_registry_url", _no_ipv6
    ),
    "fault proxy upstream": EntryPoint(_proxy_upstream, TargetNotAllowed, "allow_hosts"),
    "fault proxy listen": EntryPoint(_proxy_listen, TargetNotAllowed, "allow_hosts"),
    "fault proxy update upstream": EntryPoint(_proxy_update_upstream, TargetNotAllowed, "allow_hosts"),
    "fault proxy HTTP API POST /proxies": EntryPoint(_http_api_create, ApiRefused, "allow_hosts"),
    "fault proxy server API listen": EntryPoint(_server_api_listen, TargetNotAllowed, "allow_hosts"),
}


def _params() -> Iterator[Any]:
    for entry, point in ENTRY_POINTS.items():
        for case in CASES:
            if point.expressible(case):
                host, allow, allowed = case
                verdict = "allowed" if allowed else "refused"
                yield pytest.param(entry, host, allow, allowed, id=f"{entry}-{host}-{list(allow)}-{verdict}")


@pytest.fixture(autouse=True)
def no_name_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deciding must never resolve a name: any lookup in this module fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"name resolution attempted: {args!r}")

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getfqdn"):
        monkeypatch.setattr(socket, name, refuse)


@pytest.mark.parametrize(("entry", "host", "allow_hosts", "allowed"), list(_params()))
def test_every_entry_point_follows_the_table(
    entry: str, host: str, allow_hosts: tuple[str, ...], allowed: bool, tmp_path: Path
) -> None:
    point = ENTRY_POINTS[entry]
    if allowed:
        point.run(host, allow_hosts, tmp_path)
        return
    with pytest.raises(point.refusal) as refused:
        point.run(host, allow_hosts, tmp_path)
    assert point.names in str(refused.value)


def test_every_entry_point_sees_every_kind_of_case() -> None:
    # Guards the table against an entry point whose predicate silently drops most cases.
    for entry, point in ENTRY_POINTS.items():
        kept = [case for case in CASES if point.expressible(case)]
        assert {allowed for _, _, allowed in kept} == {True, False}, entry
    # Only the loopback check is limited (to cases without an allow list); the rest see most.
    for entry, point in ENTRY_POINTS.items():
        if entry != "safety.is_loopback":
            assert sum(map(point.expressible, CASES)) >= len(CASES) // 2, entry


# --------------------------------------------------------------------------- the policy itself


def test_refusal_says_what_to_do() -> None:
    with pytest.raises(ConfigError) as refused:
        safety.check_host("10.0.0.5", allow_hosts=(), what="catalog.uri")
    assert (refused.value.source, refused.value.field, refused.value.value) == (
        "safety.allow_hosts",
        "host",
        "10.0.0.5",
    )
    assert str(refused.value) == (
        "safety.allow_hosts: host = '10.0.0.5' is invalid: catalog.uri points outside loopback; "
        "add '10.0.0.5' to safety.allow_hosts in datadrill.toml to allow it"
    )


def test_check_servers_names_the_first_refused_host() -> None:
    with pytest.raises(ConfigError) as refused:
        safety.check_servers("127.0.0.1:9092, kafka.prod:9092,10.0.0.1:9092", allow_hosts=(), what="x")
    assert refused.value.value == "kafka.prod"


@pytest.mark.parametrize("entry", ["", "  ", "[]"])
def test_blank_entries_are_refused(entry: str) -> None:
    with pytest.raises(ConfigError, match=r"safety\.allow_hosts"):
        HostPolicy(allow_hosts=(entry,))


def test_entries_are_kept_normalized() -> None:
    policy = HostPolicy(allow_hosts=(" DB.Internal. ", "[FD00::1]", "10.1.0.0/16"))
    assert policy.allow_hosts == ("db.internal", "fd00::1", "10.1.0.0/16")
    assert policy == HostPolicy(allow_hosts=("db.internal", "fd00::1", "10.1.0.0/16"))


def test_the_fault_proxy_server_keeps_the_policy_it_decides_with() -> None:
    server = FaultProxyServer(allow_hosts=["10.1.0.0/16"])
    assert server.policy == HostPolicy(("10.1.0.0/16",))
