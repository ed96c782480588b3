"""Trino's types on the wire: DuckDB result types as Trino names and type signatures, result
values in Trino's JSON encoding, and the literals Trino clients send as query parameters.

A Trino client decodes each column by its ``typeSignature`` (the ``trino`` Python client maps
``decimal`` to Decimal, ``timestamp with time zone`` to an aware datetime, ``varbinary`` from
base64...), so the embedded engine's answers must use Trino's names and encodings exactly.

Example::

    trino_type(duckdb.typing.BIGINT)          # TrinoType("bigint", {"rawType": "bigint", ...})
    encode_value(Decimal("1.50"), "decimal")  # "1.50"
    parse_parameters("1, 'a''b', DATE '2026-01-02'")   # [1, "a'b", date(2026, 1, 2)]
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

# Trino's unbounded varchar carries this length in its signature.
VARCHAR_MAX = 2147483647

_SIMPLE = {
    "boolean": "boolean",
    "tinyint": "tinyint",
    "smallint": "smallint",
    "integer": "integer",
    "bigint": "bigint",
    "utinyint": "smallint",
    "usmallint": "integer",
    "uinteger": "bigint",
    "float": "real",
    "double": "double",
    "date": "date",
    "blob": "varbinary",
    "uuid": "uuid",
    "interval": "interval day to second",
    "json": "json",
}
# DuckDB's timestamp kinds by precision (fractional digits).
_TIMESTAMPS = {"timestamp_s": 0, "timestamp_ms": 3, "timestamp": 6, "timestamp_ns": 9}


@dataclass(frozen=True)
class TrinoType:
    """A column type as Trino states it: ``name`` (e.g. ``decimal(10,2)``), the signature
    clients decode by, and the raw type (``decimal``) value encoding is chosen by."""

    name: str
    signature: dict[str, Any]

    @property
    def raw(self) -> str:
        return str(self.signature["rawType"])


def _long(value: int) -> dict[str, Any]:
    return {"kind": "LONG", "value": value}


def _type_arg(t: TrinoType) -> dict[str, Any]:
    return {"kind": "TYPE", "value": t.signature}


def trino_type(duck: Any) -> TrinoType:
    """The Trino type for a DuckDB result type (a ``DuckDBPyType``)."""
    kind = str(duck.id).lower()
    if kind in _SIMPLE:
        name = _SIMPLE[kind]
        return TrinoType(name, {"rawType": name, "arguments": []})
    if kind == "varchar":
        return TrinoType("varchar", {"rawType": "varchar", "arguments": [_long(VARCHAR_MAX)]})
    if kind == "decimal":
        fields = dict(duck.children)
        precision, scale = int(fields["precision"]), int(fields["scale"])
        return TrinoType(
            f"decimal({precision},{scale})",
            {"rawType": "decimal", "arguments": [_long(precision), _long(scale)]},
        )
    if kind in ("hugeint", "uhugeint", "ubigint"):
        # Wider than bigint: Trino has no such integer, a decimal with no scale holds it.
        return TrinoType("decimal(38,0)", {"rawType": "decimal", "arguments": [_long(38), _long(0)]})
    if kind in _TIMESTAMPS:
        p = _TIMESTAMPS[kind]
        return TrinoType(f"timestamp({p})", {"rawType": "timestamp", "arguments": [_long(p)]})
    if kind == "timestamp with time zone":
        return TrinoType(
            "timestamp(6) with time zone", {"rawType": "timestamp with time zone", "arguments": [_long(6)]}
        )
    if kind == "time":
        return TrinoType("time(6)", {"rawType": "time", "arguments": [_long(6)]})
    if kind == "time with time zone":
        return TrinoType("time(6) with time zone", {"rawType": "time with time zone", "arguments": [_long(6)]})
    if kind == "list" or kind == "array":
        element = trino_type(dict(duck.children)["child"])
        return TrinoType(f"array({element.name})", {"rawType": "array", "arguments": [_type_arg(element)]})
    if kind == "map":
        fields = dict(duck.children)
        key, value = trino_type(fields["key"]), trino_type(fields["value"])
        return TrinoType(
            f"map({key.name}, {value.name})",
            {"rawType": "map", "arguments": [_type_arg(key), _type_arg(value)]},
        )
    if kind == "struct":
        members = [(str(n), trino_type(t)) for n, t in duck.children]
        return TrinoType(
            "row(" + ", ".join(f'"{n}" {t.name}' for n, t in members) + ")",
            {
                "rawType": "row",
                "arguments": [
                    {"kind": "NAMED_TYPE", "value": {"fieldName": {"name": n}, "typeSignature": t.signature}}
                    for n, t in members
                ],
            },
        )
    # Anything else (enums, bit strings, unions) reaches clients as its text.
    return TrinoType("varchar", {"rawType": "varchar", "arguments": [_long(VARCHAR_MAX)]})


def _timestamp_text(value: dt.datetime, precision: int) -> str:
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if precision > 0:
        text += "." + f"{value.microsecond:06d}".ljust(precision, "0")[:precision]
    return text


def _interval_text(value: dt.timedelta) -> str:
    """``interval day to second`` as Trino writes it: ``D HH:MM:SS.mmm``."""
    total_ms = round(value.total_seconds() * 1000)
    sign = "-" if total_ms < 0 else ""
    total_ms = abs(total_ms)
    days, rest = divmod(total_ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{sign}{days} {hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def encode_value(value: Any, t: TrinoType) -> Any:
    """A result value in Trino's JSON encoding for its column type."""
    if value is None:
        return None
    raw = t.raw
    if raw == "decimal":
        return format(Decimal(value), "f")
    if raw in ("double", "real"):
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return number
    if raw == "timestamp with time zone" and isinstance(value, dt.datetime):
        precision = int(t.signature["arguments"][0]["value"])
        return _timestamp_text(value.astimezone(dt.UTC), precision) + " UTC"
    if raw == "timestamp" and isinstance(value, dt.datetime):
        return _timestamp_text(value, int(t.signature["arguments"][0]["value"]))
    if raw == "date" and isinstance(value, dt.date):
        return value.isoformat()
    if raw in ("time", "time with time zone") and isinstance(value, dt.time):
        return value.isoformat(timespec="microseconds")
    if raw == "varbinary" and isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if raw == "interval day to second" and isinstance(value, dt.timedelta):
        return _interval_text(value)
    if raw == "array" and isinstance(value, list | tuple):
        element = TrinoType("", t.signature["arguments"][0]["value"])
        return [encode_value(v, element) for v in value]
    if raw == "map" and isinstance(value, dict):
        key_t = TrinoType("", t.signature["arguments"][0]["value"])
        value_t = TrinoType("", t.signature["arguments"][1]["value"])
        return {str(encode_value(k, key_t)): encode_value(v, value_t) for k, v in value.items()}
    if raw == "row" and isinstance(value, dict):
        fields = [TrinoType("", a["value"]["typeSignature"]) for a in t.signature["arguments"]]
        return [encode_value(v, f) for v, f in zip(value.values(), fields, strict=False)]
    if raw in ("bigint", "integer", "smallint", "tinyint", "boolean"):
        return value
    if isinstance(value, bool | int | float):
        return value
    return str(value)


