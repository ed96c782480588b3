"""How numbers read in every report: durations, rates, counts, percentages, times.

Every renderer formats through these helpers so that a figure reads the same in the
Markdown postmortem, the HTML report and the JUnit failure message. A missing value
(``None``, or a NaN from a division by an empty observation) always renders as ``—``.

Example::

    >>> format_duration(125.0)
    '2 min 05 s'
    >>> format_rate(4321.5, "rows")
    '4,322 rows/s'
    >>> format_percent(0.034)
    '3.4%'
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

MISSING = "—"

_MINUTE = 60
_HOUR = 3600
_DAY = 86_400


def _is_missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def format_duration(seconds: float | None) -> str:
    """A duration for a person: ms below a second, one decimal below a minute, then
    minutes and seconds, hours and minutes, days and hours.

    Example::

        >>> [format_duration(s) for s in (0.35, 4.2, 125, 4200, 200_000, None)]
        ['350 ms', '4.2 s', '2 min 05 s', '1 h 10 min', '2 d 08 h', '—']
    """
    if seconds is None or math.isnan(seconds):
        return MISSING
    if math.isinf(seconds):
        return "∞" if seconds > 0 else "-∞"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    # Each branch rounds first and falls through when rounding carries into the next
    # unit, so 59.96 s reads "1 min 00 s", never "60.0 s".
    if round(seconds * 1000) < 1000:
        return f"{round(seconds * 1000)} ms"
    if round(seconds, 1) < _MINUTE:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < _HOUR:
        minutes, secs = divmod(whole, _MINUTE)
        return f"{minutes} min {secs:02d} s"
    total_minutes = round(seconds / _MINUTE)
    if total_minutes < _DAY // _MINUTE:
        hours, minutes = divmod(total_minutes, 60)
        return f"{hours} h {minutes:02d} min"
    total_hours = round(seconds / _HOUR)
    days, hours = divmod(total_hours, 24)
    return f"{days} d {hours:02d} h"


def format_offset(t_s: float | None) -> str:
    """A point in the run, as seconds since it started (the monotonic clock).

    Example::

        >>> format_offset(34.21)
        't+34.2 s'
    """
    if _is_missing(t_s):
        return MISSING
    assert t_s is not None
    return f"t+{t_s:,.1f} s"


def format_count(n: int | None) -> str:
    """A count with thousands separators.

    Example::

        >>> format_count(1234567), format_count(None)
        ('1,234,567', '—')
    """
    return MISSING if n is None else f"{n:,}"


def format_rate(per_s: float | None, unit: str = "rows") -> str:
    """A throughput: whole numbers from 100/s up, otherwise three significant digits.

    Example::

        >>> format_rate(4321.5), format_rate(2.346, "events")
        ('4,322 rows/s', '2.35 events/s')
    """
    if _is_missing(per_s):
        return MISSING
    assert per_s is not None
    if math.isinf(per_s):
        return f"∞ {unit}/s"
    if abs(per_s) >= 100:
        return f"{per_s:,.0f} {unit}/s"
    return f"{_significant(per_s, 3)} {unit}/s"


def format_ratio(ratio: float | None) -> str:
    """A good ratio or an objective as a percentage, with as many decimals as it takes to
    tell it from 100% (an observed 99.996% must not read "100.00%"), trailing zeros
    dropped.

    Example::

        >>> format_ratio(0.999), format_ratio(0.98413), format_ratio(0.99996), format_ratio(1.0)
        ('99.9%', '98.41%', '99.996%', '100%')
    """
    if _is_missing(ratio):
        return MISSING
    assert ratio is not None
    percent = ratio * 100
    for decimals in range(2, 6):
        text = f"{percent:.{decimals}f}"
        if ratio >= 1 or float(text) < 100:
            break
    return _trim(text) + "%"


def format_percent(fraction: float | None) -> str:
    """A share, e.g. of an error budget: 2 significant digits for small shares, whole
    percent from 100% up (a drill can burn many times its run's budget).

    Example::

        >>> [format_percent(f) for f in (7.9, 0.034, 0.0004, 0.0, float("inf"))]
        ['790%', '3.4%', '0.04%', '0%', '∞']
    """
    if _is_missing(fraction):
        return MISSING
    assert fraction is not None
    if math.isinf(fraction):
        return "∞" if fraction > 0 else "-∞"
    percent = fraction * 100
    if percent == 0:
        return "0%"
    if abs(percent) >= 100:
        return f"{percent:,.0f}%"
    if abs(percent) < 0.001:
        return "<0.001%"
    return f"{_significant(percent, 2)}%"


def format_value(value: float | None, unit: str) -> str:
    """An SLI value with its unit ("12.5 s", "3,200 messages", "0 ok").

    Example::

        >>> format_value(12.53, "s"), format_value(3200, "messages")
        ('12.5 s', '3,200 messages')
    """
    if _is_missing(value):
        return MISSING
    assert value is not None
    number = f"{int(value):,}" if value == int(value) and abs(value) >= 1 else _significant(value, 3)
    return f"{number} {unit}".rstrip()


def format_wall(label: str, *, time_only: bool = False) -> str:
    """A wall-clock label from the journal (ISO-8601), shortened for reading; any label
    that does not parse is shown as it is (it is only a label).

    Example::

        >>> format_wall("2025-06-01T10:00:34.250+00:00")
        '2025-06-01 10:00:34 UTC'
        >>> format_wall("2025-06-01T10:00:34.250+00:00", time_only=True)
        '10:00:34'
    """
    if not label:
        return MISSING
    try:
        moment = datetime.fromisoformat(label)
    except ValueError:
        return label
    if time_only:
        return moment.strftime("%H:%M:%S")
    offset = moment.utcoffset()
    if offset is None:
        zone = ""
    elif offset == timedelta(0):
        zone = " UTC"
    else:
        zone = moment.strftime(" %z")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + zone


def format_yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _significant(x: float, digits: int) -> str:
    """``x`` with ``digits`` significant digits in fixed notation (never ``1e-05``)."""
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(digits - 1 - magnitude, 0)
    return _trim(f"{x:,.{decimals}f}")


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text
