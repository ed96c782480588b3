"""What a person sees during and after a run.

During the run, :func:`render_live` draws, from the runner's ``LiveState``: a header; the
scenario's timeline as a bar (steady state, each scheduled fault at its offset, the alert,
the runbook, stabilisation) with where the run is now; the SLIs; the running step's
progress; and a rolling log of the last events. It is redrawn four times a second inside a
``rich.live.Live``, so every part has a bounded height and no part wraps without limit.
Each part is its own function, so each can be tested by rendering it alone.

After the run, :func:`print_summary` says the verdict (about the drill's expectations)
apart from what the fault cost the SLOs, and where the reports are.

Example::

    console = Console(record=True, width=100)
    console.print(render_live(state, scenario))
    console.export_text()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from datadrill.model.faults import BACKUP_ITEMS
from datadrill.model.recovery import Runbook
from datadrill.model.scenario import Scenario
from datadrill.reporting.formatting import (
    COST_HEADING,
    MISSING,
    format_count,
    format_duration,
    format_offset,
    format_rate,
    slo_cost_line,
    verdict_checks,
    verdict_meaning,
)

if TYPE_CHECKING:
    # Only for types: the events' models cost a noticeable share of the CLI's start-up, so
    # the functions that read events import them when first called.
    from datadrill import events as ev
    from datadrill.engine.runner import LiveState

# Schedule items named on the timeline's caption; a generated schedule can hold dozens.
MAX_SCHEDULE_SHOWN = 3
# How much of a scheduled item's or step's description the caption keeps.
DESCRIPTION_CHARS = 36

_STEADY = "blue"
_WAITING = "yellow"  # the fault phase before its first fault
_FAULT = "red"
_RUNBOOK = "cyan"
_STABLE = "green"


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ok":
        return "ok" if value >= 1 else "FAIL"
    if unit == "messages":
        return f"{value:,.0f}"
    return f"{value:,.2f} {unit}"


# -- the live view ------------------------------------------------------------------------------


def render_live(state: object, scenario: Scenario) -> Group:
    """Everything the live display shows, top to bottom; ``state`` is the runner's
    ``LiveState`` (typed ``object`` so that importing this module loads no engine)."""
    from datadrill.engine.runner import LiveState

    assert isinstance(state, LiveState)
    parts: list[RenderableType] = [render_header(state, scenario), render_timeline(state, scenario)]
    parts.append(render_slis(state, scenario))
    if state.active_faults:
        faults = Text("faults: " + "; ".join(state.active_faults), style="yellow", no_wrap=True)
        faults.overflow = "ellipsis"
        parts.append(faults)
    step = render_step_progress(state)
    if step is not None:
        parts.append(step)
    log = render_log(state)
    if log is not None:
        parts.append(log)
    return Group(*parts)


def render_header(state: LiveState, scenario: Scenario) -> Text:
    return Text.assemble(
        ("datadrill ", "bold"),
        (scenario.name, "bold cyan"),
        f"  phase: {state.phase}  elapsed: {run_time(state):6.1f} s",
        no_wrap=True,
        overflow="ellipsis",
    )


def render_slis(state: LiveState, scenario: Scenario) -> Table:
    """One row per SLO: its SLI's last value, good or bad, and its alert."""
    # The state column takes what the others leave: a long probe error is what gets cut,
    # never the value or the alert.
    table = Table(expand=True, show_edge=False)
    table.add_column("SLO", no_wrap=True, overflow="ellipsis", max_width=28)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("alert", no_wrap=True)
    for slo in scenario.slos:
        sample = state.samples.get(slo.name)
        if sample is None:
            table.add_row(slo.name, "…", "", "")
            continue
        status = Text("ok", style="green") if sample.good else Text("BAD", style="red")
        if sample.error:
            status.append(f" {sample.error[:60]}", style="dim")
        alert = {
            "FIRING": Text("FIRING", style="bold red"),
            "fired": Text("fired", style="yellow"),
        }.get(state.alerts.get(slo.name, ""), Text(""))
        table.add_row(slo.name, fmt_value(sample.value, slo.sli.unit), status, alert)
    return table


# -- the timeline -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A stretch of the run in one stage's colour; the part after ``now`` is the plan."""

    start: float
    end: float
    style: str


@dataclass(frozen=True)
class Mark:
    """A moment on the timeline: a scheduled item (at its offset) or the alert."""

    t: float
    glyph: str
    style: str


