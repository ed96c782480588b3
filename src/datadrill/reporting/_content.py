"""The postmortem's content, decided once: what each section says, as plain text.

The Markdown and the HTML renderer both walk the ``Content`` built here, so the two
documents cannot drift apart: a figure added to a section appears in both. Cells and
sentences are plain text; each renderer escapes them for its own format.

The verdict and what the fault cost are kept apart, as everywhere (see
:func:`datadrill.reporting.formatting.verdict_lines`): the Summary says the verdict with
its checks, then what the fault cost; the Impact section's SLO table is the cost, never a
pass or a fail.

Example::

    content = build_content(report)
    [section.title for section in content.sections]
    # ['Summary', 'Impact', 'Timeline', 'Detection', 'Recovery', 'Integrity', ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from datadrill.model.report import IntegrityResult, ProjectionRow, RunReport, SLOResult, Verdict
from datadrill.reporting.formatting import (
    COST_HEADING,
    MISSING,
    budget_period_days,
    format_count,
    format_duration,
    format_offset,
    format_percent,
    format_rate,
    format_ratio,
    format_value,
    format_wall,
    format_yes_no,
    slo_cost_line,
    verdict_checks,
    verdict_meaning,
)

# How a fact or a row should look: "good" and "bad" colour it in HTML; any other tone
# (a timeline entry's kind) only tags it. Markdown ignores tones.
Tone = str
Align = Literal["left", "right"]

INCOMPLETE_NOTE = "run incomplete: the journal ends before the run finished"


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    tone: Tone = ""
    code: bool = False  # show the value verbatim (an id, a path)


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]
    tone: Tone = ""


@dataclass(frozen=True)
class Paragraph:
    kind: ClassVar[str] = "paragraph"
    text: str


@dataclass(frozen=True)
class Heading:
    kind: ClassVar[str] = "heading"
    text: str


@dataclass(frozen=True)
class Facts:
    kind: ClassVar[str] = "facts"
    items: tuple[Fact, ...]


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    align: tuple[Align, ...]

    def __post_init__(self) -> None:
        widths = {len(self.headers), len(self.align), *(len(row.cells) for row in self.rows)}
        if len(widths) != 1:
            raise ValueError(f"table {self.headers!r}: headers, align and rows differ in width: {widths}")


@dataclass(frozen=True)
class Bullets:
    kind: ClassVar[str] = "bullets"
    items: tuple[str, ...]
    checkboxes: bool = False


Block = Paragraph | Heading | Facts | Table | Bullets


@dataclass(frozen=True)
class Section:
    title: str
    anchor: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Content:
    title: str
    scenario: str
    verdict: str
    verdict_tone: Literal["passed", "failed", "aborted", "error"]
    subtitle: str
    headline: tuple[Fact, ...]
    sections: tuple[Section, ...]
    footer: tuple[Fact, ...] = field(default=())


def build_content(report: RunReport) -> Content:
    """Everything the postmortem says about ``report``, section by section."""
    return Content(
        title=f"Game day postmortem: {report.scenario}",
        scenario=report.scenario,
        verdict=report.verdict.value,
        verdict_tone=_verdict_tone(report.verdict),
        subtitle=(
            f"Started {format_wall(report.started_wall)} · ran {format_duration(report.duration_s)}"
            f" · {report.stack} stack"
        ),
        headline=_headline(report),
        sections=(
            Section("Summary", "summary", _summary(report)),
            Section("Impact", "impact", _impact(report)),
            Section("Timeline", "timeline", _timeline(report)),
            Section("Detection", "detection", _detection(report)),
            Section("Recovery", "recovery", _recovery(report)),
            *_incident_sections(report),
            Section("Integrity", "integrity", _integrity(report.integrity)),
            Section("What went well", "went-well", _bullets_or(report.went_well, "Nothing recorded.")),
            Section("What went badly", "went-badly", _bullets_or(report.went_badly, "Nothing recorded.")),
            Section(
                "Action items",
                "action-items",
                _bullets_or(report.action_items, "No action items recorded.", checkboxes=True),
            ),
        ),
        footer=(
            Fact("Run", report.run_id, code=True),
            Fact("Seed", str(report.seed)),
            Fact("Stack", report.stack),
            Fact("Journal", report.journal_path or MISSING, code=bool(report.journal_path)),
        ),
    )


def _verdict_tone(verdict: Verdict) -> Literal["passed", "failed", "aborted", "error"]:
    if verdict is Verdict.PASSED:
        return "passed"
    if verdict in (Verdict.SLO_VIOLATED, Verdict.NOT_DETECTED, Verdict.NOT_RECOVERED):
        return "failed"
    if verdict is Verdict.ABORTED:
        return "aborted"
    if verdict is Verdict.ERROR:
        return "error"
    raise ValueError(f"no tone for verdict {verdict!r}")


def _headline(report: RunReport) -> tuple[Fact, ...]:
    ttd_tone = _tone_within(report.ttd_s, report.detect_within_s)
    ttr_tone = _tone_within(report.ttr_s, report.recover_within_s)
    worst = max(report.slos, key=lambda slo: slo.period_budget_burned, default=None)
    affected = report.integrity.affected if report.integrity is not None else None
    return (
        Fact("Time to detect", format_duration(report.ttd_s), ttd_tone),
        Fact("Time to recover", format_duration(report.ttr_s), ttr_tone),
        Fact("Severity", report.severity.value, "good" if report.severity.value == "none" else "bad"),
        Fact(
            _capitalised(f"{_period(report)} burned"),
            format_percent(worst.period_budget_burned) if worst else MISSING,
            "bad" if report.release_freeze else "",
        ),
        Fact("Rows affected", format_count(affected), "bad" if affected else ""),
    )


def _summary(report: RunReport) -> tuple[Block, ...]:
    """The story in a paragraph, the verdict's checks, then what the fault cost."""
    blocks: list[Block] = [Paragraph(summary_text(report))]
    blocks += [Paragraph(_sentence(_capitalised(note))) for note in report.notes]
    checks = verdict_checks(report)
    if checks:
        blocks.append(Bullets(tuple(f"{check.mark} {check.text}" for check in checks)))
    if report.slos:
        blocks.append(Paragraph(COST_HEADING))
        blocks.append(Bullets(tuple(slo_cost_line(slo, report) for slo in report.slos)))
    return tuple(blocks)


