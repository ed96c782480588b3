"""The Toxiproxy 2.x HTTP API: routes, request bodies, JSON answers, and the HTTP server for them.

:class:`ApiApp` turns a request (method, target, body) into an :class:`ApiResponse` by running
an engine call; :class:`HttpApiServer` serves it from stdlib ``http.server`` threads. Endpoints,
status codes and JSON match upstream::

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

Example::

    app = ApiApp(engine, call)   # call runs an engine coroutine on the engine's loop
    app.handle("GET", "/version", b"").body   # {'version': '2.0.0+datadrill'}
"""

from __future__ import annotations

import enum
import json
import logging
import socket
import socketserver
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from datadrill.errors import ConfigError
from datadrill.netfaults.engine import FaultProxyEngine
from datadrill.netfaults.errors import FaultProxyError
from datadrill.netfaults.spec import DEFAULT_LISTEN, ProxyInfo, ToxicSpec, parse_toxic

log = logging.getLogger(__name__)

# Semver build metadata marks the implementation while the major version names the API (2.x).
VERSION: Final = "2.0.0+datadrill"
_JSON: Final = "application/json"


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


class HttpApiServer(ThreadingHTTPServer):
    """Serves an :class:`ApiApp` over HTTP/1.1 on one address, a thread per connection.

    Example::

        http = HttpApiServer(("127.0.0.1", 0), socket.AF_INET, app)
        threading.Thread(target=http.serve_forever, daemon=True).start()
    """

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
    server: HttpApiServer

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
