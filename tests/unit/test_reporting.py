"""The reporters: Markdown, HTML, JSON and JUnit renderings of a RunReport, and writing them."""

from __future__ import annotations

import dataclasses
import doctest
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import plotly.offline
import pytest
from report_factory import make_report

from datadrill.errors import ConfigError
from datadrill.model.report import RunReport, Severity, Verdict
from datadrill.reporting import (
    FORMATS,
    formatting,
    render_html,
    render_json,
    render_junit,
    render_markdown,
    write_reports,
)
from datadrill.reporting.formatting import (
    budget_period_days,
    format_count,
    format_duration,
    format_rate,
    slo_cost_line,
    verdict_checks,
    verdict_lines,
)

SECTIONS = (
    "Summary",
    "Impact",
    "Timeline",
    "Detection",
    "Recovery",
    "Integrity",
    "What went well",
    "What went badly",
    "Action items",
)


def bare_report(**overrides: object) -> RunReport:
    """A run that ended early: every optional figure missing, nothing measured."""
    slo = dataclasses.replace(
        make_report().slos[1],
        threshold=None,
        first_alert_s=None,
        worst_value=None,
        series=(),
        good_ratio=math.nan,
        budget_burned=math.nan,
        period_budget_burned=math.nan,
    )
    fields: dict[str, object] = {
        "verdict": Verdict.ABORTED,
        "reasons": (),
        "complete": False,
        "description": "",
        "started_wall": "",
        "fault_start_s": None,
        "detected_s": None,
        "ttd_s": None,
        "recovered_s": None,
        "ttr_s": None,
        "detect_within_s": None,
        "recover_within_s": None,
        "severity": Severity.NONE,
        "slos": (slo,),
        "phases": (),
        "faults": (),
        "integrity": None,
        "backups": (),
        "rows_replayed": None,
        "replay_rate_per_s": None,
        "projection": None,
        "timeline": (),
        "went_well": (),
        "went_badly": (),
        "action_items": (),
        "journal_path": "",
    }
    fields.update(overrides)
    return make_report(**fields)


# What judge() says when recovery took longer than expected: the realistic reason of an
# "SLO violated" verdict (the factory's reasons predate the split of verdict and cost).
LATE = "recovered after 62.0 s, expected within 60 s"


def late_report(**overrides: object) -> RunReport:
    fields: dict[str, object] = {"reasons": (LATE,), "recover_within_s": 60.0}
    fields.update(overrides)
    return make_report(**fields)


def junit_case(report: RunReport) -> ET.Element:
    root = ET.fromstring(render_junit(report))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["datadrill"]
    cases = suites[0].findall("testcase")
    assert len(cases) == 1
    return cases[0]


def junit_properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.findall("properties/property")}


# -- the factory ------------------------------------------------------------------------------


def test_factory_builds_a_realistic_metadata_loss_run() -> None:
    report = make_report()
    assert report.scenario == "metadata-loss"
    assert len(report.slos) == 3
    assert all(90 <= len(slo.series) <= 110 for slo in report.slos)
    assert all(any(p.value is None for p in slo.series) for slo in report.slos)
    assert any(p.kind == "recovery_step" and p.rows and p.rate_per_s for p in report.phases)
    assert 12 <= len(report.timeline) <= 18
    assert report.backups[0].age_at_fault_s == 18.0
    assert report.projection is not None and report.projection.rows


def test_factory_applies_overrides() -> None:
    assert make_report(verdict=Verdict.PASSED).verdict is Verdict.PASSED


