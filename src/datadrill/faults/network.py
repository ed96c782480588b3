"""Network faults on the stack's proxied paths, through Toxiproxy's HTTP API.

The embedded stack runs datadrill's own fault proxy; the compose stack runs Toxiproxy.
Both are driven the same way (:class:`~datadrill.netfaults.ToxiproxyAdmin`, which uses
toxiproxy-python), so this plugin does not know which one it talks to.
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
from datadrill.model.faults import NetworkFault
from datadrill.netfaults import FaultProxyUnreachable, ProxyNotFound, ToxicNotFound, ToxiproxyAdmin
from datadrill.stack.port import ProxyPath

CATALOG_PATH_HINT = (
    "'catalog' exists only when catalog.uri is a PostgreSQL DSN (a SQLite catalog is a file, "
    "with no network path to fault)"
)


class NetworkToxicFault:
    """Adds a toxic to a proxy (or disables the proxy for ``down``); reverting removes the
    toxic (or enables the proxy) and is a no-op when the stack's proxy is already gone."""

    kind = "network.toxic"
    spec_type = NetworkFault

    def prepare(self, spec: NetworkFault, context: DrillContext) -> RevertData:
        _require_path(spec, context)
        toxic = None if spec.toxic == "down" else spec.toxic_name
        return {"api": context.stack.network.api_url, "proxy": spec.path, "toxic": toxic}

    def apply(self, spec: NetworkFault, context: DrillContext, data: RevertData) -> RevertData:
        admin = ToxiproxyAdmin(data["api"])
        if spec.toxic == "down":
            admin.disable(spec.path)
        else:
            admin.add_toxic(
                spec.path,
                spec.toxic,
                spec.stream,
                spec.toxicity,
                name=spec.toxic_name,
                **spec.attributes,
            )
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        admin = ToxiproxyAdmin(data["api"])
        proxy, toxic = data["proxy"], data["toxic"]
        try:
            if toxic is None:
                if admin.get_proxy(proxy).enabled:
                    return f"nothing to do: proxy {proxy!r} is up"
                admin.enable(proxy)
                return f"proxy {proxy!r} up again"
            admin.remove_toxic(proxy, toxic)
            return f"toxic {toxic!r} removed from proxy {proxy!r}"
        except ToxicNotFound:
            return f"nothing to do: proxy {proxy!r} has no toxic {toxic!r}"
        except (ProxyNotFound, FaultProxyUnreachable):
            # The stack that ran the proxy has stopped; its proxies (and toxics) died with it.
            return f"nothing to do: the fault proxy at {data['api']} no longer has proxy {proxy!r}"

    def exclusive_key(self, spec: NetworkFault) -> str | None:
        return f"proxy:{spec.path}:{spec.toxic_name}"

    def confirm(self, spec: NetworkFault, context: DrillContext, data: RevertData, within_s: float) -> str:
        """Asks the Toxiproxy API: the toxic is listed on the proxy; for ``down``, the proxy
        is disabled and its listen address refuses a connection."""
        admin = ToxiproxyAdmin(data["api"])
        proxy, toxic = data["proxy"], data["toxic"]
        timeout_s = look_timeout(within_s)

        def look() -> Seen:
            info = admin.get_proxy(proxy)
            if toxic is None:
                if info.enabled:
                    return Seen(False, f"proxy {proxy!r} enabled")
                if not refuses_connections(info.listen, timeout_s=timeout_s):
                    return Seen(False, f"proxy {proxy!r} disabled but {info.listen} accepts connections")
                return Seen(True, f"proxy {proxy!r} refuses connections ({info.listen})")
            names = [t.name for t in info.toxics]
            if toxic not in names:
                return Seen(False, f"proxy {proxy!r} lists toxics {names or 'none'}")
            return Seen(True, f"toxic {toxic!r} listed on proxy {proxy!r}")

        expected = f"proxy {proxy!r} down" if toxic is None else f"toxic {toxic!r} on proxy {proxy!r}"
        return await_effect(context, within_s, expected=expected, look=look)

    def target(self, spec: NetworkFault, context: DrillContext) -> str:
        path = _require_path(spec, context)
        api = context.stack.network.api_url
        try:
            info = ToxiproxyAdmin(api).get_proxy(spec.path)
        except ProxyNotFound:
            raise ConfigError(
                "scenario",
                "NetworkFault.path",
                spec.path,
                f"a proxy the Toxiproxy API at {api} has; the stack names it but the API does not list it",
            ) from None
        state = "" if info.enabled else ", disabled now"
        return f"proxy {spec.path!r} ({info.listen} → {path.upstream}{state}) via the Toxiproxy API at {api}"


def _require_path(spec: NetworkFault, context: DrillContext) -> ProxyPath:
    proxies = context.stack.network.paths()
    if spec.path not in proxies:
        known = ", ".join(sorted(proxies)) or "none"
        raise ConfigError(
            "scenario",
            "NetworkFault.path",
            spec.path,
            f"a proxied path of this stack: {known}; {CATALOG_PATH_HINT}",
        )
    return proxies[spec.path]
