"""``datadrill list | validate | run | cleanup | replay | report``: the game-day commands,
each at module level."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeGuard, get_args

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from datadrill.config import DEFAULT_STATE_DIR
from datadrill.errors import ConfigError, RunLeaseHeld

if TYPE_CHECKING:
    from datadrill.config import StackConfig
    from datadrill.stack.port import Stack

from datadrill.cli.app import app, err, out, report_dir_checked, state_dir_checked

DEFAULT_REPORTS = Path("reports")


@contextlib.contextmanager
def _stack_for_run(
    state_dir: Path,
    console: Console,
    *,
    backend: str = "embedded",
    config_file: Path | None = None,
    overrides: dict[str, object] | None = None,
) -> Iterator[tuple[Stack, str]]:
    """A running stack in ``state_dir`` if there is one (of the asked backend), else a
    throwaway stack of ``backend`` (configured from ``config_file`` and ``overrides``)."""
    from datadrill.session import attach_running, stack_session

    running = attach_running(state_dir, backend=backend)
    if running is not None:
        console.print(f"using the {running.backend} stack running in {state_dir}")
        with stack_session(state_dir=state_dir, backend=backend) as session:
            yield session.stack, "running"
        return
    with console.status(f"starting a throwaway {backend} stack…") as spinner, stack_session(
        backend=backend,
        config_file=config_file,
        overrides=overrides,
        on_progress=lambda m: spinner.update(f"starting a throwaway {backend} stack: {m}"),
    ) as session:
        spinner.stop()
        try:
            yield session.stack, "throwaway"
        finally:
            console.print(f"stopping the throwaway {backend} stack…")


@app.command("list")
def list_cmd(
    directory: Annotated[Path, typer.Argument(help="Where scenario modules live.")] = Path("scenarios"),
) -> None:
    """List the scenarios in a directory, with their faults and SLOs."""
    if not directory.is_dir():
        found = "it is a file" if directory.exists() else "there is none"
        raise ConfigError(
            str(directory), "(directory)", str(directory), f"a directory of scenario modules ({found})"
        )
    from datadrill.engine.loader import discover, load_scenario

    paths = discover(directory)
    if not paths:
        err.print(f"no scenario modules in {directory}")
        raise typer.Exit(1)
    table = Table(title=f"scenarios in {directory}")
    table.add_column("file")
    table.add_column("name")
    table.add_column("faults")
    table.add_column("SLOs")
    for path in paths:
        try:
            scenario = load_scenario(path)
        except ConfigError as exc:
            table.add_row(path.name, "[red]invalid[/red]", str(exc), "")
            continue
        faults = "; ".join(item.describe() for item in scenario.faults)
        table.add_row(path.name, scenario.name, faults, ", ".join(s.name for s in scenario.slos))
    out.print(table)

@app.command("validate")
def validate_cmd(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario modules.")],
) -> None:
    """Load and validate scenario modules; exit 2 on the first invalid one."""
    from datadrill.engine.loader import load_scenario

    for path in scenarios:
        scenario = load_scenario(path)
        out.print(
            f"[green]ok[/green] {path}: {scenario.name} — {len(scenario.slos)} SLOs, "
            f"{len(scenario.faults)} faults, recovery {scenario.recovery.kind}"
        )

@app.command("run")
def run_cmd(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario modules to run, in order.")],
    stack: Annotated[
        str,
        typer.Option(
            "--stack",
            help="embedded (default), external (the \\[external] cluster of --config) or compose "
            "(needs Docker). A stack already running in --state-dir is used as it is.",
        ),
    ] = "embedded",
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config of a throwaway stack (default: ./datadrill.toml)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed recorded with the run.")] = 0,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report-dir",
            help="Where reports go (default reports/<time>-<scenario>/).",
            callback=report_dir_checked,
        ),
    ] = None,
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            envvar="DATADRILL_STATE_DIR",
            help="Use the stack running here.",
            callback=state_dir_checked,
        ),
    ] = Path(DEFAULT_STATE_DIR),
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Validate, probe every SLI once, resolve every fault's target and print the "
            "schedule and runbook; change nothing. Exit 1 if something would fail.",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="If another run holds the stack, wait for it instead of exiting 2."),
    ] = False,
    lease_s: Annotated[
        float,
        typer.Option(
            "--lease",
            min=1.0,
            max=3600.0,
            help="Seconds the stack keeps this run's faults after the runner stops renewing "
            "its lease (the runner died); then the stack reverts them itself.",
        ),
    ] = 10.0,
    alert_rules: Annotated[
        Path | None,
        typer.Option(
            "--alert-rules",
            help="Prometheus rules file (e.g. from 'datadrill slo rules'): a throwaway Prometheus "
            "(Debian package prometheus) scrapes the stack and evaluates it; the report says when "
            "each rule fired. Or set [prometheus] url in the config for a server of your own.",
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="A throwaway stack's source database: sqlite or postgresql (see 'stack up --source'). "
            "Default: the config's.",
        ),
    ] = None,
    relay: Annotated[
        str | None,
        typer.Option("--relay", help="A throwaway stack's relay: poll or cdc. Default: the config's."),
    ] = None,
) -> None:
    """Run scenarios on a stack and write their reports. Exit 0 only if every one passed."""
    from datadrill.backends.registry import backend_for
    from datadrill.cli.live import initial_state, print_summary, render_live
    from datadrill.cli.stack_commands import source_overrides
    from datadrill.engine.loader import load_scenario
    from datadrill.engine.runner import Runner
    from datadrill.model.report import Verdict
    from datadrill.reporting import write_reports

    backend_for(stack, flag="--stack")  # an unknown name is refused before anything loads
    overrides = source_overrides(source, relay)
    if stack == "compose":
        from datadrill.backends.compose.services import require_docker

        require_docker()
    # All bad input first, a component no stack has included (checked against the config
    # the run will use: the running stack's, else the one a throwaway stack would get).
    config = _config_for_checks(state_dir, stack, config_file, overrides)
    if stack == "embedded" and overrides.get("source.server") == "postgresql" and not config.source.uri:
        from datadrill.platform.pg_server import find_binaries

        find_binaries()  # one line naming the Debian package, before a stack starts
    if stack == "embedded" and config.source.uri:
        from datadrill.platform.cdc_relay import check_source_uri

        check_source_uri(config.source.uri, cdc=config.relay.mode == "cdc")
    loaded = [(path, load_scenario(path, config=config)) for path in scenarios]
    prometheus = _prometheus_settings(config_file, alert_rules) if not dry_run else None
    failures = 0
    with (
        _stack_for_run(state_dir, err, backend=stack, config_file=config_file, overrides=overrides) as (
            running,
            _how,
        ),
        contextlib.ExitStack() as watching,
    ):
        if not dry_run:
            from datadrill.engine.preflight import check_capabilities

            # What only the stack knows (a Connect cluster's connectors, its Kafka's
            # capabilities): refused before any run starts, exit 2, nothing recorded.
            for path, scenario in loaded:
                check_capabilities(scenario, running, source=str(path))
        if dry_run:
            from datadrill.cli.dry_run import run_dry

            raise typer.Exit(run_dry(loaded, running, out))
        client = None
        if prometheus is not None:
            from datadrill.engine.prometheus_watch import open_prometheus
            from datadrill.stack.state import read_state

            url = prometheus[0]
            with err.status("starting Prometheus…" if url is None else f"checking Prometheus at {url}…"):
                client = watching.enter_context(
                    open_prometheus(
                        url=url,
                        rules_file=alert_rules,
                        metrics_url=(read_state(running.paths) or {}).get("metrics_url"),
                    )
                )
        for path, scenario in loaded:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            if report_dir is None:
                run_dir = DEFAULT_REPORTS / f"{stamp}-{scenario.name}"
            elif len(loaded) > 1:
                run_dir = report_dir / scenario.name
            else:
                run_dir = report_dir
            started = time.monotonic()
            with Live(
                render_live(initial_state(scenario), scenario), console=err, refresh_per_second=4
            ) as live:
                runner = Runner(
                    scenario,
                    stack=running,
                    run_dir=run_dir,
                    seed=seed,
                    stack_kind=stack,
                    on_update=lambda state, s=scenario: live.update(render_live(state, s)),  # type: ignore[misc]
                    lease_s=lease_s,
                    wait_for_stack=wait,
                    on_wait=_waiting(live),
                    prometheus=client,
                    prometheus_poll_s=prometheus[1] if prometheus is not None else 0.25,
                )
                try:
                    report = runner.run()
                except RunLeaseHeld as exc:
                    # Another drill holds the stack: nothing was changed or written.
                    live.stop()
                    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
                    raise typer.Exit(2) from None
            err.print()
            written = write_reports(report, run_dir)
            print_summary(out, report, written, time.monotonic() - started, path)
            if report.verdict is not Verdict.PASSED:
                failures += 1
            if report.verdict is Verdict.ABORTED and any("interrupted" in r for r in report.reasons):
                raise typer.Exit(130)
    raise typer.Exit(0 if failures == 0 else 1)

def _config_for_checks(
    state_dir: Path, backend: str, config_file: Path | None, overrides: dict[str, object] | None = None
) -> StackConfig:
    """The configuration a run's stack has: the one running in ``state_dir``, else the one
    ``--config`` (or ./datadrill.toml) and the flags give a throwaway stack."""
    from datadrill.config import load_config
    from datadrill.session import attach_running

    running = attach_running(state_dir, backend=backend)
    return running.config if running is not None else load_config(config_file, overrides=overrides or None)


def _prometheus_settings(config_file: Path | None, alert_rules: Path | None) -> tuple[str | None, float] | None:
    """(url or None for a throwaway server, poll interval) when the run watches a
    Prometheus; None when it does not. Bad input is refused here, before a stack starts:
    a rules file that is not one, no prometheus binary, both a rules file and a URL."""
    from datadrill.config import load_config

    settings = load_config(config_file).prometheus
    if alert_rules is None and not settings.url:
        return None
    if alert_rules is not None and settings.url:
        raise ConfigError(
            "--alert-rules",
            "--alert-rules",
            str(alert_rules),
            f"not with [prometheus] url = {settings.url!r}: that server holds its own rules; give one of the two",
        )
    if alert_rules is not None:
        from datadrill.backends.prometheus_server import check_rules_file, find_prometheus, find_promtool

        binary = find_prometheus()
        check_rules_file(alert_rules, promtool=find_promtool(binary))
    return (settings.url or None), settings.poll_interval_s


def _waiting(live: Live) -> Callable[[str], None]:
    """Shows, once a second at most, that the run waits for the stack (--wait)."""
    shown = [0.0]

    def show(message: str) -> None:
        if time.monotonic() - shown[0] >= 1.0:
            shown[0] = time.monotonic()
            live.update(Text(f"waiting for the stack: {message}", style="yellow"))

    return show


@app.command("cleanup")
def cleanup_cmd(
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            envvar="DATADRILL_STATE_DIR",
            help="The stack to clean up.",
            callback=state_dir_checked,
        ),
    ] = Path(DEFAULT_STATE_DIR),
) -> None:
    """Revert every fault a dead run left applied on the stack (from its fault ledger).
    The faults of the run holding the stack's lease are kept: that run is alive."""
    from datadrill.faults.ledger import cleanup
    from datadrill.stack.client import StackClient

    stack = StackClient.attach(state_dir)
    results = cleanup(stack)
    if not results:
        out.print(f"nothing to clean up: no fault is outstanding on the stack in {state_dir}")
        return
    failed = 0
    for result in results:
        if result.skipped:
            mark = "[yellow]kept[/yellow]"
        else:
            mark = "[green]reverted[/green]" if result.ok else "[red]FAILED[/red]"
        out.print(f"{mark} {result.kind}: {result.description} — {result.note}")
        failed += 0 if result.ok else 1
    if failed:
        raise typer.Exit(1)

