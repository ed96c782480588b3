"""The toxics at work: how each toxic type disturbs the bytes of one direction of a connection.

A toxic sits on one direction of a proxy — ``upstream`` (client → server) or ``downstream``
(server → client) — and acts as Toxiproxy 2.x's does:

==============  ============================  =====================================================
type            attributes                    effect on each connection it applies to
==============  ============================  =====================================================
``latency``     ``latency``, ``jitter`` (ms)  every chunk is held ``latency ± jitter`` ms
``bandwidth``   ``rate`` (KB/s, KB = 1000 B)  throughput limited to ``rate``
``timeout``     ``timeout`` (ms)              data is dropped; the connection closes after
                                              ``timeout`` (0: never) and when the toxic is removed
``reset_peer``  ``timeout`` (ms)              on the first data, wait ``timeout``, then TCP RST
``slow_close``  ``delay`` (ms)                the close (EOF) is passed on ``delay`` ms late
``limit_data``  ``bytes``                     the connection closes once ``bytes`` went through
``slicer``      ``average_size``,             chunks are cut into ``average_size ± size_variation``
                ``size_variation``,           byte slices, ``delay`` microseconds apart
                ``delay`` (µs)
==============  ============================  =====================================================

Each is a :class:`ToxicRun`: the engine's link passes every chunk (and the EOF) through the
chain of runs, each forwarding what it lets through to the next. A run only sees its link
through :class:`LinkContext` (the connection to close or reset, the random source), so this
module does not depend on the engine.

Example::

    run = run_class(ToxicType.LATENCY)(spec, link, active=True)
    await run.on_data(Chunk(b"ping", loop.time()), forward)   # forwards b"ping" 100 ms later
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from datadrill.netfaults.spec import ToxicSpec, ToxicType


class ConnectionControl(Protocol):
    """What a toxic may do to the connection it sits on."""

    def close(self, reason: str) -> None: ...

    def reset(self, reason: str) -> None: ...


class LinkContext(Protocol):
    """What a toxic sees of the direction it sits on (the engine's link provides it)."""

    @property
    def conn(self) -> ConnectionControl: ...

    @property
    def rng(self) -> random.Random: ...


@dataclass(frozen=True)
class Chunk:
    """Bytes read from one side, with when they were read (latency counts from then)."""

    data: bytes
    read_at: float  # loop time (monotonic) when the proxy read it from the source


# What a run calls to pass data (or the EOF) on to the rest of the chain.
Forward = Callable[[bytes], Awaitable[None]]
ForwardEof = Callable[[], Awaitable[None]]


class ToxicRun:
    """One toxic acting on one direction of one connection (Toxiproxy's ToxicStub)."""

    def __init__(self, spec: ToxicSpec, link: LinkContext, active: bool) -> None:
        self.spec = spec
        self.link = link
        self.active = active
        self.removed = asyncio.Event()

    def start(self) -> None:
        """Called once the run is in the chain (timers start here)."""

    def stop(self, *, removed: bool) -> None:
        """Called when the toxic leaves the chain (``removed``) or the connection ends."""
        if removed:
            self.removed.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless the toxic is removed meanwhile; True if the full time passed."""
        if self.removed.is_set():
            return False
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self.removed.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def on_data(self, chunk: Chunk, forward: Forward) -> None:
        await forward(chunk.data)

    async def on_eof(self, forward_eof: ForwardEof) -> None:
        await forward_eof()


class _Latency(ToxicRun):
    async def on_data(self, chunk: Chunk, forward: Forward) -> None:
        delay_ms = self.spec.attribute("latency")
        jitter = self.spec.attribute("jitter")
        if jitter > 0:
            delay_ms += self.link.rng.randrange(-jitter, jitter)  # upstream: rand.Int63n(2j) - j
        # Counted from when the chunk was read, so back-to-back chunks overlap their delays
        # (a long link, not a slow one) and order is kept because chunks go one at a time.
        due = chunk.read_at + max(delay_ms, 0) / 1000
        await self.sleep(due - asyncio.get_running_loop().time())
        await forward(chunk.data)


class _Bandwidth(ToxicRun):
    def __init__(self, spec: ToxicSpec, link: LinkContext, active: bool) -> None:
        super().__init__(spec, link, active)
        self._ready_at = 0.0

    async def on_data(self, chunk: Chunk, forward: Forward) -> None:
        loop = asyncio.get_running_loop()
        data = chunk.data
        position = 0
        while position < len(data):
            rate = self.spec.attribute("rate") * 1000  # bytes per second; Toxiproxy's KB is 1000 B
            # At most 100 ms worth per write, as upstream does, so a slow link trickles evenly.
            piece = data[position : position + max(1, rate // 10)]
            now = loop.time()
            self._ready_at = max(self._ready_at, now) + len(piece) / rate
            if not await self.sleep(self._ready_at - now):
                await forward(data[position:])  # removed: deliver the rest at full speed
                return
            await forward(piece)
            position += len(piece)


class _Timeout(ToxicRun):
    def __init__(self, spec: ToxicSpec, link: LinkContext, active: bool) -> None:
        super().__init__(spec, link, active)
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        timeout_ms = self.spec.attribute("timeout")
        if self.active and timeout_ms > 0:
            self._timer = asyncio.get_running_loop().call_later(
                timeout_ms / 1000,
                self.link.conn.close,
                f"timeout toxic {self.spec.name!r} after {timeout_ms} ms",
            )

    def stop(self, *, removed: bool) -> None:
        super().stop(removed=removed)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if removed and self.active:
            # Upstream's Cleanup does the same: data was dropped, so the byte stream is
            # broken and must not resume as if nothing happened.
            self.link.conn.close(f"timeout toxic {self.spec.name!r} removed after dropping data")

    async def on_data(self, chunk: Chunk, forward: Forward) -> None:
        return  # dropped on the floor, as upstream does

    async def on_eof(self, forward_eof: ForwardEof) -> None:
        # The end of the stream is held back too: the client keeps a silent, open connection
        # (a hang, as upstream's "timeout 0: the connection won't close") until the timer
        # or the toxic's removal closes it.
        return


class _ResetPeer(ToxicRun):
    def __init__(self, spec: ToxicSpec, link: LinkContext, active: bool) -> None:
        super().__init__(spec, link, active)
        self._resetting = False

    async def _reset_after_timeout(self) -> bool:
        """Wait the timeout, then reset; False if the toxic was removed first."""
        self._resetting = True
        timeout_ms = self.spec.attribute("timeout")
        if await self.sleep(timeout_ms / 1000):
            self.link.conn.reset(f"reset_peer toxic {self.spec.name!r} after {timeout_ms} ms")
            return True
        self._resetting = False
        return False

    async def on_data(self, chunk: Chunk, forward: Forward) -> None:
        if self._resetting:
            return  # the connection is about to be reset; upstream drops this data too
        if not await self._reset_after_timeout():
            await forward(chunk.data)

    async def on_eof(self, forward_eof: ForwardEof) -> None:
        if not await self._reset_after_timeout():
            await forward_eof()


class _SlowClose(ToxicRun):
    async def on_eof(self, forward_eof: ForwardEof) -> None:
        await self.sleep(self.spec.attribute("delay") / 1000)
        await forward_eof()


class _LimitData(ToxicRun):
    def __init__(self, spec: ToxicSpec, link: LinkContext, active: bool) -> None:
        super().__init__(spec, link, active)
        self._sent = 0  # kept across updates, as upstream keeps the stub's state

    async def on_data(self, chunk: Chunk, forward: Forward) -> None:
        limit = self.spec.attribute("bytes")
        part = chunk.data[: max(limit - self._sent, 0)]
        if part:
            await forward(part)
            self._sent += len(part)
        if self._sent >= limit:
            self.link.conn.close(f"limit_data toxic {self.spec.name!r} passed {limit} bytes")


class _Slicer(ToxicRun):
    async def on_data(self, chunk: Chunk, forward: Forward) -> None:
        data = chunk.data
        position = 0
        while position < len(data):
            average = self.spec.attribute("average_size")
            variation = self.spec.attribute("size_variation")
            size = average + (self.link.rng.randrange(-variation, variation + 1) if variation else 0)
            await forward(data[position : position + size])
            position += size
            if position < len(data) and not await self.sleep(self.spec.attribute("delay") / 1_000_000):
                await forward(data[position:])
                return


def run_class(toxic_type: ToxicType) -> type[ToxicRun]:
    """The implementation of a toxic type.

    Example::

        run_class(ToxicType.SLICER)(spec, link, active=True)
    """
    if toxic_type is ToxicType.LATENCY:
        return _Latency
    elif toxic_type is ToxicType.BANDWIDTH:
        return _Bandwidth
    elif toxic_type is ToxicType.TIMEOUT:
        return _Timeout
    elif toxic_type is ToxicType.RESET_PEER:
        return _ResetPeer
    elif toxic_type is ToxicType.SLOW_CLOSE:
        return _SlowClose
    elif toxic_type is ToxicType.LIMIT_DATA:
        return _LimitData
    elif toxic_type is ToxicType.SLICER:
        return _Slicer
    else:
        raise AssertionError(f"no implementation for toxic type {toxic_type!r}")
