"""The TCP fault proxy engine: proxies, toxics with Toxiproxy 2.x semantics, and the blast-radius guard.

A *proxy* listens on a local address and forwards every accepted connection to an *upstream*
``host:port``. *Toxics* sit on one direction of a proxy — ``upstream`` (client → server) or
``downstream`` (server → client) — and disturb the bytes that flow through it, as Toxiproxy's do:

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

``toxicity`` (0..1) is the chance that a toxic applies to a given connection; it is drawn when
the connection opens (or when the toxic is added or updated on a live connection), as upstream
does. A disabled proxy ("down") stops listening and closes its connections.

Errors (all under :class:`~datadrill.errors.DrillError`)::

    ConfigError                      a request the engine will not run (HTTP 400)
    └── TargetNotAllowed             listen/upstream host outside loopback, not in allow_hosts
    ControlError
    └── FaultProxyError              the fault proxy refused or failed a request; ``.status``
        ├── ProxyNotFound            (404)
        ├── ToxicNotFound            (404)
        ├── ProxyAlreadyExists       (409)
        ├── ToxicAlreadyExists       (409)
        └── FaultProxyUnreachable    no Toxiproxy API answered at the URL (client side)

Blast radius: listen and upstream hosts must be loopback (127.0.0.0/8, ::1, ``localhost``)
unless listed in ``allow_hosts``. No name other than ``localhost`` is ever resolved to decide
this: an unknown name counts as remote and is refused before any packet is sent.

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
import enum
import ipaddress
import logging
import math
import random
import re
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import ClassVar, Final

from datadrill.errors import ConfigError, ControlError

log = logging.getLogger(__name__)

LOOPBACK_DESCRIPTION: Final = "127.0.0.0/8, ::1, localhost"
DEFAULT_LISTEN: Final = "127.0.0.1:0"
MAX_ATTRIBUTE: Final = 2**31 - 1
CONNECT_TIMEOUT_S: Final = 10.0
_READ_SIZE: Final = 32 * 1024
# Bounded so a slow toxic pushes back on the sender through TCP, as a real slow link would.
_QUEUE_CHUNKS: Final = 16
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")


# --------------------------------------------------------------------------- errors


class TargetNotAllowed(ConfigError):
    """A listen or upstream host is outside loopback and not allow-listed."""

    def __init__(self, source: str, field: str, address: str, host: str) -> None:
        self.host = host
        super().__init__(
            source,
            field,
            address,
            f"host {host!r} is outside loopback ({LOOPBACK_DESCRIPTION}); the fault proxy only "
            f"reaches this machine unless told otherwise — to target {host!r} on purpose, add it to "
            f"allow_hosts (FaultProxyServer(allow_hosts=[{host!r}]) or --allow-host {host})",
        )


class FaultProxyError(ControlError):
    """The fault proxy refused or failed a request; ``status`` is the matching HTTP status."""

    default_status: ClassVar[int] = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = self.default_status if status is None else status
        super().__init__(message)


class ProxyNotFound(FaultProxyError):
    default_status = 404


class ToxicNotFound(FaultProxyError):
    default_status = 404


class ProxyAlreadyExists(FaultProxyError):
    default_status = 409


class ToxicAlreadyExists(FaultProxyError):
    default_status = 409


class FaultProxyUnreachable(FaultProxyError):
    """No Toxiproxy API answered (raised by the client, never by the engine)."""

    default_status = 503


# --------------------------------------------------------------------------- domain types


class Stream(enum.Enum):
    """A direction of a proxied connection."""

    UPSTREAM = "upstream"  # client → upstream server
    DOWNSTREAM = "downstream"  # upstream server → client


class ToxicType(enum.Enum):
    LATENCY = "latency"
    BANDWIDTH = "bandwidth"
    TIMEOUT = "timeout"
    RESET_PEER = "reset_peer"
    SLOW_CLOSE = "slow_close"
    LIMIT_DATA = "limit_data"
    SLICER = "slicer"


@dataclass(frozen=True)
class _AttributeRule:
    name: str
    unit: str
    minimum: int = 0
    # Upstream silently defaults a missing attribute to 0; where 0 would make the toxic stall
    # or spin (bandwidth rate, slicer size) we ask for the value instead.
    required: bool = False

    def allowed(self) -> str:
        return f"a whole number of {self.unit}, {self.minimum} to {MAX_ATTRIBUTE}"


TOXIC_ATTRIBUTES: Final[Mapping[ToxicType, tuple[_AttributeRule, ...]]] = MappingProxyType(
    {
        ToxicType.LATENCY: (
            _AttributeRule("latency", "milliseconds"),
            _AttributeRule("jitter", "milliseconds"),
        ),
        ToxicType.BANDWIDTH: (_AttributeRule("rate", "KB/s (1 KB = 1000 bytes)", minimum=1, required=True),),
        ToxicType.TIMEOUT: (_AttributeRule("timeout", "milliseconds (0: never close)"),),
        ToxicType.RESET_PEER: (_AttributeRule("timeout", "milliseconds"),),
        ToxicType.SLOW_CLOSE: (_AttributeRule("delay", "milliseconds"),),
        ToxicType.LIMIT_DATA: (_AttributeRule("bytes", "bytes"),),
        ToxicType.SLICER: (
            _AttributeRule("average_size", "bytes", minimum=1, required=True),
            _AttributeRule("size_variation", "bytes (less than average_size)"),
            _AttributeRule("delay", "microseconds"),
        ),
    }
)

_TOXIC_KEYS: Final = frozenset({"name", "type", "stream", "toxicity", "attributes"})


@dataclass(frozen=True)
class ToxicSpec:
    """One toxic on a proxy, validated. ``attributes`` holds every attribute of its type.

    Example::

        spec = parse_toxic({"type": "latency", "attributes": {"latency": 100}})
        spec.name, spec.attribute("jitter")   # ('latency_downstream', 0)
    """

    name: str
    type: ToxicType
    stream: Stream
    toxicity: float
    attributes: tuple[tuple[str, int], ...]

    def attribute(self, key: str) -> int:
        for name, value in self.attributes:
            if name == key:
                return value
        raise KeyError(f"a {self.type.value} toxic has no attribute {key!r}")

    def to_json(self) -> dict[str, object]:
        """The toxic as Toxiproxy's API shows it."""
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type.value,
            "stream": self.stream.value,
            "toxicity": self.toxicity,
        }