# -- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "—"),
        (math.nan, "—"),
        (0.0, "0 ms"),
        (0.35, "350 ms"),
        (0.9996, "1.0 s"),
        (4.2, "4.2 s"),
        (59.94, "59.9 s"),
        (59.96, "1 min 00 s"),
        (125, "2 min 05 s"),
        (3599.6, "1 h 00 min"),
        (4200, "1 h 10 min"),
        (200_000, "2 d 08 h"),
        (-4.2, "-4.2 s"),
        (math.inf, "∞"),
    ],
)
def test_format_duration(seconds: float | None, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_format_rate_and_count() -> None:
    assert format_rate(4321.5) == "4,322 rows/s"
    assert format_rate(0.5, "events") == "0.5 events/s"
    assert format_rate(None) == "—"
    assert format_count(1_234_567) == "1,234,567"
    assert format_count(None) == "—"


def test_formatting_docstring_examples_hold() -> None:
    result = doctest.testmod(formatting)
    assert result.attempted >= 10
    assert result.failed == 0


# -- Markdown ---------------------------------------------------------------------------------


def test_markdown_title_names_scenario_and_verdict() -> None:
    first_line = render_markdown(make_report()).splitlines()[0]
    assert first_line == "# Game day postmortem: metadata-loss — SLO violated"


def test_markdown_has_every_section_in_order() -> None:
    text = render_markdown(make_report())
    positions = [text.index(f"\n## {title}\n") for title in SECTIONS]
    assert positions == sorted(positions)


def test_markdown_has_the_key_figures() -> None:
    text = render_markdown(make_report())
    assert "**Time to detect:** 4.5 s (expected within 10.0 s: met)" in text
    assert "**Time to recover:** 1 min 02 s (expected within 2 min 00 s: met)" in text
    assert "**Severity:** SEV-2" in text
    assert "**Release freeze:** no" in text
    assert "**Postmortem required:** yes" in text
    # mart freshness: 34.5 s bad against 0.1% of 150 s, and of a 28-day period.
    assert (
        "| mart freshness | dwh.orders no older than 30 s, 99.9% of the time | 78% / 99.9% | 33.0 s" in text
    )
    assert "| Budget burned in run | Of the 28-day budget | Within objective |" in text
    assert "| 22,000% | 1.4% | no |" in text
    assert "**28-day budget burned:** 1.4%" in text
    assert "**First alert:** mart queries succeed at t+34.5 s (alert rule: bad for 3 s)" in text


def test_markdown_summary_says_what_when_and_how_long() -> None:
    summary = render_markdown(late_report()).split("## Summary\n\n", 1)[1].split("\n", 1)[0]
    assert "At t+30.0 s the drill injected a fault: deleted the catalog entry of dwh.orders." in summary
    assert "The first alert fired at t+34.5 s, 4.5 s after the fault" in summary
    assert "The platform recovered at t+92.0 s, 1 min 02 s after the fault" in summary
    assert summary.endswith(
        "Verdict: SLO violated — detection or recovery was slower, or the fault cost more budget, than the drill allows."
    )
    assert "run incomplete" not in summary


def test_markdown_summary_keeps_the_verdict_apart_from_what_the_fault_cost() -> None:
    section = render_markdown(late_report()).split("## Summary\n\n", 1)[1].split("\n## ", 1)[0]
    verdict, cost = section.split("What the fault cost (on purpose; not part of the verdict):")
    assert "- ✗ recovered after 62.0 s, expected within 60 s" in verdict
    assert "- ✓ detected after 4.5 s (expected within 10.0 s)" in verdict
    assert "- ✓ integrity verified: 24,120 rows compared, 312 repaired" in verdict
    assert (
        "- mart freshness: 78% good during the drill (objective 99.9%) — 1.4% of the 28-day budget burned"
        in cost
    )
    assert "miss" not in section.lower()


def test_markdown_impact_says_an_slo_below_objective_is_the_cost_not_a_failure() -> None:
    impact = render_markdown(make_report()).split("## Impact\n\n", 1)[1].split("\n## ", 1)[0]
    assert impact.startswith("What the fault cost. The drill breaks the platform on purpose")
    assert "missed" not in impact


def test_markdown_freeze_and_missed_expectations() -> None:
    text = render_markdown(
        make_report(release_freeze=True, ttd_s=14.0, ttr_s=None, recovered_s=None, severity=Severity.SEV1)
    )
    assert "**Release freeze:** yes" in text
    assert "**Severity:** SEV-1" in text
    assert "**Time to detect:** 14.0 s (expected within 10.0 s: missed by 4.0 s)" in text
    assert "**Time to recover:** — (expected within 2 min 00 s: not reached)" in text
    assert "The platform had not recovered when the run ended" in text


def test_markdown_recovery_backups_projection_and_integrity() -> None:
    text = render_markdown(make_report())
    assert (
        "| replay orders.v1 from the backup's offsets | recovery step | t+48.2 s | 14.6 s | 9,720 | 666 rows/s |"
        in text
    )
    assert "| nightly | t+12.0 s | 8412 | 14,400 | 18.0 s |" in text
    assert "**Rows replayed:** 9,720" in text
    assert "this recovery would take about 28 d 12 h" in text
    assert "Assumptions: a nightly backup is on average 12 h old" in text
    assert "| Repaired | 312 |" in text
    assert "**Verified:** yes" in text


def test_markdown_lists_and_footer() -> None:
    text = render_markdown(make_report())
    assert "- The nightly backup restored cleanly and the replay lost no rows." in text
    assert "- [ ] Take catalog backups hourly to bound the replay." in text
    assert text.rstrip().splitlines()[-1] == (
        "**Run:** `20250601T100000Z-metadata-loss-7f3a` · **Seed:** 42 · **Stack:** embedded"
        " · **Journal:** `.datadrill/runs/20250601T100000Z-metadata-loss-7f3a/journal.jsonl`"
    )


def test_markdown_of_a_bare_incomplete_run() -> None:
    text = render_markdown(bare_report())
    assert "run incomplete: the journal ends before the run finished" in text
    assert "None" not in text
    assert "nan" not in text.lower()
    for title in SECTIONS:
        assert f"\n## {title}\n" in text
    assert "No fault was injected." in text
    assert "**Time to detect:** — (no expectation set)" in text
    assert "No integrity check ran." in text
    assert "No production volume was given" in text
    assert "**Journal:** —" in text


def test_markdown_keeps_journal_text_from_becoming_markup() -> None:
    text = render_markdown(
        make_report(
            description="Drop | the <b>table</b>\nnow",
            went_well=("**bold** claim",),
        )
    )
    assert "Drop | the &lt;b>table&lt;/b> now." in text
    assert "- \\*\\*bold\\*\\* claim" in text
    timeline = render_markdown(
        make_report(timeline=(dataclasses.replace(make_report().timeline[0], text="a | b"),))
    )
    assert "| a \\| b |" in timeline


# -- JSON -------------------------------------------------------------------------------------


def test_json_round_trips_with_schema_version_and_field_order() -> None:
    report = make_report()
    data = json.loads(render_json(report))
    assert list(data) == ["schema_version", *(f.name for f in dataclasses.fields(RunReport))]
    assert data["schema_version"] == 1
    assert data["verdict"] == "SLO violated"
    assert data["severity"] == "SEV-2"
    assert data["slos"][0]["series"][0] == {"t_s": 0.0, "value": 1.0, "good": True}
    assert data["integrity"]["repaired_rows"] == 312
    assert data["projection"]["rows"][1]["projected_rows"] == 1_296_000_000
    assert data["reasons"] == list(report.reasons)
    assert data["slos"][1]["series"][30]["value"] is None


def test_json_is_indented_stable_and_has_no_nan() -> None:
    text = render_json(bare_report())
    assert text == render_json(bare_report())
    assert text.startswith('{\n  "schema_version": 1,\n')
    assert "NaN" not in text
    data = json.loads(text)
    assert data["slos"][0]["good_ratio"] is None
    assert data["verdict"] == "aborted"
    assert data["integrity"] is None


# -- JUnit ------------------------------------------------------------------------------------


def test_junit_properties() -> None:
    case = junit_case(make_report())
    assert case.get("classname") == "datadrill.scenarios"
    assert case.get("name") == "metadata-loss"
    assert case.get("time") == "148.500"
    props = junit_properties(case)
    assert props == {
        "time_to_detect_s": "4.5",
        "time_to_recover_s": "62.0",
        "verdict": "SLO violated",
        "severity": "SEV-2",
        "error_budget_burned": "220.0",
        "rows_affected": "0",
        "slo.mart queries succeed.good_ratio": "0.88",
        "slo.mart freshness.good_ratio": "0.78",
        "slo.canary latency.good_ratio": "0.8",
    }


@pytest.mark.parametrize("verdict", list(Verdict))
def test_junit_failure_iff_not_passed_and_error_iff_error(verdict: Verdict) -> None:
    root = ET.fromstring(render_junit(make_report(verdict=verdict)))
    case = root.find("testsuite/testcase")
    assert case is not None
    assert (case.find("failure") is not None) == (verdict is not Verdict.PASSED)
    assert (case.find("error") is not None) == (verdict is Verdict.ERROR)
    assert case.find("skipped") is None
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("failures") == ("0" if verdict is Verdict.PASSED else "1")
    assert suite.get("errors") == ("1" if verdict is Verdict.ERROR else "0")
    assert suite.get("tests") == "1"


def test_junit_failure_message_says_which_expectation_failed_not_the_slos() -> None:
    failure = junit_case(late_report()).find("failure")
    assert failure is not None
    assert failure.get("type") == "SLO violated"
    assert failure.get("message") == (
        "SLO violated: recovered after 62.0 s, expected within 60 s; "
        "TTD 4.5 s (≤ 10.0 s); TTR 1 min 02 s (expected ≤ 1 min 00 s)"
    )
    text = failure.text or ""
    assert text.startswith("SLO VIOLATED — detection or recovery was slower, or the fault cost more budget, than the drill allows\n")
    assert "  ✗ recovered after 62.0 s, expected within 60 s\n" in text
    assert (
        "What the fault cost (on purpose; not part of the verdict):\n"
        "  mart queries succeed: 88% good during the drill (objective 99.9%) — 0.74% of the 28-day budget burned"
    ) in text
    assert text.endswith("journal: .datadrill/runs/20250601T100000Z-metadata-loss-7f3a/journal.jsonl")


def test_junit_failure_message_without_reasons_says_what_the_verdict_means() -> None:
    failure = junit_case(make_report(reasons=(), verdict=Verdict.NOT_RECOVERED)).find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith(
        "not recovered: the platform did not get back inside its SLOs with its data intact; TTD"
    )


def test_junit_not_detected_message() -> None:
    report = make_report(
        verdict=Verdict.NOT_DETECTED, detected_s=None, ttd_s=None, ttr_s=None, recovered_s=None
    )
    failure = junit_case(report).find("failure")
    assert failure is not None
    assert "TTD — (expected ≤ 10.0 s)" in failure.get("message", "")


def test_junit_of_a_bare_report_and_control_characters() -> None:
    report = bare_report(verdict=Verdict.ERROR, reasons=("stack died: \x1b[31mboom\x1b[0m\x00",))
    case = junit_case(report)
    props = junit_properties(case)
    assert props["time_to_detect_s"] == ""
    assert props["rows_affected"] == ""
    error = case.find("error")
    assert error is not None
    assert error.get("message") == "error: stack died: \\x1b[31mboom\\x1b[0m\\x00"
    failure = case.find("failure")
    assert failure is not None
    assert "run incomplete" in failure.get("message", "")


# -- HTML -------------------------------------------------------------------------------------


def test_html_inlines_plotly_once_and_one_plot_per_slo() -> None:
    report = make_report()
    html = render_html(report)
    bundle = plotly.offline.get_plotlyjs()
    assert html.count(bundle[:400]) == 1
    assert html.count(f"<script>{bundle}</script>") == 1
    page = html.replace(bundle, "")  # the page itself, without the library's own strings
    assert page.count('data-figure="') == len(report.slos) == 3
    assert page.count('class="plot"') == 3
    assert re.findall(r"<script[^>]*\ssrc=", page) == []
    assert re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page) == []
    assert "http://" not in page
    assert "https://" not in page
    assert "metadata-loss" in page
    assert html.startswith("<!DOCTYPE html>")


