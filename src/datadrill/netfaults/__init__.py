"""Network faults: datadrill's own TCP fault proxy, speaking Toxiproxy's 2.x HTTP API.

The embedded stack runs :class:`FaultProxyServer` in-process (or ``python -m
datadrill.netfaults`` standalone); the compose stack runs a real Toxiproxy. Either way datadrill
drives it through :class:`ToxiproxyAdmin`. Proxies only reach loopback unless a host is put in
``allow_hosts`` (``--allow-host``).

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

from datadrill.netfaults.api import FaultProxyServer, ToxiproxyAdmin
from datadrill.netfaults.proxy import (
    FaultProxyError,
    FaultProxyUnreachable,
    HostPolicy,
    ProxyAlreadyExists,
    ProxyInfo,
    ProxyNotFound,
    Stream,
    TargetNotAllowed,
    ToxicAlreadyExists,
    ToxicNotFound,
    ToxicSpec,
    ToxicType,
    is_loopback_host,
    make_toxic,
)

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