@app.command("replay")
def replay_cmd(
    journal: Annotated[
        Path, typer.Argument(help="A schedule saved by the search (failing-schedule.jsonl).")
    ],
    state_dir: Annotated[
        Path,
        typer.Option(
            "--state-dir",
            envvar="DATADRILL_STATE_DIR",
            help="Use the stack running here.",
            callback=state_dir_checked,
        ),
    ] = Path(DEFAULT_STATE_DIR),
) -> None:
    """Re-run exactly the fault schedule a search saved; exit 0 only if every recovery was exact."""
    from datadrill.search.steps import StepRunner, load_journal

    header, steps = load_journal(journal)
    seed, rate, guarantee = _checked_schedule(journal, header, steps)  # before anything runs
    with _stack_for_run(state_dir, err, overrides={"sink.guarantee": guarantee}) as (running, _how):
        _check_schedule_components(journal, steps, running.config.component_names)
        actual = running.config.sink.guarantee
        if actual != guarantee:
            err.print(
                f"[yellow]note:[/yellow] the schedule was saved on a sink with guarantee {guarantee!r}; "
                f"this stack's sink has {actual!r}"
            )
        run_dir = DEFAULT_REPORTS / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-replay"
        runner = StepRunner(
            running,
            run_dir,
            seed=seed,
            rate=rate,
        )
        failed = 0
        try:
            for number, step in enumerate(steps, start=1):
                label = step["step"]
                if label == "inject":
                    label += f" {step['fault'].get('kind')}"
                elif label == "advance":
                    label += f" {step['seconds']:g} s"
                out.print(f"step {number}/{len(steps)}: {label}")
                outcome = runner.run_step(step, source=str(journal))
                if outcome is not None:
                    mark = "[green]exact[/green]" if outcome.ok else "[red]BROKEN[/red]"
                    out.print(f"  {mark} {outcome.detail}")
                    failed += 0 if outcome.ok else 1
            if not steps or steps[-1]["step"] != "recover":
                outcome = runner.recover()
                failed += 0 if outcome.ok else 1
                out.print(
                    f"  {'[green]exact[/green]' if outcome.ok else '[red]BROKEN[/red]'} {outcome.detail}"
                )
        finally:
            runner.revert_all()
        saved = runner.save(run_dir / "replay.jsonl")
        verdict = "[green]PASSED[/green]" if failed == 0 else "[red]FAILED[/red]"
        out.print(f"{verdict} replay of {journal} — journal of this replay: {saved}")
    raise typer.Exit(0 if failed == 0 else 1)

