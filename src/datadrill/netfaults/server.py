"""datadrill's fault proxy as one in-process service: the engine's loop and the HTTP API, in threads.

:class:`FaultProxyServer` runs a :class:`~datadrill.netfaults.engine.FaultProxyEngine` on an
asyncio loop in one thread and serves the Toxiproxy API (:mod:`datadrill.netfaults.http_api`)
from stdlib ``http.server`` threads, so it lives inside any process next to other threads
(the embedded stack's daemon, ``python -m datadrill.netfaults``, a test).

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
import logging
import random
import socket
import threading
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from datadrill.netfaults.engine import FaultProxyEngine
from datadrill.netfaults.errors import FaultProxyError
from datadrill.netfaults.http_api import ApiApp, HttpApiServer
from datadrill.netfaults.spec import HostPort, parse_allowed_address
from datadrill.safety import HostPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        self._listen = parse_allowed_address(
            listen, policy=self.policy, source="fault proxy API", field="listen", port_zero_ok=True
        )
        self._rng = rng
        self._request_timeout_s = request_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._engine: FaultProxyEngine | None = None
        self._http: HttpApiServer | None = None
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
            self._http = HttpApiServer((host, self._listen.port), family, ApiApp(engine, self._call))
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
