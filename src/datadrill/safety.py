"""The blast-radius guard: datadrill touches loopback only, unless told otherwise.

A game day aimed at the wrong host is an outage. Every endpoint datadrill would connect to
or inject faults into is checked here; anything outside 127.0.0.0/8, ::1 and localhost is
refused unless listed in ``safety.allow_hosts`` of the configuration. Host names are not
resolved (a lookup could itself reach the network): a name that is not an IP address or
"localhost" counts as remote.

Example::

    check_host("10.0.0.5", allow_hosts=(), what="catalog.uri")
    # ConfigError: safety.allow_hosts: host = '10.0.0.5' is invalid: catalog.uri points outside
    # loopback; add '10.0.0.5' to safety.allow_hosts in datadrill.toml to allow it
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from datadrill.errors import ConfigError

SETTING = "safety.allow_hosts"


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, *, allow_hosts: Iterable[str], what: str) -> None:
    """Raise :class:`ConfigError` unless ``host`` is loopback or explicitly allowed."""
    if is_loopback(host) or host in set(allow_hosts):
        return
    raise ConfigError(
        SETTING,
        "host",
        host,
        f"{what} points outside loopback; add {host!r} to {SETTING} in datadrill.toml to allow it",
    )


def hosts_of_servers(servers: str) -> list[str]:
    """Hosts of a Kafka-style ``host:port,host:port`` list."""
    hosts = []
    for entry in servers.split(","):
        entry = entry.strip()
        if not entry:
            continue
        host = entry.rsplit(":", 1)[0] if ":" in entry else entry
        hosts.append(host)
    return hosts


def check_servers(servers: str, *, allow_hosts: Iterable[str], what: str) -> None:
    allowed = list(allow_hosts)
    for host in hosts_of_servers(servers):
        check_host(host, allow_hosts=allowed, what=what)
