"""Network faults: datadrill's own TCP fault proxy, speaking Toxiproxy's 2.x HTTP API.

The embedded stack runs :class:`FaultProxyServer` in-process (or ``python -m
datadrill.netfaults`` standalone); the compose stack runs a real Toxiproxy. Either way datadrill
drives it through :class:`ToxiproxyAdmin`. Proxies only reach loopback unless a host is put in
``allow_hosts`` (``--allow-host``), under the same rule as the rest of datadrill
(:class:`datadrill.safety.HostPolicy`, exported here as :class:`HostPolicy`).

Modules, by what they hold::

    errors     the error tree
    spec       addresses, proxies and toxics as validated values (parsing, the host check)
    toxics     the toxic implementations, one direction of one connection each
    engine     the TCP proxy engine: listeners, connections, links
    http_api   the Toxiproxy 2.x HTTP API: routes, JSON, the HTTP server
    server     FaultProxyServer: the engine's loop and the HTTP API in threads
    admin      ToxiproxyAdmin, the typed client

Example::

    from datadrill.netfaults import FaultProxyServer, ToxiproxyAdmin

    with FaultProxyServer() as server:
        admin = ToxiproxyAdmin(server.url)
        pg = admin.create_proxy("pg", "127.0.0.1:0", "127.0.0.1:5432")
        admin.add_toxic("pg", "latency", latency=250, jitter=50)
        ...  # point the client at 127.0.0.1:{pg.listen_port}
        admin.reset()
"""

from __future__ import annotations

from datadrill.netfaults.admin import ToxiproxyAdmin
from datadrill.netfaults.errors import (
    FaultProxyError,
    FaultProxyUnreachable,
    ProxyAlreadyExists,
    ProxyNotFound,
    TargetNotAllowed,
    ToxicAlreadyExists,
    ToxicNotFound,
)
from datadrill.netfaults.server import FaultProxyServer
from datadrill.netfaults.spec import ProxyInfo, Stream, ToxicSpec, ToxicType, make_toxic

# The fault proxy decides which hosts it may reach through the project's one policy.
from datadrill.safety import HostPolicy
from datadrill.safety import is_loopback as is_loopback_host

__all__ = [
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