@dataclass(frozen=True)
class ProxyInfo:
    """A proxy as the API reports it. ``listen`` is the bound address while enabled.

    Example::

        info.listen        # '127.0.0.1:40123'
        info.listen_port   # 40123
    """

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[ToxicSpec, ...] = ()

    @property
    def listen_host(self) -> str:
        return parse_address(
            self.listen, source=f"proxy {self.name!r}", field="listen", port_zero_ok=True
        ).host

    @property
    def listen_port(self) -> int:
        return parse_address(
            self.listen, source=f"proxy {self.name!r}", field="listen", port_zero_ok=True
        ).port

    def to_json(self) -> dict[str, object]:
        """The proxy as Toxiproxy's API shows it (with its toxics)."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.toxics],
        }


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        # IPv6 literals need brackets so the port stays unambiguous, as in Go's net.JoinHostPort.
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# --------------------------------------------------------------------------- parsing (pure)


def parse_address(value: object, *, source: str, field: str, port_zero_ok: bool) -> HostPort:
    """Parse ``host:port`` (``[v6]:port`` for IPv6). An empty host means all interfaces.

    Example::

        parse_address("[::1]:0", source="proxy 'pg'", field="listen", port_zero_ok=True)
        # HostPort(host='::1', port=0)
    """
    lowest = 0 if port_zero_ok else 1
    allowed = f"host:port with a port {lowest}..65535, e.g. 127.0.0.1:5432 or [::1]:5432"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(source, field, value, allowed)
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ConfigError(source, field, value, allowed)
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ConfigError(source, field, value, allowed + " (IPv6 hosts go in brackets)")
    if not _PORT_RE.fullmatch(port_text) or not lowest <= int(port_text) <= 65535:
        raise ConfigError(source, field, value, allowed)
    # Go's net.Listen(":8474") means every interface; spell it out so the guard sees it.
    return HostPort(host or "0.0.0.0", int(port_text))


def _normalize_host(host: str) -> str:
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.removesuffix(".") if text not in (".", "") else text


def _as_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also as ``::ffff:127.x.y.z``) and ``localhost``; never resolves.

    Example::

        is_loopback_host("127.3.4.5"), is_loopback_host("db.internal")   # (True, False)
    """
    norm = _normalize_host(host)
    if norm == "localhost":
        return True
    ip = _as_ip(norm)
    # A name is never looked up here: it may resolve anywhere, so it counts as remote.
    return ip is not None and ip.is_loopback