def test_html_has_the_markdown_content() -> None:
    html = render_html(make_report())
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html
    assert "<h2>SLIs over time</h2>" in html
    assert "4.5 s (expected within 10.0 s: met)" in html
    assert "restore catalog from backup &#39;nightly&#39;" in html
    assert '<input type="checkbox" disabled aria-label="open"> Take catalog backups hourly' in html


def test_html_figure_data_has_series_threshold_and_markers() -> None:
    html = render_html(make_report())
    blobs = re.findall(r'<script type="application/json" id="slo-\d-data">(.*?)</script>', html, re.S)
    figures = [json.loads(blob) for blob in blobs]
    assert len(figures) == 3
    freshness = figures[1]
    series = freshness["data"][0]
    assert series["connectgaps"] is False
    assert None in series["y"]
    assert freshness["data"][1]["name"] == "bad"
    names = {trace["name"] for trace in freshness["data"]}
    assert {"fault injected", "fault reverted", "detected", "recovery step", "recovered"} <= names
    shapes = freshness["layout"]["shapes"]
    assert any(s.get("name") == "threshold 30 s" and s["y0"] == 30 for s in shapes)
    steps = next(t for t in freshness["data"] if t["name"] == "recovery step")
    assert steps["x"] == [45.0, 46.0, 48.2, 62.9, 63.5]
    # query success has no threshold line
    assert not any(s.get("name", "").startswith("threshold") for s in figures[0]["layout"]["shapes"])


