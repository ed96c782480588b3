"""The one small HTTP server helper: JSON over HTTP on 127.0.0.1, routes by method and
path pattern, handlers taking (path params, JSON body) and returning a JSON object; a
DrillError or bad input becomes a 400 with ``{"error": ...}``, an unknown route a 404.

The stack process's control API (:mod:`datadrill.backends.stackd.routes`) and the query
service (:mod:`datadrill.platform.query_service`) are served by it.

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

Handler = Callable[[dict[str, str], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class ControlServer:
    """Routes ``METHOD /path`` to handlers taking (path params, JSON body)."""

    def __init__(self, routes: list[tuple[str, str, Handler]]) -> None:
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
                    self._reply(400, {"error": f"bad JSON body: {exc}"})
                    return
                path = self.path.split("?", 1)[0]
                for route in server.routes:
                    match = route.pattern.match(path)
                    if match and route.method == method:
                        try:
                            result = route.handler(match.groupdict(), body)
                        except (DrillError, ValueError, KeyError, TypeError) as exc:
                            # An error class may name its own status (409 for a lease held
                            # by another run) and what the client needs to know about it.
                            status = int(getattr(exc, "http_status", 400))
                            self._reply(status, {"error": str(exc), **getattr(exc, "payload", {})})
                        else:
                            self._reply(200, result)
                        return
                self._reply(404, {"error": f"no route for {method} {path}"})

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
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