@dataclass(frozen=True)
class Stage:
    """One entry of the timeline's caption: done, now, or still to come."""

    status: str  # "done", "now", "failed" or "next"
    text: str
    glyph: str = ""  # the glyph this entry has on the bar, if any
    glyph_style: str = ""


@dataclass(frozen=True)
class Timeline:
    """The run so far and as planned, in seconds since it started."""

    now: float
    horizon: float
    spans: tuple[Span, ...]
    marks: tuple[Mark, ...]
    stages: tuple[Stage, ...]


def plan_timeline(state: LiveState, scenario: Scenario) -> Timeline:
    """Where each stage of ``scenario`` falls, from what the run has seen so far and, for
    what is still to come, from the scenario's plan (its warm-up, its schedule's offsets,
    its expectations, its stabilisation window).

    The fault phase begins when steady state ends; the schedule's offsets count from then.
    That moment comes from the phase events while they are still in the rolling log, and
    otherwise from the first fault, which was injected at its own offset.
    """
    from datadrill import events as ev

    recent = state.recent
    now = run_time(state)
    started = _last_started(recent)
    finished = _last_finished(recent)
    recovered = next((e for e in reversed(recent) if isinstance(e, ev.Recovered)), None)
    run_over = any(isinstance(e, ev.RunFinished) for e in recent)
    past_faults = run_over or any(k in started for k in ("revert", "verification"))

    faults = [item for item in scenario.schedule if not isinstance(item, BACKUP_ITEMS)]
    first_fault_at = min((item.at_s for item in faults), default=0.0)
    fault_phase = started.get("fault")
    if fault_phase is None and "steady_state" in finished and finished["steady_state"].ok:
        fault_phase = finished["steady_state"].t
    if fault_phase is None and state.fault_start_s is not None:
        fault_phase = max(0.0, state.fault_start_s - first_fault_at)
    steady_end = fault_phase if fault_phase is not None else max(now, scenario.steady_state.warmup_s)

    def end_of(item: object) -> float:
        duration = getattr(item, "duration_s", None)
        return float(getattr(item, "at_s", 0.0)) + (float(duration) if duration is not None else 0.0)

    schedule_end = steady_end + max((end_of(item) for item in scenario.schedule), default=0.0)
    first_fault = state.fault_start_s if state.fault_start_s is not None else steady_end + first_fault_at
    within = scenario.expectations
    detect = state.detected_s
    if detect is None and within.detect_within_s is not None:
        detect = first_fault + within.detect_within_s
    runbook = scenario.recovery if isinstance(scenario.recovery, Runbook) else None
    runbook_start = detect + runbook.response_delay_s if runbook is not None and detect is not None else None
    fault_phase_end = finished.get("fault")
    if recovered is not None:
        stable_from, end = recovered.stable_since, recovered.t
    elif fault_phase_end is not None or past_faults:
        # Over, and its Recovered event gone from the log: no more plan, only what was.
        end = fault_phase_end.t if fault_phase_end is not None else now
        recovered_then = fault_phase_end is not None and fault_phase_end.ok
        stable_from = end - scenario.stabilisation_s if recovered_then else end
    else:
        if within.recover_within_s is not None:
            stable_from = first_fault + within.recover_within_s
        else:
            stable_from = max(schedule_end, runbook_start or first_fault)
        stable_from = max(stable_from, schedule_end, runbook_start or 0.0)
        end = stable_from + scenario.stabilisation_s
    horizon = max(end, now, 1e-9)

    spans = [
        Span(0.0, steady_end, _STEADY),
        Span(steady_end, first_fault, _WAITING),
        Span(first_fault, runbook_start if runbook_start is not None else stable_from, _FAULT),
    ]
    if runbook_start is not None:
        spans.append(Span(runbook_start, stable_from, _RUNBOOK))
    spans.append(Span(stable_from, horizon, _STABLE))

    marks = [Mark(steady_end + item.at_s, *_schedule_glyph(item)) for item in scenario.schedule]
    if state.detected_s is not None:
        marks.append(Mark(state.detected_s, "!", "bold magenta"))

    stages: list[Stage] = [
        Stage(
            "done" if fault_phase is not None else "now", f"steady state {scenario.steady_state.warmup_s:g} s"
        )
    ]
    ordered = sorted(scenario.schedule, key=lambda item: item.at_s)
    for item in ordered[:MAX_SCHEDULE_SHOWN]:
        glyph, style = _schedule_glyph(item)
        done = fault_phase is not None and now >= steady_end + item.at_s
        stages.append(
            Stage("done" if done else "next", f"+{item.at_s:g} s {_short(item.describe())}", glyph, style)
        )
    if len(ordered) > MAX_SCHEDULE_SHOWN:
        stages.append(Stage("next", f"(+{len(ordered) - MAX_SCHEDULE_SHOWN} more)"))
    stages.append(_detection_stage(state, scenario))
    runbook_done = past_faults or recovered is not None
    if runbook is not None:
        stage, runbook_done = _runbook_stage(state, runbook, finished, runbook_done)
        stages.append(stage)
    automatic_done = runbook is None and state.fault_start_s is not None and now >= schedule_end
    if recovered is not None or past_faults:
        stable_status = "done"
    elif (runbook_done or automatic_done) and state.detected_s is not None:
        stable_status = "now"
    else:
        stable_status = "next"
    stages.append(Stage(stable_status, f"stabilise {scenario.stabilisation_s:g} s"))
    if scenario.verify_integrity:
        verification = finished.get("verification")
        if verification is not None:
            verify_status = "done" if verification.ok else "failed"
        elif run_over:
            verify_status = "done"
        elif "verification" in started:
            verify_status = "now"
        else:
            verify_status = "next"
        stages.append(Stage(verify_status, "verify integrity"))
    return Timeline(now, horizon, tuple(spans), tuple(marks), tuple(stages))