def _period(report: RunReport) -> str:
    """The error-budget policy's period, as a budget's name: "28-day budget"."""
    days = budget_period_days(report)
    return f"{days:g}-day budget" if days is not None else "period's budget"


def summary_text(report: RunReport) -> str:
    """One paragraph: what was injected, when it was detected, how long recovery took, and
    the verdict with what it means (its reasons are the Summary's checks)."""
    sentences: list[str] = []
    if report.description:
        sentences.append(_sentence(report.description))
    faults = sorted(report.faults, key=lambda f: f.injected_s)
    if len(faults) == 1:
        sentences.append(
            f"At {format_offset(faults[0].injected_s)} the drill injected a fault: "
            f"{_clause(faults[0].description)}."
        )
    elif faults:
        listed = "; ".join(f"{_clause(f.description)} at {format_offset(f.injected_s)}" for f in faults)
        sentences.append(f"The drill injected {len(faults)} faults: {listed}.")
    else:
        sentences.append("No fault was injected.")

    if report.detected_s is not None:
        after = f", {format_duration(report.ttd_s)} after the fault" if report.ttd_s is not None else ""
        sentences.append(
            f"The first alert fired at {format_offset(report.detected_s)}{after}"
            f"{_expected(report.detect_within_s)}."
        )
    else:
        sentences.append("No alert fired: the fault was not detected." if faults else "No alert fired.")

    if report.recovered_s is not None:
        after = f", {format_duration(report.ttr_s)} after the fault" if report.ttr_s is not None else ""
        sentences.append(
            f"The platform recovered at {format_offset(report.recovered_s)}{after}"
            f"{_expected(report.recover_within_s)}."
        )
    elif faults:
        sentences.append(
            f"The platform had not recovered when the run ended{_expected(report.recover_within_s)}."
        )

    sentences.append(f"Verdict: {report.verdict.value} — {verdict_meaning(report.verdict)}.")
    if not report.complete:
        sentences.append(f"Note — {INCOMPLETE_NOTE}, so later measurements are missing.")
    return " ".join(sentences)


