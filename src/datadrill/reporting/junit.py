"""A run as JUnit XML, so a CI server shows a game day as a test: passed, failed, or errored.

One ``<testsuite name="datadrill">`` holds one ``<testcase>`` named after the scenario.
Its ``<properties>`` carry the figures a CI dashboard can trend (time to detect, time to
recover, budget burned, one good ratio per SLO). A verdict other than "passed" adds a
``<failure>`` whose message says why (the verdict's reasons: an expectation of the drill
that was not met) and whose text is the verdict's lines, with what the fault cost each SLO
kept apart from it; the verdict "error" (the drill itself broke) adds an ``<error>`` as
well, as pytest does for a test that fails and then errors in teardown. Nothing is ever
skipped.

Example::

    from datadrill.reporting import render_junit
    Path("junit.xml").write_text(render_junit(report), encoding="utf-8")
    # <testcase classname="datadrill.scenarios" name="metadata-loss" time="148.500">
    #   <failure message="SLO violated: recovered after 150.0 s, expected within 120 s; ..." type="SLO violated">
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from datadrill.model.report import RunReport, Verdict
from datadrill.reporting._content import INCOMPLETE_NOTE, summary_text
from datadrill.reporting.formatting import format_duration, verdict_lines, verdict_meaning

# Characters XML 1.0 cannot carry at all, not even escaped. Reasons and details can hold
# process output (ANSI colour codes, NULs); one of those would make the whole file
# unparseable and the CI server would drop the result.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render_junit(report: RunReport) -> str:
    """``report`` as a JUnit XML document (UTF-8 declared), ending in a newline.

    Example::

        root = ET.fromstring(render_junit(report))
        root.find("testsuite/testcase/failure").get("message")
    """
    failed = report.verdict is not Verdict.PASSED
    errored = report.verdict is Verdict.ERROR
    counts = {
        "tests": "1",
        "failures": "1" if failed else "0",
        "errors": "1" if errored else "0",
        "skipped": "0",
        "time": _seconds(report.duration_s),
    }
    suites = ET.Element("testsuites", {"name": "datadrill", **counts})
    suite_attrs = {"name": "datadrill", **counts}
    if report.started_wall:
        suite_attrs["timestamp"] = _clean(report.started_wall)
    suite = ET.SubElement(suites, "testsuite", suite_attrs)
    case = ET.SubElement(
        suite,
        "testcase",
        {
            "classname": "datadrill.scenarios",
            "name": _clean(report.scenario),
            "time": _seconds(report.duration_s),
        },
    )

    properties = ET.SubElement(case, "properties")
    for name, value in _properties(report):
        ET.SubElement(properties, "property", {"name": _clean(name), "value": _clean(value)})

    # Element order follows the JUnit schema Jenkins validates against: error, failure,
    # system-out.
    if errored:
        reasons = "; ".join(report.reasons) or "the drill failed to run"
        ET.SubElement(case, "error", {"message": _clean(f"error: {reasons}"), "type": "error"}).text = _clean(
            "\n".join(report.reasons)
        )
    if failed:
        ET.SubElement(
            case, "failure", {"message": _clean(failure_message(report)), "type": report.verdict.value}
        ).text = _clean(_failure_detail(report))
    ET.SubElement(case, "system-out").text = _clean(
        "\n".join([summary_text(report), "", *verdict_lines(report)])
    )

    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=False).join(
        ['<?xml version="1.0" encoding="UTF-8"?>\n', "\n"]
    )


def failure_message(report: RunReport) -> str:
    """One line: the verdict and why (its reasons, or what it means when it has none), then
    time to detect and time to recover against their expectations. An SLO below its
    objective is not a reason: that is what the fault cost (see the failure's text).

    Example::

        failure_message(report)
        # 'SLO violated: recovered after 150.0 s, expected within 120 s; TTD 4.5 s (≤ 10.0 s);
        #  TTR 2 min 30 s (expected ≤ 2 min 00 s)'
    """
    parts = list(report.reasons) or [verdict_meaning(report.verdict)]
    parts.append("TTD " + format_duration(report.ttd_s) + _within(report.ttd_s, report.detect_within_s))
    parts.append("TTR " + format_duration(report.ttr_s) + _within(report.ttr_s, report.recover_within_s))
    if not report.complete:
        parts.append(INCOMPLETE_NOTE)
    return f"{report.verdict.value}: " + "; ".join(parts)


def _failure_detail(report: RunReport) -> str:
    lines = verdict_lines(report)
    if report.journal_path:
        lines.append(f"journal: {report.journal_path}")
    return "\n".join(lines)


def _properties(report: RunReport) -> list[tuple[str, str]]:
    affected = report.integrity.affected if report.integrity is not None else None
    properties = [
        ("time_to_detect_s", _number(report.ttd_s)),
        ("time_to_recover_s", _number(report.ttr_s)),
        ("verdict", report.verdict.value),
        ("severity", report.severity.value),
        ("error_budget_burned", _number(max((s.budget_burned for s in report.slos), default=None))),
        ("rows_affected", "" if affected is None else str(affected)),
    ]
    properties += [(f"slo.{slo.name}.good_ratio", _number(slo.good_ratio)) for slo in report.slos]
    return properties


def _within(actual: float | None, within: float | None) -> str:
    if within is None:
        return ""
    mark = "≤" if actual is not None and actual <= within else "expected ≤"
    return f" ({mark} {format_duration(within)})"


def _number(value: float | None) -> str:
    # Plain decimal numbers a CI dashboard can plot; "" when there is nothing to plot.
    return "" if value is None else repr(round(value, 6))


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _clean(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
