"""The fault proxy's errors, each under datadrill's roots (:mod:`datadrill.errors`)::

    DrillError
    ├── ConfigError                      a request the engine will not run (HTTP 400)
    │   └── TargetNotAllowed             listen/upstream host outside loopback, not in allow_hosts
    └── ControlError
        └── FaultProxyError              the fault proxy refused or failed a request; ``.status``
            ├── ProxyNotFound            (404)
            ├── ToxicNotFound            (404)
            ├── ProxyAlreadyExists       (409)
            ├── ToxicAlreadyExists       (409)
            └── FaultProxyUnreachable    no Toxiproxy API answered at the URL (client side, 503)

``status`` is what the HTTP API answers with, and what the client maps an answer back from.

Example::

    try:
        admin.remove_toxic("pg", "latency_downstream")
    except ToxicNotFound as exc:
        exc.status   # 404
"""

from __future__ import annotations

from typing import ClassVar

from datadrill.errors import ConfigError, ControlError
from datadrill.safety import LOOPBACK_DESCRIPTION


class TargetNotAllowed(ConfigError):
    """A listen or upstream host is outside loopback and not allow-listed."""

    def __init__(self, source: str, field: str, address: str, host: str) -> None:
        self.host = host
        super().__init__(
            source,
            field,
            address,
            f"host {host!r} is outside loopback ({LOOPBACK_DESCRIPTION}); the fault proxy only "
            f"reaches this machine unless told otherwise — to target {host!r} on purpose, add it to "
            f"allow_hosts (FaultProxyServer(allow_hosts=[{host!r}]) or --allow-host {host})",
        )


class FaultProxyError(ControlError):
    """The fault proxy refused or failed a request; ``status`` is the matching HTTP status."""

    default_status: ClassVar[int] = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = self.default_status if status is None else status
        super().__init__(message)


class ProxyNotFound(FaultProxyError):
    default_status = 404


class ToxicNotFound(FaultProxyError):
    default_status = 404


class ProxyAlreadyExists(FaultProxyError):
    default_status = 409


class ToxicAlreadyExists(FaultProxyError):
    default_status = 409


class FaultProxyUnreachable(FaultProxyError):
    """No Toxiproxy API answered (raised by the client, never by the engine)."""

    default_status = 503