def test_html_charts_say_within_or_below_objective_not_missed() -> None:
    held = dataclasses.replace(make_report().slos[0], good_ratio=0.9995, met=True)
    page = render_html(make_report(slos=(held, *make_report().slos[1:])))
    assert '<span class="status within">within objective</span>' in page
    assert page.count('<span class="status below">below objective</span>') == 2
    assert ">missed<" not in page


@pytest.mark.parametrize(
    ("verdict", "tone"),
    [
        (Verdict.PASSED, "passed"),
        (Verdict.SLO_VIOLATED, "failed"),
        (Verdict.NOT_DETECTED, "failed"),
        (Verdict.NOT_RECOVERED, "failed"),
        (Verdict.ABORTED, "aborted"),
        (Verdict.ERROR, "error"),
    ],
)
def test_html_verdict_is_colour_coded(verdict: Verdict, tone: str) -> None:
    assert f'class="banner verdict-{tone}"' in render_html(make_report(verdict=verdict))


def test_html_escapes_journal_text_everywhere() -> None:
    evil = "</script><script>alert(1)</script>"
    base = make_report()
    report = make_report(
        description=evil,
        slos=(dataclasses.replace(base.slos[0], name=evil),),
        faults=(dataclasses.replace(base.faults[0], description=evil),),
        timeline=(dataclasses.replace(base.timeline[0], text=evil),),
    )
    html = render_html(report)
    page = html.replace(plotly.offline.get_plotlyjs(), "")
    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The library, one figure's JSON, the start-up script: nothing else runs.
    assert len(re.findall(r"<script\b", page)) == 3
    blob = re.findall(r'<script type="application/json" id="slo-0-data">(.*?)</script>', page, re.S)
    figure = json.loads(blob[0])
    fault = next(t for t in figure["data"] if t["name"] == "fault injected")
    assert fault["text"] == ["fault: &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;<br>t+30.0 s"]


