"""What the fault proxy is asked to do, validated: addresses, proxies and toxics, as data.

Everything here is pure: it parses what the HTTP API (or a Python caller) sends into frozen
values, or raises :class:`~datadrill.errors.ConfigError` naming the source, the field, the
value and what is allowed. Each toxic type takes whole-number attributes
(:data:`TOXIC_ATTRIBUTES`); a missing optional one defaults to 0, as upstream Toxiproxy's do.

A listen or upstream address is checked against the blast-radius guard
(:class:`datadrill.safety.HostPolicy`) by :func:`parse_allowed_address`, which raises
:class:`~datadrill.netfaults.errors.TargetNotAllowed` for a host outside it.

Example::

    spec = parse_toxic({"type": "latency", "attributes": {"latency": 100}})
    spec.name, spec.stream, spec.attribute("jitter")   # ('latency_downstream', Stream.DOWNSTREAM, 0)
    parse_allowed_address("10.1.2.3:5432", policy=HostPolicy(), source="proxy 'pg'",
                          field="upstream", port_zero_ok=False)   # TargetNotAllowed
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from datadrill.errors import ConfigError
from datadrill.netfaults.errors import TargetNotAllowed
from datadrill.safety import HostPolicy

DEFAULT_LISTEN: Final = "127.0.0.1:0"
MAX_ATTRIBUTE: Final = 2**31 - 1
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")


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


def parse_allowed_address(
    value: object, *, policy: HostPolicy, source: str, field: str, port_zero_ok: bool
) -> HostPort:
    """:func:`parse_address`, then refuse a host ``policy`` does not allow (before any packet).

    Example::

        parse_allowed_address("127.0.0.1:0", policy=HostPolicy(), source="proxy 'pg'",
                              field="listen", port_zero_ok=True)   # HostPort('127.0.0.1', 0)
    """
    address = parse_address(value, source=source, field=field, port_zero_ok=port_zero_ok)
    if not policy.allows(address.host):
        raise TargetNotAllowed(source, field, str(address), address.host)
    return address


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


def parse_name(value: object, *, source: str, field: str = "name") -> str:
    """A proxy or toxic name: a non-empty string without ``/``.

    Example::

        parse_name("pg", source="proxy")   # 'pg'
    """
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
    name = parse_name(raw.get("name") or f"{toxic_type.value}_{stream.value}", source=source)
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