def _impact(report: RunReport) -> tuple[Block, ...]:
    blocks: list[Block] = []
    if report.slos:
        blocks.append(
            Paragraph(
                "What the fault cost. The drill breaks the platform on purpose, so an SLO below its "
                "objective here is the price of the fault, not a failed drill: the verdict judges "
                "detection, recovery and integrity."
            )
        )
        blocks.append(
            Table(
                headers=(
                    "SLO",
                    "Statement",
                    "Good (observed / objective)",
                    "Bad time",
                    "Budget burned in run",
                    f"Of the {_period(report)}",
                    "Within objective",
                ),
                rows=tuple(
                    Row(
                        (
                            slo.name,
                            slo.statement,
                            f"{format_ratio(slo.good_ratio)} / {format_ratio(slo.objective)}",
                            format_duration(slo.bad_s),
                            format_percent(slo.budget_burned),
                            format_percent(slo.period_budget_burned),
                            format_yes_no(slo.met),
                        ),
                    )
                    for slo in report.slos
                ),
                align=("left", "left", "right", "right", "right", "right", "left"),
            )
        )
    else:
        blocks.append(Paragraph("No SLO was measured."))
    blocks.append(
        Facts(
            (
                Fact("Rows affected", _rows_affected(report.integrity)),
                Fact("Severity", report.severity.value),
                Fact(
                    "Release freeze",
                    "yes: the burn reaches the error budget policy's freeze threshold"
                    if report.release_freeze
                    else "no",
                    "bad" if report.release_freeze else "good",
                ),
                Fact("Postmortem required", format_yes_no(report.postmortem_required)),
            )
        )
    )
    return tuple(blocks)


def _rows_affected(integrity: IntegrityResult | None) -> str:
    if integrity is None:
        return f"{MISSING} (no integrity check ran)"
    return (
        f"{format_count(integrity.affected)} ({format_count(integrity.duplicates)} duplicated, "
        f"{format_count(integrity.omissions)} missing, {format_count(integrity.discrepancies)} different, "
        f"{format_count(integrity.unexpected)} unexpected)"
    )


def _timeline(report: RunReport) -> tuple[Block, ...]:
    blocks: list[Block] = []
    if report.timeline:
        blocks.append(
            Table(
                headers=("Run time", "Wall clock", "Kind", "Event"),
                rows=tuple(
                    Row(
                        (format_offset(e.t_s), format_wall(e.wall, time_only=True), e.kind, e.text),
                        tone=e.kind,
                    )
                    for e in sorted(report.timeline, key=lambda e: e.t_s)
                ),
                align=("right", "left", "left", "left"),
            )
        )
    else:
        blocks.append(Paragraph("No events were recorded."))
    if report.faults:
        blocks.append(Heading("Faults"))
        blocks.append(
            Table(
                headers=("Fault", "Description", "Injected", "Reverted", "Revert note"),
                rows=tuple(
                    Row(
                        (
                            f.kind,
                            f.description,
                            format_offset(f.injected_s),
                            format_offset(f.reverted_s),
                            f.revert_note or MISSING,
                        ),
                        tone="" if f.reverted_s is not None else "bad",
                    )
                    for f in report.faults
                ),
                align=("left", "left", "right", "right", "left"),
            )
        )
    return tuple(blocks)


def first_alert(slos: tuple[SLOResult, ...]) -> SLOResult | None:
    """The SLO whose alert fired first, if any did."""
    alerted = [slo for slo in slos if slo.first_alert_s is not None]
    return min(alerted, key=lambda slo: slo.first_alert_s or 0.0, default=None)


def _detection(report: RunReport) -> tuple[Block, ...]:
    first = first_alert(report.slos)
    facts = [
        Fact(
            "Time to detect",
            format_duration(report.ttd_s) + _verdict_within(report.ttd_s, report.detect_within_s),
            _tone_within(report.ttd_s, report.detect_within_s),
        ),
        Fact(
            "First alert",
            f"{first.name} at {format_offset(first.first_alert_s)} (alert rule: {first.alert})"
            if first is not None
            else "none: no SLO alerted",
            "" if first is not None else "bad",
        ),
        Fact("Probe interval", format_duration(report.probe_interval_s)),
    ]
    blocks: list[Block] = [Facts(tuple(facts))]
    if report.slos:
        ordered = sorted(report.slos, key=lambda s: (s.first_alert_s is None, s.first_alert_s or 0.0, s.name))
        blocks.append(
            Table(
                headers=("SLO", "Alert rule", "First alert", "After fault", "Worst value"),
                rows=tuple(
                    Row(
                        (
                            slo.name,
                            slo.alert,
                            format_offset(slo.first_alert_s),
                            _since(slo.first_alert_s, report.fault_start_s),
                            format_value(slo.worst_value, slo.unit),
                        )
                    )
                    for slo in ordered
                ),
                align=("left", "left", "right", "right", "right"),
            )
        )
    blocks.extend(_prometheus_detection(report))
    return tuple(blocks)


