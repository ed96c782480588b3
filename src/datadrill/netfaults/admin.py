"""The typed client of a Toxiproxy 2.x API — datadrill's own fault proxy or a real Toxiproxy.

:class:`ToxiproxyAdmin` is what the rest of datadrill drives network faults through; it talks
to the server through ``toxiproxy-python`` and maps its answers onto
:mod:`datadrill.netfaults.errors` and :mod:`datadrill.netfaults.spec` values.

Example::

    admin = ToxiproxyAdmin("http://127.0.0.1:8474")
    pg = admin.create_proxy("pg", "127.0.0.1:0", "127.0.0.1:5432")
    admin.add_toxic("pg", "latency", latency=200)   # 'latency_downstream'
    admin.reset()
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from datadrill.errors import ConfigError
from datadrill.netfaults.errors import (
    FaultProxyError,
    FaultProxyUnreachable,
    ProxyAlreadyExists,
    ProxyNotFound,
    ToxicAlreadyExists,
    ToxicNotFound,
)
from datadrill.netfaults.spec import ProxyInfo, Stream, ToxicSpec, ToxicType, make_toxic, parse_toxic

# toxiproxy-python keeps the server's host and port in class attributes of APIConsumer, i.e.
# process-wide; every call sets them and runs under this lock so two admins cannot cross wires.
_CONSUMER_LOCK = threading.Lock()


def _server_message(exc: BaseException) -> str:
    raw = exc.args[0] if exc.args else b""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    if isinstance(decoded, Mapping) and isinstance(decoded.get("error"), str):
        return str(decoded["error"])
    return text.strip()


class ToxiproxyAdmin:
    """Typed client for a Toxiproxy 2.x API — datadrill's or a real Toxiproxy — over toxiproxy-python.

    Errors: :class:`ProxyNotFound`, :class:`ToxicNotFound`, :class:`ProxyAlreadyExists`,
    :class:`ToxicAlreadyExists`, :class:`FaultProxyUnreachable`, otherwise
    :class:`FaultProxyError` with the server's message and HTTP status; a toxic that does not
    validate raises :class:`~datadrill.errors.ConfigError` before anything is sent.
    toxiproxy-python sets no HTTP timeout, so a hung server hangs the call.

    Example::

        admin = ToxiproxyAdmin("http://127.0.0.1:8474")
        kafka = admin.create_proxy("kafka", "127.0.0.1:0", "127.0.0.1:9092")
        name = admin.add_toxic("kafka", "bandwidth", rate=50)
        admin.remove_toxic("kafka", name)
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError("ToxiproxyAdmin", "url", url, "http://host:port of a Toxiproxy API")
        try:
            port = parts.port or 8474
        except ValueError:
            raise ConfigError("ToxiproxyAdmin", "url", url, "http://host:port with a port 1..65535") from None
        self.url = url.rstrip("/")
        # APIConsumer formats "http://%s:%s", so an IPv6 host needs its brackets back.
        self._host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._port = port

    @contextlib.contextmanager
    def _client(
        self,
        action: str,
        *,
        not_found: type[FaultProxyError] = ProxyNotFound,
        conflict: type[FaultProxyError] = ProxyAlreadyExists,
    ) -> Iterator[Any]:
        """Point toxiproxy-python at this server and translate its exceptions."""
        # Imported here: importing datadrill.netfaults must stay cheap (requests is heavy).
        import toxiproxy
        import toxiproxy.api
        import toxiproxy.exceptions

        with _CONSUMER_LOCK:
            toxiproxy.api.APIConsumer.host = self._host
            toxiproxy.api.APIConsumer.port = self._port
            try:
                yield toxiproxy
            except toxiproxy.exceptions.NotFound as exc:
                raise not_found(f"toxiproxy at {self.url}: {action}: {_server_message(exc)}") from None
            except toxiproxy.exceptions.ProxyExists as exc:  # toxiproxy-python's name for any 409
                raise conflict(f"toxiproxy at {self.url}: {action}: {_server_message(exc)}") from None
            except toxiproxy.exceptions.InvalidToxic as exc:  # toxiproxy-python's name for any 400
                raise FaultProxyError(
                    f"toxiproxy at {self.url} refused to {action}: {_server_message(exc)}", status=400
                ) from None
            except toxiproxy.api.requests.ConnectionError as exc:
                raise FaultProxyUnreachable(
                    f"no Toxiproxy API answered at {self.url} to {action} ({exc}); is the server running? "
                    "Start one with FaultProxyServer().start() or `python -m datadrill.netfaults`"
                ) from None

    def _proxy_object(self, toxiproxy: Any, name: str) -> Any:
        proxy = toxiproxy.Toxiproxy().get_proxy(name)
        if proxy is None:
            raise ProxyNotFound(f"toxiproxy at {self.url} has no proxy {name!r}")
        return proxy

    @staticmethod
    def _info(proxy: Any, toxics: tuple[ToxicSpec, ...] = ()) -> ProxyInfo:
        return ProxyInfo(
            name=str(proxy.name),
            listen=str(proxy.listen),
            upstream=str(proxy.upstream),
            enabled=bool(proxy.enabled),
            toxics=toxics,
        )

    def _specs(self, proxy: Any) -> tuple[ToxicSpec, ...]:
        specs: list[ToxicSpec] = []
        for toxic in proxy.toxics().values():
            raw = {
                "name": toxic.name,
                "type": toxic.type,
                "stream": toxic.stream,
                "toxicity": toxic.toxicity,
                "attributes": toxic.attributes,
            }
            try:
                specs.append(parse_toxic(raw, source=f"toxic listed by {self.url}"))
            except ConfigError as exc:
                raise FaultProxyError(
                    f"toxiproxy at {self.url} lists a toxic datadrill cannot model: {exc}"
                ) from exc
        return tuple(specs)

    def version(self) -> str:
        """The server's version string (``2.0.0+datadrill`` for ours)."""
        with self._client("read its version") as toxiproxy:
            content = toxiproxy.Toxiproxy().version()
        if content is None:
            raise FaultProxyUnreachable(f"nothing listens at {self.url}")
        text = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text.strip()  # Toxiproxy before 2.6 answered plain text
        return (
            str(decoded["version"]) if isinstance(decoded, Mapping) and "version" in decoded else text.strip()
        )

    def proxies(self) -> dict[str, ProxyInfo]:
        """Every proxy by name (without toxics; :meth:`get_proxy` includes them)."""
        with self._client("list proxies") as toxiproxy:
            return {str(name): self._info(proxy) for name, proxy in toxiproxy.Toxiproxy().proxies().items()}

    def get_proxy(self, name: str) -> ProxyInfo:
        """One proxy with its toxics."""
        with self._client(f"read proxy {name!r}") as toxiproxy:
            proxy = self._proxy_object(toxiproxy, name)
            return self._info(proxy, self._specs(proxy))

    def create_proxy(self, name: str, listen: str, upstream: str, *, enabled: bool = True) -> ProxyInfo:
        """Create a proxy; the result's ``listen`` is the bound address (port 0 picks one)."""
        with self._client(f"create proxy {name!r} ({listen} -> {upstream})") as toxiproxy:
            try:
                proxy = toxiproxy.Toxiproxy().create(
                    upstream=upstream, name=name, listen=listen, enabled=enabled
                )
            except KeyError:
                # toxiproxy-python turns a 5xx into a dict without "name" and drops the message.
                raise FaultProxyError(
                    f"toxiproxy at {self.url} did not create proxy {name!r} on {listen}: it answered with "
                    "a server error (e.g. the listen port is in use); its log says why"
                ) from None
            return self._info(proxy)

    def delete_proxy(self, name: str) -> None:
        with self._client(f"delete proxy {name!r}") as toxiproxy:
            if not toxiproxy.Toxiproxy().destroy(self._proxy_object(toxiproxy, name)):
                raise FaultProxyError(f"toxiproxy at {self.url} did not delete proxy {name!r}")

    def add_toxic(
        self,
        proxy: str,
        type: ToxicType | str,
        stream: Stream | str = Stream.DOWNSTREAM,
        toxicity: float = 1.0,
        *,
        name: str | None = None,
        **attributes: int,
    ) -> str:
        """Add a toxic and return its name (default ``{type}_{stream}``), checking it took effect.

        Example::

            admin.add_toxic("pg", "latency", latency=100, jitter=20)   # 'latency_downstream'
        """
        spec = make_toxic(type, stream=stream, toxicity=toxicity, name=name, **attributes)
        action = f"add toxic {spec.name!r} to proxy {proxy!r}"
        with self._client(action, conflict=ToxicAlreadyExists) as toxiproxy:
            target = self._proxy_object(toxiproxy, proxy)
            target.add_toxic(
                name=spec.name,
                type=spec.type.value,
                stream=spec.stream.value,
                toxicity=spec.toxicity,
                attributes=dict(spec.attributes),
            )
            # toxiproxy-python ignores the answer's status; check rather than assume.
            if target.get_toxic(spec.name) is None:
                raise FaultProxyError(
                    f"toxiproxy at {self.url} did not {action}: the toxic is not listed after"
                )
        return spec.name

    def toxics(self, proxy: str) -> tuple[ToxicSpec, ...]:
        with self._client(f"list toxics of proxy {proxy!r}") as toxiproxy:
            return self._specs(self._proxy_object(toxiproxy, proxy))

    def remove_toxic(self, proxy: str, toxic: str) -> None:
        action = f"remove toxic {toxic!r} from proxy {proxy!r}"
        with self._client(action, not_found=ToxicNotFound) as toxiproxy:
            if not self._proxy_object(toxiproxy, proxy).destroy_toxic(toxic):
                raise FaultProxyError(f"toxiproxy at {self.url} did not {action}")

    def disable(self, proxy: str) -> None:
        """Take the proxy down: it stops listening and drops its connections."""
        self._set_enabled(proxy, False)

    def enable(self, proxy: str) -> None:
        self._set_enabled(proxy, True)

    def _set_enabled(self, proxy: str, enabled: bool) -> None:
        action = f"{'enable' if enabled else 'disable'} proxy {proxy!r}"
        with self._client(action) as toxiproxy:
            target = self._proxy_object(toxiproxy, proxy)
            if enabled:
                target.enable()
            else:
                target.disable()
            # toxiproxy-python ignores the answer's status; a fault left in place must not pass silently.
            seen = self._proxy_object(toxiproxy, proxy).enabled
            if bool(seen) is not enabled:
                raise FaultProxyError(f"toxiproxy at {self.url} did not {action}: enabled is still {seen!r}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        with self._client("reset") as toxiproxy:
            if not toxiproxy.Toxiproxy().reset():
                raise FaultProxyError(f"toxiproxy at {self.url} did not reset")
