"""The TCP fault proxy engine: proxies that listen, connections they forward, toxics on them.

A *proxy* listens on a local address and forwards every accepted connection to an *upstream*
``host:port``; each connection has a link per direction, which runs that direction's toxics
(:mod:`datadrill.netfaults.toxics`) on the bytes flowing through it. ``toxicity`` (0..1) is the
chance that a toxic applies to a given connection; it is drawn when the connection opens (or
when the toxic is added or updated on a live connection), as upstream Toxiproxy does. A
disabled proxy ("down") stops listening and closes its connections.

Blast radius: listen and upstream hosts must pass the engine's
:class:`~datadrill.safety.HostPolicy` (loopback, plus ``allow_hosts``) or the request fails
with :class:`~datadrill.netfaults.errors.TargetNotAllowed` before any packet is sent. No name is
resolved to decide; an allowed name is resolved by the OS only when a client connects.

Example (the engine runs on an asyncio loop; :class:`~datadrill.netfaults.FaultProxyServer`
runs it in a thread behind the HTTP API)::

    engine = FaultProxyEngine(policy=HostPolicy())
    info = await engine.create_proxy("pg", "127.0.0.1:0", "127.0.0.1:5432")
    await engine.add_toxic("pg", parse_toxic({"type": "latency", "attributes": {"latency": 100}}))
    ...  # clients connect to info.listen and see 100 ms more per response
    await engine.close()
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from datadrill.netfaults.errors import (
    FaultProxyError,
    ProxyAlreadyExists,
    ProxyNotFound,
    ToxicAlreadyExists,
    ToxicNotFound,
)
from datadrill.netfaults.spec import (
    HostPort,
    ProxyInfo,
    Stream,
    ToxicSpec,
    parse_address,
    parse_allowed_address,
    parse_name,
    update_toxic_spec,
)
from datadrill.netfaults.toxics import Chunk, ToxicRun, run_class
from datadrill.safety import HostPolicy, normalize_host

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
_READ_SIZE: Final = 32 * 1024
# Bounded so a slow toxic pushes back on the sender through TCP, as a real slow link would.
_QUEUE_CHUNKS: Final = 16


class _Link:
    """One direction of a connection: read from ``source``, run the toxic chain, write to ``dest``."""

    def __init__(
        self,
        conn: _Connection,
        stream: Stream,
        source: asyncio.StreamReader,
        dest: asyncio.StreamWriter,
        rng: random.Random,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.source = source
        self.dest = dest
        self.rng = rng
        self.runs: list[ToxicRun] = []
        self._queue: asyncio.Queue[Chunk | None] = asyncio.Queue(_QUEUE_CHUNKS)

    def add(self, spec: ToxicSpec) -> None:
        run = run_class(spec.type)(spec, self, self._roll(spec))
        self.runs.append(run)
        run.start()

    def update(self, spec: ToxicSpec) -> None:
        for run in self.runs:
            if run.spec.name == spec.name:
                run.stop(removed=False)
                run.spec = spec
                run.active = self._roll(spec)  # upstream re-runs the stub, which draws again
                run.start()

    def remove(self, name: str) -> None:
        for run in [r for r in self.runs if r.spec.name == name]:
            self.runs.remove(run)
            run.stop(removed=True)

    def stop_all(self) -> None:
        for run in self.runs:
            run.stop(removed=False)

    def _roll(self, spec: ToxicSpec) -> bool:
        return self.rng.random() < spec.toxicity

    async def read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await self.source.read(_READ_SIZE):
                await self._queue.put(Chunk(data, loop.time()))
        except OSError as exc:
            # A reset or broken source ends this direction like an EOF; the chain decides the rest.
            log.debug("%s: %s source ended: %r", self.conn.label, self.stream.value, exc)
        await self._queue.put(None)

    async def pump_loop(self) -> None:
        while (chunk := await self._queue.get()) is not None:
            await self._data_through(tuple(self.runs), 0, chunk)
        await self._eof_through(tuple(self.runs), 0)

    async def _data_through(self, chain: tuple[ToxicRun, ...], index: int, chunk: Chunk) -> None:
        # The chain is fixed per chunk; a toxic removed meanwhile is skipped, one added
        # meanwhile applies from the next chunk.
        while index < len(chain) and (chain[index].removed.is_set() or not chain[index].active):
            index += 1
        if index == len(chain):
            await self._write(chunk.data)
            return
        after = index + 1

        async def forward(data: bytes) -> None:
            if data:
                await self._data_through(chain, after, Chunk(data, chunk.read_at))

        await chain[index].on_data(chunk, forward)

    async def _eof_through(self, chain: tuple[ToxicRun, ...], index: int) -> None:
        while index < len(chain) and (chain[index].removed.is_set() or not chain[index].active):
            index += 1
        if index == len(chain):
            self.conn.finish(self.stream)
            return
        after = index + 1

        async def forward_eof() -> None:
            await self._eof_through(chain, after)

        await chain[index].on_eof(forward_eof)

    async def _write(self, data: bytes) -> None:
        if self.dest.is_closing():
            return
        try:
            self.dest.write(data)
            await self.dest.drain()
        except OSError as exc:
            self.conn.abort(f"{self.stream.value} write failed: {exc!r}")


class _Connection:
    """A client connection and its upstream connection, with a link per direction."""

    def __init__(
        self,
        proxy: _ProxyRuntime,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        rng: random.Random,
        spawn: Callable[[Awaitable[None], str], asyncio.Task[None]],
    ) -> None:
        self.proxy = proxy
        peer = client[1].get_extra_info("peername")
        self.label = f"proxy {proxy.name!r} client {peer[0]}:{peer[1]}" if peer else f"proxy {proxy.name!r}"
        self._writers = (client[1], upstream[1])
        self.links = {
            Stream.UPSTREAM: _Link(self, Stream.UPSTREAM, client[0], upstream[1], rng),
            Stream.DOWNSTREAM: _Link(self, Stream.DOWNSTREAM, upstream[0], client[1], rng),
        }
        self._spawn = spawn
        self._tasks: list[asyncio.Task[None]] = []
        self._finished: set[Stream] = set()
        self.closed = False

    def start(self, toxics: Iterable[ToxicSpec]) -> None:
        for spec in toxics:
            self.links[spec.stream].add(spec)
        for link in self.links.values():
            self._tasks.append(self._spawn(link.read_loop(), f"{self.label} {link.stream.value} read"))
            self._tasks.append(self._spawn(link.pump_loop(), f"{self.label} {link.stream.value} pump"))

    def finish(self, stream: Stream) -> None:
        """This direction passed its EOF: half-close the destination; close when both did."""
        writer = self.links[stream].dest
        if not writer.is_closing() and writer.can_write_eof():
            try:
                writer.write_eof()
            except OSError as exc:
                log.debug("%s: write_eof %s failed: %r", self.label, stream.value, exc)
        self._finished.add(stream)
        if len(self._finished) == len(self.links):
            self.close("both directions ended")

    def close(self, reason: str) -> None:
        """Close both sockets after flushing what was already written (FIN)."""
        self._shutdown(reason, "close")

    def abort(self, reason: str) -> None:
        """Close both sockets now, dropping unsent data."""
        self._shutdown(reason, "abort")

    def reset(self, reason: str) -> None:
        """Close both sockets with SO_LINGER 0, so both peers get a TCP RST."""
        self._shutdown(reason, "reset")

    def _shutdown(self, reason: str, how: str) -> None:
        if self.closed:
            return
        self.closed = True
        log.debug("%s: %s (%s)", self.label, how, reason)
        for link in self.links.values():
            link.stop_all()
        for writer in self._writers:
            if how == "close":
                writer.close()
            elif how == "abort":
                writer.transport.abort()
            elif how == "reset":
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError as exc:
                        log.debug("%s: SO_LINGER failed, closing without RST: %r", self.label, exc)
                writer.transport.abort()
            else:
                raise AssertionError(f"unknown shutdown mode {how!r}")
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self.proxy.connections.discard(self)


# --------------------------------------------------------------------------- runtime: proxies


@dataclass(eq=False)
class _ProxyRuntime:
    name: str
    listen: str
    upstream: str
    enabled: bool = False
    toxics: list[ToxicSpec] = field(default_factory=list)
    server: asyncio.Server | None = None
    connections: set[_Connection] = field(default_factory=set)
    generation: int = 0  # bumped on every stop, so a connection accepted before it is dropped

    def info(self) -> ProxyInfo:
        # Upstream lists upstream-direction toxics first, then downstream, each in added order.
        ordered = sorted(self.toxics, key=lambda t: t.stream is Stream.DOWNSTREAM)
        return ProxyInfo(self.name, self.listen, self.upstream, self.enabled, tuple(ordered))


class FaultProxyEngine:
    """All proxies of one fault-proxy server. Every method must run on the engine's event loop.

    Example::

        engine = FaultProxyEngine(policy=HostPolicy(allow_hosts=("10.1.2.3",)))
        await engine.create_proxy("pg", "127.0.0.1:0", "10.1.2.3:5432", enabled=False)
    """

    def __init__(self, *, policy: HostPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng if rng is not None else random.Random()
        self._proxies: dict[str, _ProxyRuntime] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # ----- queries

    async def proxies(self) -> dict[str, ProxyInfo]:
        return {name: proxy.info() for name, proxy in self._proxies.items()}

    async def proxy(self, name: str) -> ProxyInfo:
        return self._get(name).info()

    async def toxics(self, proxy: str) -> tuple[ToxicSpec, ...]:
        return self._get(proxy).info().toxics

    async def toxic(self, proxy: str, name: str) -> ToxicSpec:
        return self._get_toxic(self._get(proxy), name)

    # ----- proxies

    async def create_proxy(self, name: str, listen: str, upstream: str, *, enabled: bool = True) -> ProxyInfo:
        """Create (and, if ``enabled``, start) a proxy; ``listen`` port 0 picks a free port."""
        async with self._lock:
            name = parse_name(name, source="proxy")
            source = f"proxy {name!r}"
            listen_at = self._checked(listen, source=source, field="listen", port_zero_ok=True)
            upstream_at = self._checked(upstream, source=source, field="upstream", port_zero_ok=False)
            if name in self._proxies:
                raise ProxyAlreadyExists(f"proxy {name!r} already exists")
            proxy = _ProxyRuntime(name=name, listen=str(listen_at), upstream=str(upstream_at))
            if enabled:
                await self._start(proxy)
            self._proxies[name] = proxy
            log.info(
                "proxy %r created: %s -> %s (enabled=%s)", name, proxy.listen, proxy.upstream, proxy.enabled
            )
            return proxy.info()

    async def update_proxy(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
    ) -> ProxyInfo:
        """Change a proxy as upstream's ``POST /proxies/{name}`` does (a new address restarts it)."""
        async with self._lock:
            proxy = self._get(name)
            source = f"proxy {name!r}"
            new_listen = (
                proxy.listen
                if listen is None
                else str(self._checked(listen, source=source, field="listen", port_zero_ok=True))
            )
            new_upstream = (
                proxy.upstream
                if upstream is None
                else str(self._checked(upstream, source=source, field="upstream", port_zero_ok=False))
            )
            want_enabled = proxy.enabled if enabled is None else enabled
            if (new_listen, new_upstream) != (proxy.listen, proxy.upstream):
                await self._stop(proxy)
                proxy.listen, proxy.upstream = new_listen, new_upstream
            if want_enabled and not proxy.enabled:
                await self._start(proxy)
            elif not want_enabled and proxy.enabled:
                await self._stop(proxy)
            return proxy.info()

    async def delete_proxy(self, name: str) -> None:
        async with self._lock:
            proxy = self._get(name)
            await self._stop(proxy)
            del self._proxies[name]
            log.info("proxy %r deleted", name)

    async def populate(self, entries: Iterable[tuple[str, str, str, bool]]) -> list[ProxyInfo]:
        """Create or replace proxies (``/populate``): one whose listen or upstream differs is replaced."""
        wanted = list(entries)
        for name, listen, upstream, _enabled in wanted:  # check everything before changing anything
            source = f"proxy {parse_name(name, source='proxy')!r}"
            self._checked(upstream, source=source, field="upstream", port_zero_ok=False)
            self._checked(listen, source=source, field="listen", port_zero_ok=True)
        result: list[ProxyInfo] = []
        for name, listen, upstream, enabled in wanted:
            existing = self._proxies.get(name)
            if existing is not None and (existing.listen, existing.upstream) == (listen, upstream):
                result.append(await self.update_proxy(name, enabled=enabled))
                continue
            if existing is not None:
                await self.delete_proxy(name)
            result.append(await self.create_proxy(name, listen, upstream, enabled=enabled))
        return result

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic (``POST /reset``)."""
        async with self._lock:
            failures: list[str] = []
            for proxy in self._proxies.values():
                for spec in list(proxy.toxics):
                    self._remove_toxic(proxy, spec.name)
                if not proxy.enabled:
                    # Keep going: one proxy that cannot listen must not leave the others faulty.
                    try:
                        await self._start(proxy)
                    except FaultProxyError as exc:
                        failures.append(str(exc))
            if failures:
                raise FaultProxyError(
                    "reset removed every toxic but could not enable: " + "; ".join(failures)
                )
            log.info("reset: %d proxies enabled, all toxics removed", len(self._proxies))

    # ----- toxics

    async def add_toxic(self, proxy: str, spec: ToxicSpec) -> ToxicSpec:
        """Add a toxic; it applies to live connections at once and to every new one."""
        async with self._lock:
            runtime = self._get(proxy)
            if any(t.name == spec.name for t in runtime.toxics):
                raise ToxicAlreadyExists(f"proxy {proxy!r} already has a toxic named {spec.name!r}")
            runtime.toxics.append(spec)
            for conn in list(runtime.connections):
                conn.links[spec.stream].add(spec)
            log.info("proxy %r: toxic added %s", proxy, spec.to_json())
            return spec

    async def update_toxic(self, proxy: str, name: str, raw: object) -> ToxicSpec:
        async with self._lock:
            runtime = self._get(proxy)
            spec = update_toxic_spec(self._get_toxic(runtime, name), raw)
            runtime.toxics = [spec if t.name == name else t for t in runtime.toxics]
            for conn in list(runtime.connections):
                conn.links[spec.stream].update(spec)
            log.info("proxy %r: toxic updated %s", proxy, spec.to_json())
            return spec

    async def remove_toxic(self, proxy: str, name: str) -> None:
        async with self._lock:
            runtime = self._get(proxy)
            self._get_toxic(runtime, name)
            self._remove_toxic(runtime, name)
            log.info("proxy %r: toxic %r removed", proxy, name)

    # ----- lifecycle

    async def close(self) -> None:
        """Stop every proxy and wait for its tasks; the engine is unusable afterwards."""
        async with self._lock:
            for proxy in self._proxies.values():
                await self._stop(proxy)
            self._proxies.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ----- internals

    def _get(self, name: str) -> _ProxyRuntime:
        try:
            return self._proxies[name]
        except KeyError:
            raise ProxyNotFound(
                f"proxy {name!r} not found; proxies: {sorted(self._proxies) or 'none'}"
            ) from None

    @staticmethod
    def _get_toxic(proxy: _ProxyRuntime, name: str) -> ToxicSpec:
        for spec in proxy.toxics:
            if spec.name == name:
                return spec
        have = sorted(t.name for t in proxy.toxics) or "none"
        raise ToxicNotFound(f"proxy {proxy.name!r} has no toxic {name!r}; toxics: {have}")

    def _remove_toxic(self, proxy: _ProxyRuntime, name: str) -> None:
        proxy.toxics = [t for t in proxy.toxics if t.name != name]
        for conn in list(proxy.connections):
            for link in conn.links.values():
                link.remove(name)

    def _checked(self, value: object, *, source: str, field: str, port_zero_ok: bool) -> HostPort:
        return parse_allowed_address(
            value, policy=self.policy, source=source, field=field, port_zero_ok=port_zero_ok
        )

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fault proxy task %s failed", name)

        task = asyncio.get_running_loop().create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _start(self, proxy: _ProxyRuntime) -> None:
        address = parse_address(
            proxy.listen, source=f"proxy {proxy.name!r}", field="listen", port_zero_ok=True
        )
        # One socket, as Go's net.Listen does: "localhost:0" must not bind 127.0.0.1 and ::1
        # on two different free ports.
        host = "127.0.0.1" if normalize_host(address.host) == "localhost" else address.host
        generation = proxy.generation

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._accept(proxy, generation, reader, writer)

        try:
            server = await asyncio.start_server(on_client, host=host, port=address.port, reuse_address=True)
        except OSError as exc:
            raise FaultProxyError(
                f"proxy {proxy.name!r} cannot listen on {proxy.listen}: {exc.strerror or exc}; "
                "pick another port (port 0 picks a free one)"
            ) from exc
        bound = server.sockets[0].getsockname()
        proxy.server = server
        proxy.listen = str(HostPort(bound[0], bound[1]))
        proxy.enabled = True
        log.info("proxy %r listening on %s -> %s", proxy.name, proxy.listen, proxy.upstream)

    async def _stop(self, proxy: _ProxyRuntime) -> None:
        proxy.generation += 1
        proxy.enabled = False
        server, proxy.server = proxy.server, None
        if server is not None:
            server.close()
        # As upstream's stop: every connection's sockets close now; data the proxy still holds is lost.
        for conn in list(proxy.connections):
            conn.abort(f"proxy {proxy.name!r} disabled")
        if server is not None:
            await server.wait_closed()
            log.info("proxy %r stopped listening on %s", proxy.name, proxy.listen)

    async def _accept(
        self,
        proxy: _ProxyRuntime,
        generation: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if proxy.generation != generation:
            writer.transport.abort()
            return
        target = parse_address(
            proxy.upstream, source=f"proxy {proxy.name!r}", field="upstream", port_zero_ok=False
        )
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            log.warning(
                "proxy %r: cannot connect to upstream %s (%r); closing the client", proxy.name, target, exc
            )
            writer.transport.abort()
            return
        if proxy.generation != generation:  # disabled while we were connecting
            writer.transport.abort()
            upstream[1].transport.abort()
            return
        conn = _Connection(proxy, (reader, writer), upstream, self._rng, self._spawn)
        proxy.connections.add(conn)
        conn.start(proxy.toxics)
        log.debug("%s: connected to %s", conn.label, target)