def test_html_of_a_bare_report() -> None:
    html = render_html(bare_report())
    assert "run incomplete: the journal ends before the run finished" in html
    assert "None" not in html.replace(plotly.offline.get_plotlyjs(), "")


def test_html_without_slos_needs_no_plotly() -> None:
    html = render_html(bare_report(slos=()))
    assert "Plotly.newPlot" not in html
    assert "No SLO was measured." in html


# -- every format -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_renderer_handles_a_bare_report(name: str) -> None:
    text = FORMATS[name][1](bare_report())
    assert text.endswith("\n")
    assert "metadata-loss" in text


def test_formats_name_their_files() -> None:
    assert {name: file for name, (file, _) in FORMATS.items()} == {
        "md": "report.md",
        "html": "report.html",
        "json": "report.json",
        "junit": "junit.xml",
    }
    assert FORMATS["md"][1] is render_markdown


def test_write_reports_writes_four_files(tmp_path: Path) -> None:
    report = make_report()
    out = tmp_path / "runs" / report.run_id
    paths = write_reports(report, out)
    assert paths == {
        "md": out / "report.md",
        "html": out / "report.html",
        "json": out / "report.json",
        "junit": out / "junit.xml",
    }
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "report.json", "report.md"]
    assert paths["md"].read_text(encoding="utf-8") == render_markdown(report)
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["run_id"] == report.run_id
    ET.parse(paths["junit"])


