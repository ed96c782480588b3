"""``datadrill run --dry-run``: what a run would do on this stack, changing nothing.

The plan comes from :func:`datadrill.engine.dry_run.plan`; this module only prints it.

Example output::

    dry run of broker-loss (scenarios/broker_loss.py) on the embedded stack: nothing is changed
      SLIs now
        ✓ canary latency: 0.2 s (good when ≤ 10 s)
      schedule (t+ counts from the steady state: every SLI good for 2 s, within 60 s)
        t+2 s (until t+10 s): broker 2 down for 8 s → broker 2 of 3 (127.0.0.1:40411)
      ...
      would run: yes
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from datadrill.clock import MonotonicClock
from datadrill.engine.dry_run import DryRunPlan, PlannedItem, plan
from datadrill.model.scenario import Scenario
from datadrill.stack.port import Stack


def run_dry(loaded: list[tuple[Path, Scenario]], stack: Stack, console: Console) -> int:
    """Print the plan of each scenario; returns the exit code (0, or 1 if something would fail)."""
    clock = MonotonicClock()
    failed = 0
    holder = stack.runs.holder()
    if holder is not None:
        # Not a problem of the scenarios: a real run would wait its turn (or use --wait).
        console.print(
            f"note: a drill holds this stack now ({holder.scenario}, run {holder.run_id}, pid "
            f"{holder.pid}); 'datadrill run' would be refused until it ends, or wait with --wait",
            style="yellow",
            highlight=False,
        )
    for path, scenario in loaded:
        result = plan(scenario, stack, clock, source=str(path))
        render(result, path, console)
        failed += not result.ok
    return 1 if failed else 0


def schedule_line(item: PlannedItem) -> str:
    """One schedule item as it would happen, e.g. "t+15 s: catalog entry of dwh.orders
    deleted → the catalog entry of dwh.orders (SQLite catalog at .datadrill/catalog.db)"."""
    when = f"t+{item.at_s:g} s"
    if item.until_s is not None:
        when += f" (until t+{item.until_s:g} s)"
    if item.problem is not None:
        return f"{when}: {item.description} → cannot: {item.problem}"
    if item.kind in ("backup.catalog", "backup.reserve"):
        return f"{when}: {item.target}"  # the target already says what happens
    return f"{when}: {item.description} → {item.target}"


def render(result: DryRunPlan, path: Path, console: Console) -> None:
    def line(text: str, indent: int = 1, style: str = "") -> None:
        body = escape(text)
        console.print(
            "  " * indent + (f"[{style}]{body}[/{style}]" if style else body), soft_wrap=True, highlight=False
        )

    console.print(
        f"[bold]dry run of {escape(result.scenario)}[/bold] ({escape(str(path))}) on the "
        f"{escape(result.backend)} stack: nothing is changed",
        soft_wrap=True,
        highlight=False,
    )
    if result.description:
        line(result.description, style="dim")
    line("SLIs now")
    for reading in result.slis:
        mark = "✓" if reading.good else "✗"
        style = "green" if reading.good else "red"
        line(f"{mark} {reading.slo}: {reading.shown} (good when {reading.bound})", 2, style)
    line(
        f"schedule (t+ counts from the steady state: every SLI good for {result.warmup_s:g} s, "
        f"within {result.steady_timeout_s:g} s)"
    )
    for item in result.schedule:
        line(schedule_line(item), 2, "red" if item.problem else "")
    recovery = result.recovery
    if recovery.kind == "automatic":
        line("recovery: automatic (the platform heals itself; faults with a duration are reverted when it ends)")
    else:
        line(f"recovery: runbook, {recovery.response_delay_s or 0:g} s after the first alert")
        for number, step in enumerate(recovery.steps, start=1):
            line(f"{number}. {step}", 2)
    line("expectations: " + ("; ".join(result.expectations) or "none (times are reported, not judged)"))
    if result.stop_conditions:
        line("stop when: " + "; ".join(result.stop_conditions))
    if result.ok:
        line("would run: yes", style="green")
        return
    count = len(result.problems)
    line(f"would run: NO, {count} problem{'s' if count != 1 else ''}:", style="red")
    for problem in result.problems:
        line(f"✗ {problem}", 2, "red")