@dataclass(frozen=True)
class HostPolicy:
    """Which hosts a proxy may listen on or forward to: loopback, plus ``allow_hosts``.

    Entries are host names (matched exactly, case-insensitively), IP addresses or networks
    (``10.1.0.0/16``).

    Example::

        HostPolicy(allow_hosts=("10.1.2.3",)).permits("10.1.2.3")   # True
        HostPolicy().permits("10.1.2.3")                             # False
    """

    allow_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        cleaned: list[str] = []
        for entry in self.allow_hosts:
            if not isinstance(entry, str) or not _normalize_host(entry):
                raise ConfigError("fault proxy", "allow_hosts", entry, "host names, IP addresses or networks")
            cleaned.append(_normalize_host(entry))
        object.__setattr__(self, "allow_hosts", tuple(cleaned))

    def permits(self, host: str) -> bool:
        if is_loopback_host(host):
            return True
        norm = _normalize_host(host)
        ip = _as_ip(norm)
        for entry in self.allow_hosts:
            if entry == norm:
                return True
            if ip is not None:
                try:
                    network = ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    continue  # a host name entry; already compared above
                if ip.version == network.version and ip in network:
                    return True
        return False

    def check(self, address: HostPort, *, source: str, field: str) -> None:
        """Raise :class:`TargetNotAllowed` unless ``address``'s host is permitted."""
        if not self.permits(address.host):
            raise TargetNotAllowed(source, field, str(address), address.host)


def _whole_number(value: object, *, source: str, field: str, rule: _AttributeRule) -> int:
    # bool is an int in Python but never a sensible duration or size.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(source, field, value, rule.allowed())
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(source, field, value, rule.allowed())
        value = int(value)
    if not rule.minimum <= value <= MAX_ATTRIBUTE:
        raise ConfigError(source, field, value, rule.allowed())
    return value


def parse_attributes(toxic_type: ToxicType, raw: object, *, source: str) -> tuple[tuple[str, int], ...]:
    """Validate a toxic's attributes; missing optional ones default to 0, as upstream does.

    Example::

        parse_attributes(ToxicType.LATENCY, {"latency": 100}, source="toxic 'slow'")
        # (('latency', 100), ('jitter', 0))
    """
    rules = TOXIC_ATTRIBUTES[toxic_type]
    names = ", ".join(rule.name for rule in rules)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "attributes", raw, f"an object with {names}")
    known = {rule.name for rule in rules}
    for key in raw:
        if key not in known:
            raise ConfigError(
                source,
                f"attributes.{key}",
                raw[key],
                f"not an attribute of a {toxic_type.value} toxic; its attributes are: {names}",
            )
    values: dict[str, int] = {}
    for rule in rules:
        if rule.name not in raw:
            if rule.required:
                raise ConfigError(
                    source,
                    f"attributes.{rule.name}",
                    None,
                    f"missing; a {toxic_type.value} toxic needs {rule.name}: {rule.allowed()}",
                )
            values[rule.name] = 0
            continue
        values[rule.name] = _whole_number(
            raw[rule.name], source=source, field=f"attributes.{rule.name}", rule=rule
        )
    if toxic_type is ToxicType.SLICER and values["size_variation"] >= values["average_size"]:
        raise ConfigError(
            source,
            "attributes.size_variation",
            values["size_variation"],
            f"less than average_size ({values['average_size']})",
        )
    return tuple((rule.name, values[rule.name]) for rule in rules)