def _checked_schedule(
    journal: Path, header: dict[str, Any], steps: list[dict[str, Any]]
) -> tuple[int, float, str]:
    """A saved schedule's seed, rate and sink guarantee, with every step checked: bad input
    is refused (a ConfigError naming the journal) before a stack starts."""
    from datadrill.config import SinkConfig
    from datadrill.search.steps import spec_from_json

    source = str(journal)
    seed, rate = header.get("seed", 0), header.get("rate", 400.0)
    if not (_is_number(seed) and isinstance(seed, int)):
        raise ConfigError(source, "seed", seed, "a whole number")
    if not (_is_number(rate) and 0 <= rate <= 1_000_000):
        raise ConfigError(source, "rate", rate, "orders per second, from 0 to 1000000")
    guarantees = get_args(SinkConfig.model_fields["guarantee"].annotation)
    guarantee = header.get("sink_guarantee", "exactly_once")
    if guarantee not in guarantees:
        raise ConfigError(source, "sink_guarantee", guarantee, f"one of {', '.join(guarantees)}")
    for number, step in enumerate(steps, start=1):
        where = f"step {number}"
        if step["step"] == "inject":
            fault = step.get("fault", {})
            if not isinstance(fault, dict):
                raise ConfigError(source, f"{where}: fault", fault, "a fault, as a JSON object")
            spec_from_json(dict(fault), source=source)
        elif step["step"] == "advance":
            seconds = step.get("seconds")
            if not (_is_number(seconds) and 0 <= seconds < math.inf):
                raise ConfigError(source, f"{where}: seconds", seconds, "a number of seconds >= 0")
        elif step["step"] == "revert":
            index = step.get("index")
            if not (_is_number(index) and isinstance(index, int) and index >= 0):
                raise ConfigError(source, f"{where}: index", index, "a fault's index, a whole number >= 0")
    return seed, float(rate), guarantee