def test_write_reports_replaces_and_writes_a_subset(tmp_path: Path) -> None:
    (tmp_path / "junit.xml").write_text("old")
    paths = write_reports(make_report(verdict=Verdict.PASSED), tmp_path, formats=["junit"])
    assert list(paths) == ["junit"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml"]
    assert 'failures="0"' in (tmp_path / "junit.xml").read_text()


def test_write_reports_rejects_an_unknown_format_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'pdf' is invalid: one of md, html, json, junit"):
        write_reports(make_report(), tmp_path / "out", formats=["md", "pdf"])
    assert not (tmp_path / "out").exists()


# -- the verdict, apart from what the fault cost ---------------------------------------------


def test_slo_cost_line_reads_as_a_cost() -> None:
    base = make_report()
    bad_s = 6.29
    slo = dataclasses.replace(
        base.slos[0], good_ratio=0.8095, bad_s=bad_s, period_budget_burned=bad_s / (0.001 * 28 * 86_400)
    )
    report = make_report(slos=(slo,))
    assert slo_cost_line(slo, report) == (
        "mart queries succeed: 80.95% good during the drill (objective 99.9%) — 0.26% of the 28-day budget burned"
    )


def test_budget_period_days_comes_from_the_figures_the_report_has() -> None:
    assert budget_period_days(make_report()) == 28.0
    week = tuple(
        dataclasses.replace(slo, period_budget_burned=slo.bad_s / ((1 - slo.objective) * 7 * 86_400))
        for slo in make_report().slos
    )
    assert budget_period_days(make_report(slos=week)) == 7.0
    # Nothing burned: the figures do not tell the period, and the line does not guess it.
    clean = dataclasses.replace(make_report().slos[0], bad_s=0.0, period_budget_burned=0.0, good_ratio=1.0)
    report = make_report(slos=(clean,))
    assert budget_period_days(report) is None
    assert slo_cost_line(clean, report).endswith("— 0% of the period's budget burned")


def test_slo_cost_line_of_an_slo_never_measured() -> None:
    report = bare_report()
    assert (
        slo_cost_line(report.slos[0], report)
        == "mart freshness: not measured during the drill (objective 99.9%)"
    )


def test_verdict_lines_of_a_passed_drill_with_slos_below_objective() -> None:
    lines = verdict_lines(make_report(verdict=Verdict.PASSED, reasons=()))
    assert lines == [
        "PASSED — every expectation of the drill held",
        "  ✓ detected after 4.5 s (expected within 10.0 s)",
        "  ✓ recovered after 1 min 02 s (expected within 2 min 00 s)",
        "  ✓ integrity verified: 24,120 rows compared, 312 repaired",
        "What the fault cost (on purpose; not part of the verdict):",
        "  mart queries succeed: 88% good during the drill (objective 99.9%) — 0.74% of the 28-day budget burned",
        "  mart freshness: 78% good during the drill (objective 99.9%) — 1.4% of the 28-day budget burned",
        "  canary latency: 80% good during the drill (objective 99%) — 0.12% of the 28-day budget burned",
    ]
    assert not any("MISS" in line.upper() for line in lines)


def test_verdict_lines_put_the_reasons_first_and_never_restate_a_missed_expectation() -> None:
    lines = verdict_lines(late_report())
    assert lines[:4] == [
        "SLO VIOLATED — detection or recovery was slower, or the fault cost more budget, than the drill allows",
        "  ✗ recovered after 62.0 s, expected within 60 s",
        "  ✓ detected after 4.5 s (expected within 10.0 s)",
        "  ✓ integrity verified: 24,120 rows compared, 312 repaired",
    ]
    assert sum("recovered after" in line for line in lines) == 1


def test_verdict_checks_name_a_failed_step_and_unset_expectations() -> None:
    failed = dataclasses.replace(make_report().phases[6], ok=False, detail="TimeoutError: partitions [3]")
    report = make_report(
        verdict=Verdict.NOT_RECOVERED,
        reasons=("the SLIs never stayed inside their SLOs for the stabilisation window",),
        phases=(failed,),
        detect_within_s=None,
        recovered_s=None,
        ttr_s=None,
        integrity=None,
    )
    assert [(c.mark, c.text) for c in verdict_checks(report)] == [
        ("✗", "the SLIs never stayed inside their SLOs for the stabilisation window"),
        ("✗", "step failed: replay orders.v1 from the backup's offsets — TimeoutError: partitions [3]"),
        ("·", "detected after 4.5 s (no detect_within_s set)"),
    ]


@pytest.mark.parametrize("verdict", [Verdict.ABORTED, Verdict.ERROR])
def test_verdict_lines_of_a_run_that_was_not_judged_give_only_its_reasons(verdict: Verdict) -> None:
    lines = verdict_lines(make_report(verdict=verdict, reasons=("interrupted (Ctrl-C)",)))
    assert lines[1] == "  ✗ interrupted (Ctrl-C)"
    assert lines[2] == "What the fault cost (on purpose; not part of the verdict):"


@pytest.mark.parametrize("verdict", list(Verdict))
def test_every_verdict_has_a_meaning(verdict: Verdict) -> None:
    headline = verdict_lines(make_report(verdict=verdict, slos=()))[0]
    assert headline.startswith(verdict.value.upper() + " — ")
