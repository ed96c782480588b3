"""What a person sees during and after a run: the live table of SLIs, alerts, faults and
the recovery step; the summary with verdict, times, SLOs and report paths."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from datadrill.model.scenario import Scenario


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ok":
        return "ok" if value >= 1 else "FAIL"
    if unit == "messages":
        return f"{value:,.0f}"
    return f"{value:,.2f} {unit}"


def render_live(state: object, scenario: Scenario) -> Group:
    from datadrill.engine.runner import LiveState

    assert isinstance(state, LiveState)
    header = Text.assemble(
        ("datadrill ", "bold"),
        (scenario.name, "bold cyan"),
        f"  phase: {state.phase}  elapsed: {state.elapsed_s:6.1f} s",
    )
    table = Table(expand=False, show_edge=False)
    table.add_column("SLO")
    table.add_column("value", justify="right")
    table.add_column("state")
    table.add_column("alert")
    for slo in scenario.slos:
        sample = state.samples.get(slo.name)
        if sample is None:
            table.add_row(slo.name, "…", "", "")
            continue
        status = "[green]ok[/green]" if sample.good else "[red]BAD[/red]"
        if sample.error:
            status += f" [dim]{sample.error[:60]}[/dim]"
        alert = {"FIRING": "[bold red]FIRING[/bold red]", "fired": "[yellow]fired[/yellow]"}.get(
            state.alerts.get(slo.name, ""), ""
        )
        table.add_row(slo.name, fmt_value(sample.value, slo.sli.unit), status, alert)
    lines: list[RenderableType] = [header, table]
    if state.active_faults:
        lines.append(Text("faults: " + "; ".join(state.active_faults), style="yellow"))
    if state.fault_start_s is not None and state.detected_s is not None:
        lines.append(Text(f"detected after {state.detected_s - state.fault_start_s:.1f} s", style="bold"))
    if state.recovery_step:
        lines.append(Text(f"recovery: {state.recovery_step}", style="cyan"))
    return Group(*lines)


def initial_state(scenario: Scenario) -> object:
    from datadrill.engine.runner import LiveState

    return LiveState(scenario.name)


def print_summary(out: Console, report: object, written: dict[str, Path], wall_s: float, path: Path) -> None:
    from datadrill.model.report import RunReport, Verdict

    assert isinstance(report, RunReport)
    colour = "green" if report.verdict is Verdict.PASSED else "red"
    out.print(f"[bold {colour}]{report.verdict.value.upper()}[/bold {colour}] {report.scenario} ({path})")
    ttd = f"{report.ttd_s:.1f} s" if report.ttd_s is not None else "—"
    ttr = f"{report.ttr_s:.1f} s" if report.ttr_s is not None else "—"
    out.print(
        f"  time to detect {ttd}, time to recover {ttr}, severity {report.severity.value}, run {wall_s:.0f} s"
    )
    for reason in report.reasons:
        out.print(f"  - {reason}")
    for slo in report.slos:
        mark = "met" if slo.met else "MISSED"
        out.print(
            f"  SLO {slo.name}: {slo.good_ratio * 100:.2f}% good (objective {slo.objective * 100:g}%), "
            f"{slo.period_budget_burned * 100:.2f}% of the period's error budget burned — {mark}"
        )
    for kind, file in written.items():
        out.print(f"  {kind:5} {file}")