def _prometheus_detection(report: RunReport) -> tuple[Block, ...]:
    """Each rule of the watched Prometheus beside datadrill's own detection of its SLO,
    and the rules that never fired."""
    if report.prometheus_url is None:
        return ()
    rules = report.prometheus_rules
    fired = [r for r in rules if r.fired]
    never = [r for r in rules if not r.fired]
    blocks: list[Block] = [
        Heading("Detection as Prometheus saw it"),
        Paragraph(
            f"The run watched the alerts of {report.prometheus_url}: {len(fired)} of {len(rules)} "
            "alerting rules fired after the fault. Times are when the runner saw the alert "
            "firing, so they include the scrape and evaluation intervals."
        ),
    ]
    if fired:
        blocks.append(
            Table(
                headers=(
                    "Rule",
                    "SLO",
                    "Severity",
                    "Time to fire",
                    "datadrill's time to detect",
                    "Difference",
                ),
                rows=tuple(
                    Row(
                        (
                            r.rule,
                            r.slo or MISSING,
                            r.severity or MISSING,
                            format_duration(r.time_to_fire_s),
                            format_duration(r.datadrill_ttd_s),
                            f"{r.time_to_fire_s - r.datadrill_ttd_s:+.1f} s"
                            if r.time_to_fire_s is not None and r.datadrill_ttd_s is not None
                            else MISSING,
                        )
                    )
                    for r in fired
                ),
                align=("left", "left", "left", "right", "right", "right"),
            )
        )
    if never:
        blocks.append(Paragraph("Rules that never fired:"))
        blocks.append(
            Bullets(
                tuple(
                    f"{r.rule}"
                    + (f" (SLO {r.slo}, {r.severity})" if r.slo else "")
                    + (f" — went pending at {format_offset(r.pending_s)}" if r.pending_s is not None else "")
                    for r in never
                )
            )
        )
    return tuple(blocks)


def _recovery(report: RunReport) -> tuple[Block, ...]:
    blocks: list[Block] = [
        Paragraph(
            "Time to recover runs from the fault to the moment every SLI had stayed good for "
            f"{format_duration(report.stabilisation_s)} and the integrity check passed."
        ),
        Facts(
            (
                Fact(
                    "Time to recover",
                    format_duration(report.ttr_s) + _verdict_within(report.ttr_s, report.recover_within_s),
                    _tone_within(report.ttr_s, report.recover_within_s),
                ),
                Fact("Recovered at", format_offset(report.recovered_s)),
            )
        ),
        Heading("Phases"),
    ]
    if report.phases:
        blocks.append(
            Table(
                headers=("Phase", "Kind", "Start", "Duration", "Rows", "Rate", "Notes"),
                rows=tuple(
                    Row(
                        (
                            p.name,
                            p.kind.replace("_", " "),
                            format_offset(p.start_s),
                            format_duration(p.duration_s),
                            format_count(p.rows),
                            format_rate(p.rate_per_s),
                            ("failed" + (f": {p.detail}" if p.detail else "")) if not p.ok else p.detail,
                        ),
                        tone="" if p.ok else "bad",
                    )
                    for p in sorted(report.phases, key=lambda p: p.start_s)
                ),
                align=("left", "left", "right", "right", "right", "right", "left"),
            )
        )
    else:
        blocks.append(Paragraph("No phases were recorded."))

    blocks.append(Heading("Backups"))
    if report.backups:
        blocks.append(
            Table(
                headers=("Backup", "Taken at", "Snapshot", "Rows at backup", "Age at fault (RPO)"),
                rows=tuple(
                    Row(
                        (
                            b.name,
                            format_offset(b.taken_s),
                            str(b.snapshot_id) if b.snapshot_id is not None else MISSING,
                            format_count(b.rows_at_backup),
                            format_duration(b.age_at_fault_s),
                        )
                    )
                    for b in report.backups
                ),
                align=("left", "right", "right", "right", "right"),
            )
        )
    else:
        blocks.append(Paragraph("No backup was taken."))

    blocks.append(
        Facts(
            (
                Fact("Rows replayed", format_count(report.rows_replayed)),
                Fact("Replay rate", format_rate(report.replay_rate_per_s)),
            )
        )
    )

    blocks.append(Heading("Projection at production volume"))
    projection = report.projection
    if projection is None:
        blocks.append(Paragraph("No production volume was given, so nothing was projected."))
    else:
        blocks.append(
            Paragraph(
                f"At {format_rate(projection.events_per_s, 'events')} and a table of "
                f"{format_count(projection.table_rows)} rows, this recovery would take about "
                f"{format_duration(projection.total_s)}."
            )
        )
        if projection.rows and projection.modelled:
            blocks.append(_modelled_projection_table(projection.rows))
        elif projection.rows:
            blocks.append(
                Table(
                    headers=("Phase", "Measured", "Measured rows", "Rate", "Projected rows", "Projected"),
                    rows=tuple(
                        Row(
                            (
                                r.phase,
                                format_duration(r.measured_s),
                                format_count(r.measured_rows),
                                format_rate(r.rate_per_s),
                                format_count(r.projected_rows),
                                format_duration(r.projected_s),
                            )
                        )
                        for r in projection.rows
                    ),
                    align=("left", "right", "right", "right", "right", "right"),
                )
            )
        if projection.assumptions:
            blocks.append(Paragraph(_sentence(f"Assumptions: {projection.assumptions}")))
    return tuple(blocks)


