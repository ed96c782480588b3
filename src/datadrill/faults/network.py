"""Network faults on the stack's proxied paths, through Toxiproxy's HTTP API.

The embedded stack runs datadrill's own fault proxy; the compose stack runs Toxiproxy.
Both are driven the same way (:class:`~datadrill.netfaults.ToxiproxyAdmin`, which uses
toxiproxy-python), so this plugin does not know which one it talks to.
"""

from __future__ import annotations

from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext, RevertData
from datadrill.model.faults import NetworkFault
from datadrill.netfaults import FaultProxyUnreachable, ProxyNotFound, ToxicNotFound, ToxiproxyAdmin

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
        proxies = context.stack.network.paths()
        if spec.path not in proxies:
            known = ", ".join(sorted(proxies)) or "none"
            raise ConfigError(
                "scenario",
                "NetworkFault.path",
                spec.path,
                f"a proxied path of this stack: {known}; {CATALOG_PATH_HINT}",
            )
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
