"""The one small HTTP server helper: JSON over HTTP on 127.0.0.1, routes by method and
path pattern, handlers taking (path params, JSON body) and returning a JSON object; a
DrillError or bad input becomes a 400 with ``{"error": ...}``, an unknown route a 404.

The stack process's control API (:mod:`datadrill.backends.stackd.routes`) is served by it
(Trino's protocol, with its paging and cancel, has its own server:
:mod:`datadrill.interfaces.trino_protocol`). A protocol with its
own codes and error documents (Kafka Connect's REST API,
:mod:`datadrill.interfaces.connect_api`) returns a :class:`Reply` (any status, any JSON
body or none), reads query parameters (``query_params=True``: merged into the path
params, the path's own win; a repeated one joined with commas) and names its error
document (``error_document``; a known path with the wrong method is then a 405).

Example::

    server = ControlServer([("GET", "/health", lambda params, body: {"ok": True})])
    server.start()
    httpx.get(server.url + "/health").json()   # {"ok": True}
    server.stop()
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from datadrill.errors import DrillError


@dataclass(frozen=True)
class Reply:
    """A handler's answer with a status of its own; ``body`` None sends no body (204)."""

    status: int
    body: Any = None


Handler = Callable[[dict[str, str], dict[str, Any]], "dict[str, Any] | Reply"]
ErrorDocument = Callable[[int, str], Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class ControlServer:
    """Routes ``METHOD /path`` to handlers taking (path params, JSON body)."""

    def __init__(
        self,
        routes: list[tuple[str, str, Handler]],
        *,
        query_params: bool = False,
        error_document: ErrorDocument | None = None,
    ) -> None:
        self.routes = [Route(m, re.compile(f"^{p}$"), h) for m, p, h in routes]
        server = self

        class _RequestHandler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # requests are not worth a log line each

            def _dispatch(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                    if not isinstance(body, dict):
                        raise ValueError("body must be a JSON object")
                except ValueError as exc:
                    self._error(400, f"bad JSON body: {exc}")
                    return
                path, _, raw_query = self.path.partition("?")
                query = _query(raw_query) if query_params else {}
                for route in server.routes:
                    match = route.pattern.match(path)
                    if match and route.method == method:
                        try:
                            result = route.handler({**query, **match.groupdict()}, body)
                        except (DrillError, ValueError, KeyError, TypeError) as exc:
                            # An error class may name its own status (409 for a lease held
                            # by another run) and what the client needs to know about it.
                            status = int(getattr(exc, "http_status", 400))
                            self._error(status, str(exc), getattr(exc, "payload", {}))
                        else:
                            if isinstance(result, Reply):
                                self._reply(result.status, result.body)
                            else:
                                self._reply(200, result)
                        return
                if error_document is not None and any(r.pattern.match(path) for r in server.routes):
                    self._error(405, f"HTTP 405 Method Not Allowed: {method} {path}")
                    return
                self._error(404, f"no route for {method} {path}")

            def _error(self, code: int, message: str, extra: dict[str, Any] | None = None) -> None:
                if error_document is not None:
                    self._reply(code, error_document(code, message))
                else:
                    self._reply(code, {"error": message, **(extra or {})})

            def _reply(self, code: int, payload: Any) -> None:
                self.send_response(code)
                if payload is None:
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = json.dumps(payload).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_DELETE(self) -> None:
                self._dispatch("DELETE")

            def do_PATCH(self) -> None:
                self._dispatch("PATCH")

            def do_PUT(self) -> None:
                self._dispatch("PUT")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="control", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _query(raw: str) -> dict[str, str]:
    """Query parameters by name; a repeated one (``expand=status&expand=info``) joined with
    commas."""
    from urllib.parse import parse_qs

    return {k: ",".join(v) for k, v in parse_qs(raw, keep_blank_values=True).items()}
