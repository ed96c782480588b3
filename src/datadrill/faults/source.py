"""SourceOutage: the source database refuses connections.

The platform's processes (workload, relay) reach a PostgreSQL source through the fault
proxy's ``source`` path; the harness keeps its own direct connection. The fault disables
that proxy through Toxiproxy's API (``POST /proxies/source`` with ``{"enabled": false}``),
which closes its listener and drops the connections open through it: to the platform the
database is down. Reverting enables the proxy again. A stack whose source is SQLite (a
file, no network path) or has no ``source`` proxy cannot have this fault.

Example::

    handle = inject(SourceOutage(at_s=0, duration_s=10), context, ledger=ledger)
    handle.landed    # "proxy 'source' refuses connections (127.0.0.1:40123)"
    handle.revert()  # "proxy 'source' up again"
"""

from __future__ import annotations

from datadrill.errors import ConfigError
from datadrill.faults.base import (
    DrillContext,
    RevertData,
    Seen,
    await_effect,
    look_timeout,
    refuses_connections,
)
from datadrill.model.faults import SourceOutage
from datadrill.netfaults import FaultProxyUnreachable, ProxyNotFound, ToxiproxyAdmin
from datadrill.stack.port import ProxyPath

SOURCE_PROXY = "source"
SOURCE_PROXY_HINT = (
    "a PostgreSQL source behind the fault proxy's 'source' path: start the stack with "
    "`datadrill stack up --source postgresql` (or [source] uri = \"postgresql://...\")"
)


def source_path(context: DrillContext, field: str, value: object) -> ProxyPath:
    """The stack's ``source`` proxy; ConfigError naming what is needed when it has none."""
    config = context.stack.config
    paths = context.stack.network.paths()
    if not config.source.is_postgres or SOURCE_PROXY not in paths:
        has = ", ".join(sorted(paths)) or "none"
        source = "a PostgreSQL source" if config.source.is_postgres else "a SQLite source (a file)"
        raise ConfigError(
            "scenario", field, value, f"{SOURCE_PROXY_HINT}; this stack has {source} and proxies: {has}"
        )
    return paths[SOURCE_PROXY]


class SourceOutageFault:
    """Disable the ``source`` proxy for ``duration_s``; enable it again on revert (a no-op
    when the stack that ran the proxy is gone)."""

    kind = "source.outage"
    spec_type = SourceOutage
    needs_source_proxy = True

    def prepare(self, spec: SourceOutage, context: DrillContext) -> RevertData:
        source_path(context, "SourceOutage", spec.kind)
        return {"api": context.stack.network.api_url, "proxy": SOURCE_PROXY}

    def apply(self, spec: SourceOutage, context: DrillContext, data: RevertData) -> RevertData:
        ToxiproxyAdmin(data["api"]).disable(data["proxy"])
        return {"disabled": True}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        admin = ToxiproxyAdmin(data["api"])
        proxy = data["proxy"]
        try:
            if admin.get_proxy(proxy).enabled:
                return f"nothing to do: proxy {proxy!r} is up"
            admin.enable(proxy)
        except (ProxyNotFound, FaultProxyUnreachable):
            # The stack that ran the proxy has stopped; its proxies died with it.
            return f"nothing to do: the fault proxy at {data['api']} no longer has proxy {proxy!r}"
        return f"proxy {proxy!r} up again: the source accepts connections"

    def exclusive_key(self, spec: SourceOutage) -> str | None:
        # The same key as NetworkFault(toxic="down", path="source"): one takes the path down.
        return f"proxy:{SOURCE_PROXY}:datadrill_down_downstream"

    def confirm(self, spec: SourceOutage, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The Toxiproxy API reports the proxy disabled and its listen address refuses a
        TCP connection."""
        admin = ToxiproxyAdmin(data["api"])
        proxy = data["proxy"]
        timeout_s = look_timeout(within_s)

        def look() -> Seen:
            info = admin.get_proxy(proxy)
            if info.enabled:
                return Seen(False, f"proxy {proxy!r} enabled ({info.listen} → {info.upstream})")
            if not refuses_connections(info.listen, timeout_s=timeout_s):
                return Seen(False, f"proxy {proxy!r} disabled but {info.listen} accepts connections")
            return Seen(True, f"proxy {proxy!r} refuses connections ({info.listen})")

        return await_effect(context, within_s, expected=f"proxy {proxy!r} refusing connections", look=look)

    def target(self, spec: SourceOutage, context: DrillContext) -> str:
        path = source_path(context, "SourceOutage", spec.kind)
        api = context.stack.network.api_url
        try:
            info = ToxiproxyAdmin(api).get_proxy(SOURCE_PROXY)
        except ProxyNotFound:
            raise ConfigError(
                "scenario",
                "SourceOutage",
                spec.kind,
                f"a 'source' proxy the Toxiproxy API at {api} has; the stack names it but the API does not list it",
            ) from None
        state = "" if info.enabled else ", disabled now"
        return (
            f"the source database's path {info.listen} → {path.upstream}{state}: proxy 'source' disabled "
            f"for {spec.duration_s:g} s via the Toxiproxy API at {api}"
        )