def _parse_toxicity(value: object, *, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(source, "toxicity", value, "a number from 0.0 to 1.0")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(source, "toxicity", value, "a number from 0.0 to 1.0")
    return float(value)


def _parse_name(value: object, *, source: str, field: str = "name") -> str:
    # A "/" could never be addressed in /proxies/{name}/toxics/{toxic}, so refuse it up front.
    if not isinstance(value, str) or not value or "/" in value:
        raise ConfigError(source, field, value, "a non-empty string without '/'")
    return value


def parse_toxic(raw: object, *, source: str = "toxic") -> ToxicSpec:
    """Validate a toxic as Toxiproxy's ``POST /proxies/{name}/toxics`` takes it.

    ``stream`` defaults to downstream, ``toxicity`` to 1.0 and ``name`` to ``{type}_{stream}``.
    Unknown keys are refused (a typo must not silently leave a fault out).

    Example::

        parse_toxic({"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 50}})
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(
            source, "body", raw, "a JSON object with type and optionally name, stream, toxicity, attributes"
        )
    for key in raw:
        if key not in _TOXIC_KEYS:
            raise ConfigError(
                source, key, raw[key], f"not a toxic field; fields are: {', '.join(sorted(_TOXIC_KEYS))}"
            )
    type_value = raw.get("type")
    try:
        toxic_type = ToxicType(type_value)
    except ValueError:
        raise ConfigError(
            source, "type", type_value, f"one of {', '.join(t.value for t in ToxicType)}"
        ) from None
    stream_value = raw.get("stream", Stream.DOWNSTREAM.value)
    # Go's stream.ParseDirection lower-cases, so "Upstream" works against a real Toxiproxy too.
    if not isinstance(stream_value, str) or stream_value.lower() not in {s.value for s in Stream}:
        raise ConfigError(source, "stream", stream_value, "upstream or downstream")
    stream = Stream(stream_value.lower())
    name = _parse_name(raw.get("name") or f"{toxic_type.value}_{stream.value}", source=source)
    source = f"toxic {name!r}"
    toxicity = _parse_toxicity(raw.get("toxicity", 1.0), source=source)
    attributes = parse_attributes(toxic_type, raw.get("attributes"), source=source)
    return ToxicSpec(name=name, type=toxic_type, stream=stream, toxicity=toxicity, attributes=attributes)


def update_toxic_spec(spec: ToxicSpec, raw: object) -> ToxicSpec:
    """Apply ``POST /proxies/{p}/toxics/{t}``: merge attributes, change toxicity.

    name, type and stream may be sent (clients often send the whole toxic back) but not changed.

    Example::

        update_toxic_spec(spec, {"attributes": {"jitter": 20}})
    """
    source = f"toxic {spec.name!r}"
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "body", raw, "a JSON object with attributes and/or toxicity")
    current = {"name": spec.name, "type": spec.type.value, "stream": spec.stream.value}
    for key in raw:
        if key not in _TOXIC_KEYS:
            raise ConfigError(source, key, raw[key], "attributes or toxicity")
        if key in current and raw[key] != current[key]:
            raise ConfigError(
                source,
                key,
                raw[key],
                f"unchanged ({current[key]!r}); delete the toxic and add a new one instead",
            )
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ConfigError(source, "attributes", attributes, "an object of attribute values")
    merged = dict(spec.attributes) | dict(attributes)
    toxicity = _parse_toxicity(raw["toxicity"], source=source) if "toxicity" in raw else spec.toxicity
    return replace(spec, toxicity=toxicity, attributes=parse_attributes(spec.type, merged, source=source))


def make_toxic(
    toxic_type: ToxicType | str,
    *,
    stream: Stream | str = Stream.DOWNSTREAM,
    toxicity: float = 1.0,
    name: str | None = None,
    **attributes: int,
) -> ToxicSpec:
    """Build a validated toxic from Python values.

    Example::

        make_toxic("latency", latency=100, jitter=10)
    """
    raw: dict[str, object] = {
        "type": toxic_type.value if isinstance(toxic_type, ToxicType) else toxic_type,
        "stream": stream.value if isinstance(stream, Stream) else stream,
        "toxicity": toxicity,
        "attributes": attributes,
    }
    if name is not None:
        raw["name"] = name
    return parse_toxic(raw)


# --------------------------------------------------------------------------- runtime: toxics on a link


@dataclass(frozen=True)
class _Chunk:
    data: bytes
    read_at: float  # loop time (monotonic) when the proxy read it from the source


_Forward = Callable[[bytes], Awaitable[None]]
_ForwardEof = Callable[[], Awaitable[None]]


class _ToxicRun:
    """One toxic acting on one direction of one connection (Toxiproxy's ToxicStub)."""

    def __init__(self, spec: ToxicSpec, link: _Link, active: bool) -> None:
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

    async def on_data(self, chunk: _Chunk, forward: _Forward) -> None:
        await forward(chunk.data)

    async def on_eof(self, forward_eof: _ForwardEof) -> None:
        await forward_eof()


class _Latency(_ToxicRun):
    async def on_data(self, chunk: _Chunk, forward: _Forward) -> None:
        delay_ms = self.spec.attribute("latency")
        jitter = self.spec.attribute("jitter")
        if jitter > 0:
            delay_ms += self.link.rng.randrange(-jitter, jitter)  # upstream: rand.Int63n(2j) - j
        # Counted from when the chunk was read, so back-to-back chunks overlap their delays
        # (a long link, not a slow one) and order is kept because chunks go one at a time.
        due = chunk.read_at + max(delay_ms, 0) / 1000
        await self.sleep(due - asyncio.get_running_loop().time())
        await forward(chunk.data)


class _Bandwidth(_ToxicRun):
    def __init__(self, spec: ToxicSpec, link: _Link, active: bool) -> None:
        super().__init__(spec, link, active)
        self._ready_at = 0.0

    async def on_data(self, chunk: _Chunk, forward: _Forward) -> None:
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


class _Timeout(_ToxicRun):
    def __init__(self, spec: ToxicSpec, link: _Link, active: bool) -> None:
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

    async def on_data(self, chunk: _Chunk, forward: _Forward) -> None:
        return  # dropped on the floor, as upstream does

    async def on_eof(self, forward_eof: _ForwardEof) -> None:
        # The end of the stream is held back too: the client keeps a silent, open connection
        # (a hang, as upstream's "timeout 0: the connection won't close") until the timer
        # or the toxic's removal closes it.
        return


class _ResetPeer(_ToxicRun):
    def __init__(self, spec: ToxicSpec, link: _Link, active: bool) -> None:
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

    async def on_data(self, chunk: _Chunk, forward: _Forward) -> None:
        if self._resetting:
            return  # the connection is about to be reset; upstream drops this data too
        if not await self._reset_after_timeout():
            await forward(chunk.data)

    async def on_eof(self, forward_eof: _ForwardEof) -> None:
        if not await self._reset_after_timeout():
            await forward_eof()


class _SlowClose(_ToxicRun):
    async def on_eof(self, forward_eof: _ForwardEof) -> None:
        await self.sleep(self.spec.attribute("delay") / 1000)
        await forward_eof()


class _LimitData(_ToxicRun):
    def __init__(self, spec: ToxicSpec, link: _Link, active: bool) -> None:
        super().__init__(spec, link, active)
        self._sent = 0  # kept across updates, as upstream keeps the stub's state

    async def on_data(self, chunk: _Chunk, forward: _Forward) -> None:
        limit = self.spec.attribute("bytes")
        part = chunk.data[: max(limit - self._sent, 0)]
        if part:
            await forward(part)
            self._sent += len(part)
        if self._sent >= limit:
            self.link.conn.close(f"limit_data toxic {self.spec.name!r} passed {limit} bytes")


class _Slicer(_ToxicRun):
    async def on_data(self, chunk: _Chunk, forward: _Forward) -> None:
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


def _run_class(toxic_type: ToxicType) -> type[_ToxicRun]:
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
        self.runs: list[_ToxicRun] = []
        self._queue: asyncio.Queue[_Chunk | None] = asyncio.Queue(_QUEUE_CHUNKS)

    def add(self, spec: ToxicSpec) -> None:
        run = _run_class(spec.type)(spec, self, self._roll(spec))
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
                await self._queue.put(_Chunk(data, loop.time()))
        except OSError as exc:
            # A reset or broken source ends this direction like an EOF; the chain decides the rest.
            log.debug("%s: %s source ended: %r", self.conn.label, self.stream.value, exc)
        await self._queue.put(None)

    async def pump_loop(self) -> None:
        while (chunk := await self._queue.get()) is not None:
            await self._data_through(tuple(self.runs), 0, chunk)
        await self._eof_through(tuple(self.runs), 0)

    async def _data_through(self, chain: tuple[_ToxicRun, ...], index: int, chunk: _Chunk) -> None:
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
                await self._data_through(chain, after, _Chunk(data, chunk.read_at))

        await chain[index].on_data(chunk, forward)

    async def _eof_through(self, chain: tuple[_ToxicRun, ...], index: int) -> None:
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
            name = _parse_name(name, source="proxy")
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
            source = f"proxy {_parse_name(name, source='proxy')!r}"
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
        address = parse_address(value, source=source, field=field, port_zero_ok=port_zero_ok)
        self.policy.check(address, source=source, field=field)
        return address

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
        host = "127.0.0.1" if _normalize_host(address.host) == "localhost" else address.host
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
