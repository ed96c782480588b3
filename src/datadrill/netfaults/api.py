"""Both ends of the Toxiproxy 2.x HTTP API: datadrill's server and a typed client.

:class:`FaultProxyServer` runs a :class:`~datadrill.netfaults.proxy.FaultProxyEngine` on an
asyncio loop in one thread and serves the API from stdlib ``http.server`` threads, so it lives
inside any process next to other threads. Endpoints, status codes and JSON match upstream::

    GET    /version                          200 {"version": ...}
    POST   /reset                            204  enable every proxy, remove every toxic
    GET    /proxies                          200 {name: proxy}
    POST   /proxies                          201 proxy   (409 exists, 400 invalid or not allowed)
    POST   /populate                         201 {"proxies": [...]}
    GET    /proxies/{name}                   200 proxy   (404)
    POST   /proxies/{name}  (or PATCH)       200 proxy   enabled / listen / upstream
    DELETE /proxies/{name}                   204
    GET    /proxies/{name}/toxics            200 [toxic]
    POST   /proxies/{name}/toxics            200 toxic   (409 exists, 400 invalid)
    GET    /proxies/{name}/toxics/{toxic}    200 toxic
    POST   /proxies/{name}/toxics/{toxic}    200 toxic   attributes / toxicity
    DELETE /proxies/{name}/toxics/{toxic}    204

    proxy = {"name", "listen", "upstream", "enabled", "toxics": [toxic]}
    toxic = {"name", "type", "stream", "toxicity", "attributes": {...}}
    error = {"error": message, "status": code}

:class:`ToxiproxyAdmin` is the typed client the rest of datadrill uses; it drives this server
and a real Toxiproxy alike through ``toxiproxy-python``.

Example::

    with FaultProxyServer() as server:
        admin = ToxiproxyAdmin(server.url)
        pg = admin.create_proxy("pg", "127.0.0.1:0", "127.0.0.1:5432")
        admin.add_toxic("pg", "latency", latency=200)
        ...  # connect to pg.listen_port
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import enum
import json
import logging
import random
import socket
import socketserver
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

from datadrill.errors import ConfigError
from datadrill.netfaults.proxy import (
    DEFAULT_LISTEN,
    FaultProxyEngine,
    FaultProxyError,
    FaultProxyUnreachable,
    HostPolicy,
    HostPort,
    ProxyAlreadyExists,
    ProxyInfo,
    ProxyNotFound,
    Stream,
    ToxicAlreadyExists,
    ToxicNotFound,
    ToxicSpec,
    ToxicType,
    make_toxic,
    parse_address,
    parse_toxic,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Semver build metadata marks the implementation while the major version names the API (2.x).
VERSION: Final = "2.0.0+datadrill"
_JSON: Final = "application/json"


# --------------------------------------------------------------------------- routing and JSON (pure)


class Route(enum.Enum):
    VERSION = "version"
    RESET = "reset"
    PROXIES = "proxies"
    POPULATE = "populate"
    PROXY = "proxy"
    TOXICS = "toxics"
    TOXIC = "toxic"


# Path patterns ("*" is a name) and the methods upstream's router accepts for each.
_ROUTES: Final[tuple[tuple[tuple[str, ...], Route, frozenset[str]], ...]] = (
    (("version",), Route.VERSION, frozenset({"GET"})),
    (("reset",), Route.RESET, frozenset({"POST"})),
    (("proxies",), Route.PROXIES, frozenset({"GET", "POST"})),
    (("populate",), Route.POPULATE, frozenset({"POST"})),
    (("proxies", "*"), Route.PROXY, frozenset({"GET", "POST", "PATCH", "DELETE"})),
    (("proxies", "*", "toxics"), Route.TOXICS, frozenset({"GET", "POST"})),
    (("proxies", "*", "toxics", "*"), Route.TOXIC, frozenset({"GET", "POST", "PATCH", "DELETE"})),
)


class ApiError(Exception):
    """An HTTP error answer (routing, body, method); engine errors are mapped separately."""

    def __init__(self, status: int, message: str, *, allow: frozenset[str] = frozenset()) -> None:
        self.status = status
        self.message = message
        self.allow = allow
        super().__init__(message)


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: object | None = None  # JSON-able; None means no body (204)
    allow: frozenset[str] = frozenset()

    def encode(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body).encode() + b"\n"


def error_json(message: str, status: int) -> dict[str, object]:
    """Upstream's error body."""
    return {"error": message, "status": status}


