"""The blast-radius guard: datadrill touches loopback only, unless told otherwise.

A game day aimed at the wrong host is an outage. Every endpoint datadrill would connect to
or inject faults into is checked here — by the config loader, the scenario runner and the
fault proxy alike, through one :class:`HostPolicy`. The rule:

* Loopback is always allowed: 127.0.0.0/8, ::1, IPv4-mapped loopback (``::ffff:127.x.y.z``)
  and the name ``localhost``.
* Anything else must match an entry of ``safety.allow_hosts``. An entry is a host name, an IP
  address or a network (``10.1.0.0/16``, ``fd00::/8``); an address matches a network that
  contains it, and an IPv4-mapped IPv6 address counts as its IPv4 address.
* Hosts and entries compare case-insensitively, with the brackets around an IPv6 literal, the
  surrounding blanks and the trailing dot of a fully qualified name ignored.
* Nothing is resolved to decide. A lookup could itself reach the network, and a name may
  resolve anywhere, so a name other than ``localhost`` is remote: it is allowed only when the
  name itself is listed, never because of the address it might resolve to (listing
  ``10.1.2.3`` does not allow ``db.internal``, nor the other way round).

Example::

    check_host("10.0.0.5", allow_hosts=(), what="catalog.uri")
    # ConfigError: safety.allow_hosts: host = '10.0.0.5' is invalid: catalog.uri points outside
    # loopback; add '10.0.0.5' to safety.allow_hosts in datadrill.toml to allow it

    HostPolicy(allow_hosts=("10.1.0.0/16", "DB.Internal")).allows("db.internal.")   # True
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from datadrill.errors import ConfigError

SETTING: Final = "safety.allow_hosts"
LOOPBACK_DESCRIPTION: Final = "127.0.0.0/8, ::1, localhost"

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# IPv4-mapped IPv6 addresses (RFC 4291 2.5.5.2): the last 32 bits are the IPv4 address.
_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")


def normalize_host(host: str) -> str:
    """The form hosts are compared in: trimmed, lower case, no IPv6 brackets, no trailing dot.

    Example::

        normalize_host(" [::1] "), normalize_host("DB.Internal.")   # ('::1', 'db.internal')
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.removesuffix(".") if text not in (".", "") else text


def _as_address(normalized: str) -> _Address | None:
    try:
        address = ipaddress.ip_address(normalized)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _as_network(normalized: str) -> _Network | None:
    try:
        network = ipaddress.ip_network(normalized, strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        # Compared as IPv4, as addresses are, so ::ffff:10.1.0.0/112 and 10.1.0.0/16 agree.
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # inside ::ffff:0:0/96
        return ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
    return network


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1, ``::ffff:127.x.y.z`` and ``localhost``; never resolves.

    Example::

        is_loopback("[::ffff:127.0.0.1]"), is_loopback("LOCALHOST."), is_loopback("db")
        # (True, True, False)
    """
    normalized = normalize_host(host)
    if normalized == "localhost":
        return True
    address = _as_address(normalized)
    return address is not None and address.is_loopback


@dataclass(frozen=True)
class HostPolicy:
    """Which hosts datadrill may reach: loopback, plus ``allow_hosts`` (names, IPs, networks).

    ``allow_hosts`` is kept normalized (see :func:`normalize_host`); a blank entry is refused
    as a :class:`ConfigError`, since it can only be a mistake.

    Example::

        policy = HostPolicy(allow_hosts=("10.1.0.0/16", "fd00::/8", "db.internal"))
        policy.allows("10.1.2.3"), policy.allows("DB.Internal."), policy.allows("db")
        # (True, True, False)
        policy.check("db", what="catalog.uri")   # ConfigError naming safety.allow_hosts
    """

    allow_hosts: tuple[str, ...] = ()
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[_Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cleaned: list[str] = []
        names: set[str] = set()
        networks: list[_Network] = []
        for entry in self.allow_hosts:
            normalized = normalize_host(entry) if isinstance(entry, str) else ""
            if not normalized:
                raise ConfigError(
                    SETTING,
                    "entry",
                    entry,
                    "a host name, IP address or network, e.g. db.internal, 10.1.2.3 or 10.1.0.0/16",
                )
            cleaned.append(normalized)
            network = _as_network(normalized)
            if network is None:
                names.add(normalized)
            else:
                networks.append(network)
        object.__setattr__(self, "allow_hosts", tuple(cleaned))
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_networks", tuple(networks))

    def allows(self, host: str) -> bool:
        """True if ``host`` is loopback or matches an entry; never resolves a name."""
        if is_loopback(host):
            return True
        normalized = normalize_host(host)
        if normalized in self._names:
            return True
        address = _as_address(normalized)
        # The version check matters: ipaddress would find an IPv4 address "in" ::/0.
        return address is not None and any(
            address.version == network.version and address in network for network in self._networks
        )

    def check(self, host: str, *, what: str) -> None:
        """Raise :class:`ConfigError` naming ``what`` and the setting unless ``host`` is allowed."""
        if not self.allows(host):
            raise ConfigError(
                SETTING,
                "host",
                host,
                f"{what} points outside loopback; add {host!r} to {SETTING} in datadrill.toml to allow it",
            )


def check_host(host: str, *, allow_hosts: Iterable[str], what: str) -> None:
    """Raise :class:`ConfigError` unless ``host`` is loopback or explicitly allowed.

    Example::

        check_host("10.1.2.3", allow_hosts=["10.1.0.0/16"], what="catalog.uri")   # passes
    """
    HostPolicy(tuple(allow_hosts)).check(host, what=what)


def hosts_of_servers(servers: str) -> list[str]:
    """Hosts of a Kafka-style ``host:port,host:port`` list.

    Example::

        hosts_of_servers("127.0.0.1:9092, [::1]:9093")   # ['127.0.0.1', '[::1]']
    """
    hosts = []
    for entry in servers.split(","):
        entry = entry.strip()
        if not entry:
            continue
        host = entry.rsplit(":", 1)[0] if ":" in entry else entry
        hosts.append(host)
    return hosts


def check_servers(servers: str, *, allow_hosts: Iterable[str], what: str) -> None:
    """:func:`check_host` for every host of a ``host:port,host:port`` list.

    Example::

        check_servers("127.0.0.1:9092,kafka.prod:9092", allow_hosts=(), what="bootstrap servers")
        # ConfigError: ... host = 'kafka.prod' ...
    """
    policy = HostPolicy(tuple(allow_hosts))
    for host in hosts_of_servers(servers):
        policy.check(host, what=what)