def _incident_sections(report: RunReport) -> tuple[Section, ...]:
    """The postmortem of an incident whose runbook weighed recovery paths (a Compare): its
    stages, the paths side by side at production volume, and where the rows came from."""
    comparison = report.comparison
    if comparison is None:
        return ()
    stages: list[Block] = []
    for stage in report.stages:
        stages.append(
            Heading(
                f"{stage.name}: {format_offset(stage.start_s)} to {format_offset(stage.end_s)} "
                f"({format_duration(stage.end_s - stage.start_s)})"
            )
        )
        stages.append(Bullets(stage.lines))
    objective = comparison.recover_within_s
    volume = (
        f"at {format_rate(comparison.events_per_s, 'events')}"
        if comparison.events_per_s is not None
        else "with no production volume given (projected as measured)"
    )
    paths: list[Block] = [
        Paragraph(
            f"Every path was measured on the same loss; '{comparison.applied}' was applied, the others "
            f"ran their steps' measurement mode (nothing changed). Projected {volume}, against the "
            + (f"{format_duration(objective)} recovery objective." if objective is not None else "no recovery objective set.")
            + " A path's time is its own steps: detection, the response delay and the checks after it come on top."
        ),
        Table(
            headers=("Path", "Role", "Rows", "Measured", "Rate", "Projected", "Meets the objective"),
            rows=tuple(
                Row(
                    (
                        path.name,
                        "applied" if path.applied else "measured, not applied",
                        format_count(path.rows),
                        format_duration(path.measured_s),
                        format_rate(path.rate_per_s),
                        format_duration(path.projected_s),
                        MISSING if path.meets_objective is None else format_yes_no(path.meets_objective),
                    ),
                    tone="" if path.meets_objective is None else ("good" if path.meets_objective else "bad"),
                )
                for path in comparison.paths
            ),
            align=("left", "left", "right", "right", "right", "right", "left"),
        ),
        Heading("Each path's steps"),
        Table(
            headers=("Path", "Step", "Rows", "Measured", "Rate", "Projected rows", "Projected"),
            rows=tuple(
                Row(
                    (
                        path.name,
                        # The phase is "<path>[ (measured, not applied)]: <step>".
                        step.phase[len(path.name) :].split(": ", 1)[-1] + ("" if step.ok else " (FAILED)"),
                        format_count(step.rows),
                        format_duration(step.measured_s),
                        format_rate(step.rate_per_s),
                        format_count(step.projected_rows),
                        format_duration(step.projected_s),
                    ),
                    tone="" if step.ok else "bad",
                )
                for path in comparison.paths
                for step in path.steps
            ),
            align=("left", "left", "right", "right", "right", "right", "right"),
        ),
    ]
    if comparison.assumptions:
        paths.append(Paragraph(_sentence(f"Assumptions: {comparison.assumptions}")))
    sources: list[Block] = []
    if report.row_sources:
        sources.append(
            Table(
                headers=("Came from", "Phase", "Rows"),
                rows=tuple(Row((r.source, r.phase, format_count(r.rows))) for r in report.row_sources),
                align=("left", "left", "right"),
            )
        )
    else:
        sources.append(Paragraph("No applied step reported rows."))
    return (
        Section("The incident, stage by stage", "stages", tuple(stages) or (Paragraph("No stage recorded."),)),
        Section("Recovery paths compared", "paths-compared", tuple(paths)),
        Section("Where the rows came from", "row-sources", tuple(sources)),
    )