def resolve_route(method: str, target: str) -> tuple[Route, tuple[str, ...]]:
    """Map a method and request target to a route and its (decoded) names.

    Example::

        resolve_route("DELETE", "/proxies/pg/toxics/slow")   # (Route.TOXIC, ('pg', 'slow'))
    """
    path = urlsplit(target).path
    parts = path.strip("/").split("/") if path.strip("/") else []
    for pattern, route, methods in _ROUTES:
        if len(pattern) != len(parts):
            continue
        if any(p != "*" and p != part for p, part in zip(pattern, parts, strict=True)):
            continue
        names = tuple(unquote(part) for p, part in zip(pattern, parts, strict=True) if p == "*")
        if any(not name for name in names):
            break
        if method not in methods:
            raise ApiError(
                405, f"{method} is not allowed on {path}; use {', '.join(sorted(methods))}", allow=methods
            )
        return route, names
    raise ApiError(404, f"no such endpoint: {method} {path}")


def _decode_json(body: bytes, *, where: str) -> object:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"bad request body for {where}: not JSON ({exc})") from None


def _object(body: bytes, *, where: str) -> Mapping[str, object]:
    value = _decode_json(body, where=where)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ApiError(
            400, f"bad request body for {where}: expected a JSON object, got {type(value).__name__}"
        )
    return value