def _check_schedule_components(journal: Path, steps: list[dict[str, Any]], known: tuple[str, ...]) -> None:
    """Every component a saved schedule's faults name is one this stack runs (any name is
    a valid component in general: only the stack knows which it has)."""
    for number, step in enumerate(steps, start=1):
        component = step.get("fault", {}).get("component") if step["step"] == "inject" else None
        if isinstance(component, str) and component not in known:
            raise ConfigError(
                str(journal),
                f"step {number}: fault.component",
                component,
                f"a component of this stack: {', '.join(known) or 'none'}",
            )


def _is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number: an int or a float, not a boolean."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@app.command("report")
def report_cmd(
    journal: Annotated[Path, typer.Argument(help="A run's journal.jsonl (or its directory).")],
    format: Annotated[str, typer.Option("--format", help="md, html, json or junit.")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Render a report from a run's journal (also from a run that was killed)."""
    from datadrill.engine.measure import measure
    from datadrill.events import read_events
    from datadrill.reporting import FORMATS

    if format not in FORMATS:
        raise ConfigError("--format", "--format", format, f"one of {', '.join(FORMATS)}")
    path = journal / "journal.jsonl" if journal.is_dir() else journal
    events = read_events(path)
    try:
        report = measure(events, journal_path=str(path))
    except ValueError as exc:
        raise ConfigError(str(path), "(journal)", path.name, str(exc)) from None
    text = FORMATS[format][1](report)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")