def _last_started(recent: Sequence[ev.EventBase]) -> dict[str, float]:
    """When each kind of phase last started, as far as the rolling log still tells."""
    from datadrill import events as ev

    return {e.kind: e.t for e in recent if isinstance(e, ev.PhaseStarted)}


def _last_finished(recent: Sequence[ev.EventBase]) -> dict[str, ev.PhaseFinished]:
    from datadrill import events as ev

    return {e.kind: e for e in recent if isinstance(e, ev.PhaseFinished)}


def _schedule_glyph(item: object) -> tuple[str, str]:
    return ("◆", "bold blue") if isinstance(item, BACKUP_ITEMS) else ("✕", "bold red")


def _detection_stage(state: LiveState, scenario: Scenario) -> Stage:
    within = scenario.expectations.detect_within_s
    expected = f" (expected within {within:g} s)" if within is not None else ""
    if state.detected_s is not None:
        after = state.detected_s - (state.fault_start_s or 0.0)
        return Stage("done", f"alert after {format_duration(after)}", "!", "bold magenta")
    if state.fault_start_s is not None:
        waited = state.elapsed_s - state.fault_start_s
        return Stage("now", f"waiting for an alert: {format_duration(waited)}{expected}", "!", "bold magenta")
    return Stage("next", f"alert{expected}", "!", "bold magenta")


def _runbook_stage(
    state: LiveState, runbook: Runbook, finished: dict[str, ev.PhaseFinished], over: bool
) -> tuple[Stage, bool]:
    """The runbook's caption entry, and whether every step has run."""
    names = [step.describe() for step in runbook.steps]
    total = len(names)
    last = finished.get("recovery_step")
    if last is not None and not last.ok:
        return Stage("failed", f"runbook step failed: {_short(last.name)}"), False
    running = running_phase(state)
    if running is not None and running[0] == "recovery_step":
        name = running[1]
        index = names.index(name) + 1 if name in names else 0
        return Stage("now", f"runbook {index}/{total}: {_short(name)}"), False
    if over or (last is not None and last.name == names[-1]):
        return Stage("done", f"runbook {total}/{total} steps"), True
    when = f", {runbook.response_delay_s:g} s after the alert" if runbook.response_delay_s else ""
    return Stage("next", f"runbook {total} steps{when}"), False


def run_time(state: LiveState) -> float:
    """Seconds since the run started, as far as the view knows: the runner notes the time
    on each probe round, and events between rounds (a step's end, the verdict) are later."""
    return max(state.elapsed_s, state.recent[-1].t if state.recent else 0.0)


# The phases whose progress the live view shows: runbook steps and the integrity check.
_STEP_KINDS = ("recovery_step", "verification")


def running_phase(state: LiveState) -> tuple[str, str] | None:
    """(kind, name) of the runbook step or integrity check running now, if any.

    The rolling log tells first: it is written as each phase starts and ends, on whichever
    thread runs it, while the runner notes its ``recovery_step`` only between probe rounds.
    """
    from datadrill import events as ev

    for event in reversed(state.recent):
        if isinstance(event, ev.PhaseFinished) and event.kind in _STEP_KINDS:
            return None
        if isinstance(event, ev.PhaseStarted) and event.kind in _STEP_KINDS:
            return event.kind, event.name
    return ("recovery_step", state.recovery_step) if state.recovery_step is not None else None