def _model_cell(r: ProjectionRow) -> str:
    """``4.3 s + 0.45 µs/row ÷ 4``: the row's cost model (per-row part per worker)."""
    if not r.model_source or r.per_row_s is None:
        return MISSING
    per_row = f"{r.per_row_s * 1e6:.3g} µs/row" + (f" ÷ {r.parallelism:g}" if r.parallelism != 1 else "")
    if r.model_source == "linear" or r.fixed_s is None:
        return per_row  # no fixed part: the measured rate, scaled
    return f"{format_duration(r.fixed_s)} + {per_row}"


def _fit_cell(r: ProjectionRow) -> str:
    """Where the model comes from and how well it fits: ``calibration, ±3.2% over 3
    measurements (100,000–2,000,000 rows)``; ``linear, 1 size``."""
    if not r.model_source:
        return MISSING
    if r.model_source == "linear":
        return "linear, 1 size"
    sizes = f"{format_count(r.fit_min_rows)}–{format_count(r.fit_max_rows)} rows"
    if r.fit_points <= 2:  # a line through two points fits them exactly
        return f"{r.model_source}, {r.fit_points} measurements, no error estimate ({sizes})"
    return f"{r.model_source}, ±{(r.fit_error or 0.0):.1%} over {r.fit_points} measurements ({sizes})"


def _modelled_projection_table(rows: tuple[ProjectionRow, ...]) -> Table:
    return Table(
        headers=("Phase", "Measured", "Measured rows", "Rate", "Projected rows", "Model", "Fit", "Projected"),
        rows=tuple(
            Row(
                (
                    r.phase,
                    format_duration(r.measured_s),
                    format_count(r.measured_rows),
                    format_rate(r.rate_per_s),
                    format_count(r.projected_rows),
                    _model_cell(r),
                    _fit_cell(r),
                    format_duration(r.projected_s),
                )
            )
            for r in rows
        ),
        align=("left", "right", "right", "right", "right", "right", "left", "right"),
    )


def _integrity(integrity: IntegrityResult | None) -> tuple[Block, ...]:
    if integrity is None:
        return (Paragraph("No integrity check ran."),)

    def row(label: str, n: int, *, bad_if_any: bool = True) -> Row:
        return Row((label, format_count(n)), tone="bad" if bad_if_any and n else "")

    blocks: list[Block] = [
        Table(
            headers=("Check", "Rows"),
            rows=(
                row("Compared", integrity.compared_rows, bad_if_any=False),
                row("Duplicates", integrity.duplicates),
                row("Omissions", integrity.omissions),
                row("Discrepancies", integrity.discrepancies),
                row("Unexpected", integrity.unexpected),
                row("Repaired", integrity.repaired_rows, bad_if_any=False),
            ),
            align=("left", "right"),
        ),
        Facts(
            (
                Fact(
                    "Verified",
                    "yes: the table matches the source" if integrity.verified else "no",
                    "good" if integrity.verified else "bad",
                ),
            )
        ),
    ]
    if integrity.detail:
        blocks.append(Paragraph(integrity.detail))
    return tuple(blocks)


def _bullets_or(items: tuple[str, ...], empty: str, *, checkboxes: bool = False) -> tuple[Block, ...]:
    if not items:
        return (Paragraph(empty),)
    return (Bullets(items, checkboxes=checkboxes),)


def _tone_within(actual: float | None, within: float | None) -> Tone:
    if within is None:
        return ""
    return "good" if actual is not None and actual <= within else "bad"


def _verdict_within(actual: float | None, within: float | None) -> str:
    if within is None:
        return " (no expectation set)"
    if actual is None:
        return f" (expected within {format_duration(within)}: not reached)"
    if actual <= within:
        return f" (expected within {format_duration(within)}: met)"
    return f" (expected within {format_duration(within)}: missed by {format_duration(actual - within)})"


def _expected(within: float | None) -> str:
    return "" if within is None else f" (expected within {format_duration(within)})"


def _since(t_s: float | None, start_s: float | None) -> str:
    if t_s is None or start_s is None:
        return MISSING
    return format_duration(t_s - start_s)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _clause(text: str) -> str:
    """``text`` fit to sit inside a sentence: no trailing full stop."""
    return text.strip().rstrip(".")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
