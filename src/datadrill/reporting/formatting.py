"""How numbers and verdicts read in every report: durations, rates, counts, percentages,
times, and the verdict kept apart from what the fault cost.

Every renderer formats through these helpers so that a figure reads the same in the
Markdown postmortem, the HTML report, the JUnit failure message, the terminal summary and
the pytest plugin's failure text. A missing value (``None``, or a NaN from a division by an
empty observation) always renders as ``—``.

A drill breaks the platform on purpose, so its SLOs dropping below their objectives is the
price of the fault, not a failed drill. The verdict is about the drill's expectations
(detect within, recover within, integrity); :func:`verdict_lines` says both, apart::

    PASSED — every expectation of the drill held
      ✓ detected after 3.1 s (expected within 10.0 s)
      ✓ recovered after 41.2 s (expected within 1 min 30 s)
      ✓ integrity verified: 24,120 rows compared
    What the fault cost (on purpose; not part of the verdict):
      mart queries succeed: 80.95% good during the drill (objective 99.9%) — 0.26% of the 28-day budget burned

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
from dataclasses import dataclass
from datetime import datetime, timedelta

from datadrill.model.report import RunReport, SLOResult, Verdict

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


# -- the verdict, and what the fault cost ---------------------------------------------------

COST_HEADING = "What the fault cost (on purpose; not part of the verdict):"


@dataclass(frozen=True)
class Check:
    """One line of the verdict: an expectation of the drill and how the run fared.

    ``held`` is True for an expectation the run met, False for why the verdict is not
    "passed" (the verdict's own reasons, a failed runbook step), None for a figure with no
    expectation set.
    """

    held: bool | None
    text: str

    @property
    def mark(self) -> str:
        return "·" if self.held is None else ("✓" if self.held else "✗")


def verdict_meaning(verdict: Verdict) -> str:
    """What a verdict says about the platform, in words a newcomer reads right.

    Example::

        >>> verdict_meaning(Verdict.SLO_VIOLATED)
        'detection or recovery was slower, or the fault cost more budget, than the drill allows'
    """
    if verdict is Verdict.PASSED:
        return "every expectation of the drill held"
    elif verdict is Verdict.SLO_VIOLATED:
        return "detection or recovery was slower, or the fault cost more budget, than the drill allows"
    elif verdict is Verdict.NOT_DETECTED:
        return "no alert fired after the fault"
    elif verdict is Verdict.NOT_RECOVERED:
        return "the platform did not get back inside its SLOs with its data intact"
    elif verdict is Verdict.ABORTED:
        return "the drill stopped before it could judge the platform"
    elif verdict is Verdict.ERROR:
        return "the harness itself failed, so the platform was not judged"
    else:
        raise ValueError(f"no meaning for verdict {verdict!r}")


def verdict_headline(report: RunReport) -> str:
    """The verdict in capitals and what it means: the first line of :func:`verdict_lines`.

    Example::

        verdict_headline(report)   # 'PASSED — every expectation of the drill held'
    """
    return f"{report.verdict.value.upper()} — {verdict_meaning(report.verdict)}"


def verdict_checks(report: RunReport) -> tuple[Check, ...]:
    """Why the verdict: first what went against it (its reasons, failed runbook steps),
    then each expectation that held or had nothing to hold to.

    An expectation that was not met is said by the verdict's own reasons (they come from
    the judgement, so they never disagree with it), not restated here. A run that was
    aborted or errored was not judged, so only its reasons are listed.

    Example::

        [f"{c.mark} {c.text}" for c in verdict_checks(report)]
        # ['✗ recovered after 2.2 s, expected within 0.5 s',
        #  '✓ detected after 700 ms (expected within 5.0 s)']
    """
    against = [Check(False, reason) for reason in report.reasons]
    against += [
        Check(False, f"step failed: {phase.name}" + (f" — {phase.detail}" if phase.detail else ""))
        for phase in report.phases
        if phase.kind == "recovery_step" and not phase.ok
    ]
    if report.verdict in (Verdict.ABORTED, Verdict.ERROR):
        return tuple(against)
    held: list[Check] = []
    if report.fault_start_s is not None:
        held += _time_check("detected", report.ttd_s, report.detect_within_s, "detect_within_s")
        held += _time_check("recovered", report.ttr_s, report.recover_within_s, "recover_within_s")
    integrity = report.integrity
    if integrity is not None and integrity.verified:
        repaired = f", {format_count(integrity.repaired_rows)} repaired" if integrity.repaired_rows else ""
        held.append(
            Check(
                True, f"integrity verified: {format_count(integrity.compared_rows)} rows compared{repaired}"
            )
        )
    return (*against, *held)


def _time_check(what: str, actual: float | None, within: float | None, field_name: str) -> list[Check]:
    if actual is None:
        return []  # not detected / not recovered: a reason of the verdict says so
    if within is None:
        return [Check(None, f"{what} after {format_duration(actual)} (no {field_name} set)")]
    if actual <= within:
        return [
            Check(True, f"{what} after {format_duration(actual)} (expected within {format_duration(within)})")
        ]
    return []  # too late: a reason of the verdict says so


def budget_period_days(report: RunReport) -> float | None:
    """The error-budget policy's period, in days, as the report's figures imply it; None
    when no SLO burned any budget (then the figures do not tell).

    The report does not carry the period itself; each SLO's ``period_budget_burned`` is
    its bad time over the budget the period allows, so the period follows from it.

    Example::

        budget_period_days(report)   # 28.0
    """
    if report.budget_period_days is not None:
        return report.budget_period_days
    for slo in report.slos:
        allowed = 1.0 - slo.objective
        burned = slo.period_budget_burned
        if slo.bad_s > 0 and allowed > 0 and burned > 0 and math.isfinite(burned):
            days = slo.bad_s / (allowed * burned) / _DAY
            return float(f"{days:.6g}")  # 27.9999999 is the policy's 28
    return None


def slo_cost_line(slo: SLOResult, report: RunReport) -> str:
    """What the fault cost one SLO: its good ratio over the drill against its objective,
    and the share of the policy period's error budget burned. Not a pass or a fail: the
    drill injects the fault on purpose.

    Example::

        slo_cost_line(report.slos[0], report)
        # 'mart queries succeed: 80.95% good during the drill (objective 99.9%)
        #  — 0.26% of the 28-day budget burned'
    """
    objective = f"(objective {format_ratio(slo.objective)})"
    if _is_missing(slo.good_ratio) or slo.observed_s <= 0:
        return f"{slo.name}: not measured during the drill {objective}"
    days = budget_period_days(report)
    budget = f"the {days:g}-day budget" if days is not None else "the period's budget"
    return (
        f"{slo.name}: {format_ratio(slo.good_ratio)} good during the drill {objective}"
        f" — {format_percent(slo.period_budget_burned)} of {budget} burned"
    )


def verdict_lines(report: RunReport) -> list[str]:
    """The verdict, why, and what the fault cost, as plain lines (no markup): the
    headline, one indented line per check with its mark, then the cost of each SLO.

    The terminal summary, the JUnit failure text and the pytest plugin's failure message
    all say this.

    Example::

        print("\n".join(verdict_lines(report)))
        # SLO VIOLATED — detection or recovery was slower, or the fault cost more budget, than the drill allows
        #   ✗ recovered after 2.2 s, expected within 0.5 s
        #   ✓ detected after 700 ms (expected within 5.0 s)
        # What the fault cost (on purpose; not part of the verdict):
        #   mart queries succeed: 61.6% good during the drill (objective 99%) — 0.19% of the 28-day budget burned
    """
    lines = [verdict_headline(report)]
    lines += [f"  {check.mark} {check.text}" for check in verdict_checks(report)]
    if report.slos:
        lines.append(COST_HEADING)
        lines += [f"  {slo_cost_line(slo, report)}" for slo in report.slos]
    return lines


def _significant(x: float, digits: int) -> str:
    """``x`` with ``digits`` significant digits in fixed notation (never ``1e-05``)."""
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(digits - 1 - magnitude, 0)
    return _trim(f"{x:,.{decimals}f}")


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text