# -- parameters ------------------------------------------------------------------------------
class LiteralError(ValueError):
    """A parameter literal this engine does not read (arrays, rows, maps, functions)."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\s+[A-Za-z_][A-Za-z0-9_]*)*?)(?=\s*'|\s*\(|\s*,|\s*$)
      | (?P<call>-?[A-Za-z_]+\(\))
      | (?P<comma>,)
    )""",
    re.VERBOSE,
)


def _unquote(text: str) -> str:
    return text[1:-1].replace("''", "'")


def _typed(type_name: str, text: str) -> Any:
    kind = type_name.lower()
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "timestamp":
        return _parse_timestamp(text)
    if kind == "time":
        return dt.time.fromisoformat(text.split(" ")[0])
    if kind == "decimal":
        return Decimal(text)
    if kind in ("double", "real"):
        return float(text)
    if kind == "uuid":
        return uuid.UUID(text)
    if kind in ("varchar", "char"):
        return text
    raise LiteralError(f"parameter literal {type_name} '{text}' is not supported here")


def _parse_timestamp(text: str) -> dt.datetime:
    """``YYYY-MM-DD HH:MM:SS[.f] [zone]``: a zone name (``UTC``, ``Europe/Paris``) or an
    offset (``+02:00``) makes an aware datetime."""
    parts = text.strip().split(" ")
    stamp = dt.datetime.fromisoformat(" ".join(parts[:2]))
    if len(parts) > 2:
        zone = parts[2]
        if zone[0] in "+-":
            stamp = dt.datetime.fromisoformat(f"{parts[0]} {parts[1]}{zone}")
        else:
            stamp = stamp.replace(tzinfo=dt.UTC if zone.upper() == "UTC" else ZoneInfo(zone))
    return stamp


_CALLS = {"infinity()": math.inf, "-infinity()": -math.inf, "nan()": math.nan}


def parse_parameters(text: str) -> list[Any]:
    """The values of a ``USING`` list as the ``trino`` client writes it (NULL, true/false,
    numbers, 'text', X'hex', DATE/TIMESTAMP/TIME/DECIMAL/DOUBLE/UUID 'literal', infinity(),
    nan()). Raises LiteralError on anything else."""
    values: list[Any] = []
    pos, expect_value = 0, True
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise LiteralError(f"cannot read the parameters at {text[pos:pos + 30]!r}")
        pos = match.end()
        if match.group("comma"):
            if expect_value:
                raise LiteralError("an empty parameter in the USING list")
            expect_value = True
            continue
        if not expect_value:
            raise LiteralError(f"parameters must be separated by commas near {match.group(0).strip()!r}")
        expect_value = False
        if (string := match.group("string")) is not None:
            values.append(_unquote(string))
        elif (number := match.group("number")) is not None:
            values.append(Decimal(number) if "." in number or "e" in number.lower() else int(number))
        elif (call := match.group("call")) is not None:
            if call.lower() not in _CALLS:
                raise LiteralError(f"parameter {call} is not supported here")
            values.append(_CALLS[call.lower()])
        else:
            word = match.group("word")
            lowered = word.lower()
            if lowered == "null":
                values.append(None)
            elif lowered in ("true", "false"):
                values.append(lowered == "true")
            else:
                literal = _TOKEN.match(text, pos)
                if literal is None or literal.group("string") is None:
                    raise LiteralError(f"parameter {word} needs a quoted literal after it")
                pos = literal.end()
                body = _unquote(literal.group("string"))
                values.append(bytes.fromhex(body) if lowered == "x" else _typed(word, body))
    if expect_value and values:
        raise LiteralError("the USING list ends with a comma")
    return values