def _short(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TimelineBar:
    """The timeline drawn one character per stretch of time, as wide as the console:
    ``━`` for time gone by and ``─`` (dim) for the plan, in each stage's colour, with the
    scheduled items and the alert marked where they fall, and the time now at the end."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        tl = self.timeline
        label = f" {format_offset(tl.now)}"
        width = max(10, options.max_width - len(label))
        per_cell = tl.horizon / width
        cells: list[tuple[str, str]] = []
        for i in range(width):
            t = (i + 0.5) * per_cell
            style = next((s.style for s in tl.spans if s.start <= t < s.end), tl.spans[-1].style)
            past = t <= tl.now
            cells.append(("━", f"bold {style}") if past else ("─", f"dim {style}"))
        for mark in tl.marks:
            i = min(width - 1, max(0, int(mark.t / per_cell)))
            cells[i] = (mark.glyph, mark.style)
        bar = Text(no_wrap=True, overflow="crop")
        for glyph, style in cells:
            bar.append(glyph, style)
        bar.append(label, "bold")
        yield bar


_STATUS_MARKS = {
    "done": ("✓", "green"),
    "now": ("▶", "bold"),
    "failed": ("✗", "bold red"),
    "next": ("·", "dim"),
}


def render_timeline(state: LiveState, scenario: Scenario) -> Group:
    """The timeline bar and, under it, its caption: each stage marked done (✓), now (▶),
    failed (✗) or still to come (·); a scheduled item or the alert is marked with its glyph
    on the bar instead, dim until it has happened."""
    timeline = plan_timeline(state, scenario)
    caption = Text()
    for stage in timeline.stages:
        if caption:
            caption.append("  ")
        if stage.glyph:
            caption.append(stage.glyph + " ", "dim" if stage.status == "next" else stage.glyph_style)
        else:
            mark, style = _STATUS_MARKS[stage.status]
            caption.append(mark + " ", style)
        caption.append(stage.text, {"now": "bold", "next": "dim"}.get(stage.status, ""))
    return Group(TimelineBar(timeline), caption)


# -- the running step ---------------------------------------------------------------------------


def render_step_progress(state: LiveState) -> Table | None:
    """How far the running step is: a bar (pulsing while its total is unknown), what it
    has done so far (of its total when known), its rate and the time it has taken; None
    when no step reports progress. The step's name is on the timeline's caption.
    """
    if state.step_progress is None or running_phase(state) is None:
        return None  # no step reports progress, or what it reported is about a finished one
    done, total, unit, elapsed = state.step_progress
    if total:
        counted = f"{format_count(done)} of {format_count(total)} {unit} ({min(done, total) / total:.0%})"
    else:
        counted = f"{format_count(done)} {unit}"
    rate = format_rate(done / elapsed, unit) if elapsed > 0 else MISSING
    bar = ProgressBar(total=total or None, completed=min(done, total) if total else 0, width=20)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    grid.add_row(
        Text("progress", style="cyan"), bar, Text(f"{counted} · {rate} · {format_duration(elapsed)}")
    )
    return grid


# -- the rolling log ----------------------------------------------------------------------------


def event_line(event: ev.EventBase) -> tuple[str, str]:
    """One event as one line of the live log, with its style.

    Example::

        event_line(FaultInjected(fault_id=1, kind="delete_catalog_entry", description="…"))
        # ('fault injected: catalog entry of dwh.orders deleted', 'red')
    """
    from datadrill import events as ev

    if isinstance(event, ev.FaultInjected):
        return f"fault injected: {event.description}", "red"
    elif isinstance(event, ev.FaultReverted):
        note = f" — {event.note}" if event.note else ""
        return f"fault reverted: {event.description or event.kind}{note}", "yellow"
    elif isinstance(event, ev.AlertFired):
        rule = f" ({event.rule})" if event.rule else ""
        return f"alert fired: {event.slo}{rule}", "bold magenta"
    elif isinstance(event, ev.PhaseStarted):
        if event.kind == "recovery_step":
            return f"step started: {event.name}", "cyan"
        return f"{event.name} started", ""
    elif isinstance(event, ev.PhaseFinished):
        return _phase_finished_line(event)
    elif isinstance(event, ev.BackupTaken):
        rows = f", {format_count(event.rows)} rows" if event.rows is not None else ""
        return f"backup taken: '{event.name}' (snapshot {event.snapshot_id}{rows})", "blue"
    elif isinstance(event, ev.ReserveTaken):
        rows = format_count(event.rows)
        return f"reserve copy taken: '{event.name}' ({rows} rows, snapshot {event.snapshot_id})", "blue"
    elif isinstance(event, ev.Recovered):
        return (
            f"recovered: every SLI good since {format_offset(event.stable_since)} "
            f"(for {format_duration(event.stable_for_s)})",
            "green",
        )
    elif isinstance(event, ev.IntegrityVerified):
        if event.verified:
            return f"integrity verified: {event.detail}", "green"
        return f"integrity NOT verified: {event.detail}", "bold red"
    elif isinstance(event, ev.LeftoverReverted):
        return f"reverted what a killed run left: {event.description or event.kind} — {event.note}", "yellow"
    elif isinstance(event, ev.ComponentResumed):
        return f"{event.component} resumed: {event.note}", "yellow"
    elif isinstance(event, ev.HarnessError):
        return f"harness error: {event.message}", "bold red"
    elif isinstance(event, ev.RunFinished):
        return f"run finished: {event.verdict.value}", "bold"
    elif isinstance(event, ev.RunStarted):
        return f"run started: {event.scenario} on the {event.stack} stack", ""
    elif isinstance(event, ev.PrometheusAlert):
        return f"Prometheus: {event.rule} {event.state}", "magenta" if event.state == "firing" else "dim"
    else:
        # Event types added after this view (or a newer runner's) still get a line: a
        # display must never stop a run.
        return str(getattr(event, "type", type(event).__name__)).replace("_", " "), "dim"


def _phase_finished_line(event: ev.PhaseFinished) -> tuple[str, str]:
    status = "finished" if event.ok else "FAILED"
    step = event.kind == "recovery_step"
    what = f"step {status}: {event.name}" if step else f"{event.name} {status}"
    if event.rows is not None:
        rate = f" at {format_rate(event.rate_per_s)}" if event.rate_per_s else ""
        what += f" — {format_count(event.rows)} rows{rate}"
    # A step's detail repeats its rows at length; a failure's detail is the why.
    if event.detail and (event.rows is None or not event.ok):
        what += f" — {event.detail}"
    return what, "bold red" if not event.ok else ("cyan" if step else "")


def render_log(state: LiveState) -> Group | None:
    """The last events (not samples), oldest first, one line each with its run time."""
    if not state.recent:
        return None
    lines = []
    for event in state.recent:
        text, style = event_line(event)
        lines.append(
            Text.assemble(
                (f"{format_offset(event.t):>9}  ", "dim"), (text, style), no_wrap=True, overflow="ellipsis"
            )
        )
    return Group(*lines)


def initial_state(scenario: Scenario) -> object:
    from datadrill.engine.runner import LiveState

    return LiveState(scenario.name)


# -- after the run ------------------------------------------------------------------------------


def print_summary(out: Console, report: object, written: dict[str, Path], wall_s: float, path: Path) -> None:
    """The verdict (the drill's expectations, each with ✓ or ✗), what the fault cost each
    SLO, and the reports written. Text from the journal is printed as text, never markup."""
    from datadrill.model.report import RunReport, Verdict

    assert isinstance(report, RunReport)
    colour = "green" if report.verdict is Verdict.PASSED else "red"
    out.print(
        Text.assemble(
            (report.verdict.value.upper(), f"bold {colour}"),
            " ",
            (report.scenario, "bold"),
            f" ({path}) — {verdict_meaning(report.verdict)}",
        )
    )
    marks = {True: "green", False: "red", None: "dim"}
    for check in verdict_checks(report):
        out.print(Text.assemble("  ", (check.mark, marks[check.held]), " ", check.text))
    if report.slos:
        out.print(Text(COST_HEADING))
        for slo in report.slos:
            out.print(Text("  " + slo_cost_line(slo, report)))
    if report.prometheus_url is not None:
        out.print(Text(f"Prometheus alerts ({report.prometheus_url}):"))
        for rule in report.prometheus_rules:
            own = f", datadrill {rule.datadrill_ttd_s:.1f} s" if rule.datadrill_ttd_s is not None else ""
            fired = (
                f"fired {rule.time_to_fire_s:.1f} s after the fault{own}"
                if rule.time_to_fire_s is not None
                else "never fired"
            )
            out.print(Text(f"  {rule.rule}: {fired}", style="" if rule.fired else "yellow"))
    out.print(Text(f"  severity {report.severity.value}, run {wall_s:.0f} s", style="dim"))
    for kind, file in written.items():
        out.print(Text(f"  {kind:5} {file}"))