def _optional_str(obj: Mapping[str, object], key: str, *, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(where, key, value, "a string")
    return value


def _optional_bool(obj: Mapping[str, object], key: str, *, where: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(where, key, value, "true or false")
    return value


def _required_str(obj: Mapping[str, object], key: str, *, where: str) -> str:
    value = _optional_str(obj, key, where=where)
    if not value:
        raise ConfigError(where, key, value, "missing required field: a non-empty string")
    return value


def parse_proxy_request(
    obj: Mapping[str, object], *, where: str = "POST /proxies"
) -> tuple[str, str, str, bool]:
    """Name, listen, upstream and enabled from a create body (listen defaults to 127.0.0.1:0).

    Example::

        parse_proxy_request({"name": "pg", "upstream": "127.0.0.1:5432"})
        # ('pg', '127.0.0.1:0', '127.0.0.1:5432', True)
    """
    name = _required_str(obj, "name", where=where)
    upstream = _required_str(obj, "upstream", where=where)
    # Upstream's empty listen means every interface; ours stays on loopback unless asked.
    listen = _optional_str(obj, "listen", where=where) or DEFAULT_LISTEN
    enabled = _optional_bool(obj, "enabled", where=where)
    return name, listen, upstream, True if enabled is None else enabled


class ApiApp:
    """The API's request handling, independent of the HTTP server.

    ``call`` runs an engine coroutine to completion (on the engine's loop) and returns its result.
    """

    def __init__(self, engine: FaultProxyEngine, call: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._engine = engine
        self._call = call

    def handle(self, method: str, target: str, body: bytes, *, user_agent: str = "") -> ApiResponse:
        # Upstream refuses browsers so a web page cannot drive the proxy through CSRF.
        if user_agent.startswith("Mozilla/"):
            return ApiResponse(403, error_json("User agent not allowed", 403))
        try:
            route, names = resolve_route(method, target)
            return self._dispatch(method, route, names, body, where=f"{method} {urlsplit(target).path}")
        except ApiError as exc:
            return ApiResponse(exc.status, error_json(exc.message, exc.status), exc.allow)
        except ConfigError as exc:
            return ApiResponse(400, error_json(str(exc), 400))
        except FaultProxyError as exc:
            if exc.status >= 500:
                log.error("%s %s failed: %s", method, target, exc)
            return ApiResponse(exc.status, error_json(str(exc), exc.status))
        except TimeoutError:
            message = f"the fault proxy engine did not answer {method} {target} in time"
            log.error(message)
            return ApiResponse(500, error_json(message, 500))
        except Exception as exc:
            log.exception("%s %s failed unexpectedly", method, target)
            return ApiResponse(500, error_json(f"internal error: {exc!r}", 500))

    def _dispatch(
        self, method: str, route: Route, names: tuple[str, ...], body: bytes, *, where: str
    ) -> ApiResponse:
        engine, call = self._engine, self._call
        if route is Route.VERSION:
            return ApiResponse(200, {"version": VERSION})
        elif route is Route.RESET:
            call(engine.reset())
            return ApiResponse(204)
        elif route is Route.PROXIES and method == "GET":
            proxies: dict[str, ProxyInfo] = call(engine.proxies())
            return ApiResponse(200, {name: info.to_json() for name, info in proxies.items()})
        elif route is Route.PROXIES:
            name, listen, upstream, enabled = parse_proxy_request(_object(body, where=where), where=where)
            info: ProxyInfo = call(engine.create_proxy(name, listen, upstream, enabled=enabled))
            return ApiResponse(201, info.to_json())
        elif route is Route.POPULATE:
            entries = _decode_json(body, where=where)
            if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
                raise ApiError(400, "bad request body for POST /populate: expected a JSON array of proxies")
            parsed = [
                parse_proxy_request(e, where=f"POST /populate proxy {i + 1}") for i, e in enumerate(entries)
            ]
            created: list[ProxyInfo] = call(engine.populate(parsed))
            return ApiResponse(201, {"proxies": [info.to_json() for info in created]})
        elif route is Route.PROXY and method == "GET":
            return ApiResponse(200, call(engine.proxy(names[0])).to_json())
        elif route is Route.PROXY and method == "DELETE":
            call(engine.delete_proxy(names[0]))
            return ApiResponse(204)
        elif route is Route.PROXY:
            obj = _object(body, where=where)
            info = call(
                engine.update_proxy(
                    names[0],
                    listen=_optional_str(obj, "listen", where=where),
                    upstream=_optional_str(obj, "upstream", where=where),
                    enabled=_optional_bool(obj, "enabled", where=where),
                )
            )
            return ApiResponse(200, info.to_json())
        elif route is Route.TOXICS and method == "GET":
            toxics: tuple[ToxicSpec, ...] = call(engine.toxics(names[0]))
            return ApiResponse(200, [toxic.to_json() for toxic in toxics])
        elif route is Route.TOXICS:
            spec = parse_toxic(_decode_json(body, where=where), source=where)
            added: ToxicSpec = call(engine.add_toxic(names[0], spec))
            return ApiResponse(200, added.to_json())
        elif route is Route.TOXIC and method == "GET":
            return ApiResponse(200, call(engine.toxic(names[0], names[1])).to_json())
        elif route is Route.TOXIC and method == "DELETE":
            call(engine.remove_toxic(names[0], names[1]))
            return ApiResponse(204)
        elif route is Route.TOXIC:
            updated: ToxicSpec = call(engine.update_toxic(names[0], names[1], _object(body, where=where)))
            return ApiResponse(200, updated.to_json())
        else:
            raise AssertionError(f"unhandled route {route} {method}")


# --------------------------------------------------------------------------- HTTP server


class _HttpServer(ThreadingHTTPServer):
    # Handler threads must not keep the process alive; each idles out on its own timeout.
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, app: ApiApp) -> None:
        self.address_family = family
        self.app = app
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, a reverse DNS lookup we neither need nor want.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect from Toxiproxy's Go server
    server_version = f"datadrill-faultproxy/{VERSION}"
    timeout = 60  # an idle keep-alive connection gives its thread back after this
    server: _HttpServer

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            response = ApiResponse(400, error_json("bad Content-Length", 400))
        else:
            body = self.rfile.read(length) if length else b""
            response = self.server.app.handle(
                self.command, self.path, body, user_agent=self.headers.get("User-Agent", "")
            )
        payload = response.encode()
        self.send_response(response.status)
        if response.allow:
            self.send_header("Allow", ", ".join(sorted(response.allow)))
        if response.status != 204:
            self.send_header("Content-Type", _JSON)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve
    do_PATCH = _serve
    do_DELETE = _serve
    do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api %s " + format, self.address_string(), *args)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        # Cancel what is left (e.g. a connection still dialling upstream) so nothing is
        # destroyed while pending, then close the loop in the thread that ran it.
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class FaultProxyServer:
    """datadrill's fault proxy with its Toxiproxy API, running in this process (two+ threads).

    ``allow_hosts`` lists the non-loopback hosts (names, IPs or networks) proxies may listen on
    or forward to; by default only loopback is allowed. ``listen`` is the API's own address.

    Example::

        with FaultProxyServer() as server:
            print(server.url)             # http://127.0.0.1:41234
            ToxiproxyAdmin(server.url).reset()
    """

    def __init__(
        self,
        allow_hosts: Iterable[str] = (),
        *,
        listen: str = "127.0.0.1:0",
        rng: random.Random | None = None,
        request_timeout_s: float = 30.0,
    ) -> None:
        self.policy = HostPolicy(tuple(allow_hosts))
        self._listen = parse_address(listen, source="fault proxy API", field="listen", port_zero_ok=True)
        self.policy.check(self._listen, source="fault proxy API", field="listen")
        self._rng = rng
        self._request_timeout_s = request_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._engine: FaultProxyEngine | None = None
        self._http: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The API's base URL, e.g. ``http://127.0.0.1:41234``."""
        if self._url is None:
            raise FaultProxyError("the fault proxy server is not running; call start() first")
        return self._url

    def start(self) -> str:
        """Start the engine and the API; return the API's URL. Cleans up if it fails half-way."""
        if self._url is not None:
            return self._url
        try:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._loop_thread = threading.Thread(
                target=_run_loop, args=(loop,), name="datadrill-faultproxy-loop", daemon=True
            )
            self._loop_thread.start()

            async def make_engine() -> FaultProxyEngine:
                return FaultProxyEngine(policy=self.policy, rng=self._rng)

            engine = asyncio.run_coroutine_threadsafe(make_engine(), loop).result(timeout=10)
            self._engine = engine
            # One address, as for proxies: "localhost" means 127.0.0.1, never a second (::1) socket.
            host = "127.0.0.1" if self._listen.host.lower() == "localhost" else self._listen.host
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._http = _HttpServer((host, self._listen.port), family, ApiApp(engine, self._call))
            self._http_thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="datadrill-faultproxy-api",
                daemon=True,
            )
            self._http_thread.start()
        except BaseException:
            self.stop()
            raise
        bound = HostPort(host, self._http.server_port)
        self._url = f"http://{bound}"
        log.info("fault proxy API listening on %s (allow_hosts=%s)", self._url, list(self.policy.allow_hosts))
        return self._url

    def stop(self) -> None:
        """Stop the API, close every proxy and connection, end the threads. Idempotent."""
        http, self._http = self._http, None
        if http is not None:
            if self._http_thread is not None:
                http.shutdown()  # only safe once serve_forever runs (or is about to)
                self._http_thread.join(timeout=10)
            http.server_close()
        self._http_thread = None
        loop, engine = self._loop, self._engine
        self._loop, self._engine = None, None
        if loop is not None and engine is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(engine.close(), loop).result(timeout=10)
            except (TimeoutError, RuntimeError) as exc:
                log.warning("fault proxy engine did not close cleanly: %r", exc)
        if loop is not None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(timeout=10)
        self._loop_thread = None
        if self._url is not None:
            log.info("fault proxy API at %s stopped", self._url)
        self._url = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise FaultProxyError("the fault proxy server is stopping", status=503)
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout=self._request_timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def __enter__(self) -> FaultProxyServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- typed client

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
