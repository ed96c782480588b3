"""``datadrill slo rules``: Prometheus recording and alerting rules from scenarios' SLOs
(:mod:`datadrill.reporting.prom_rules`).

Example::

    datadrill slo rules scenarios/metadata_loss.py scenarios/lag_spike.py -o drill-rules.yml
    promtool check rules drill-rules.yml
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from datadrill.cli.app import app, err
from datadrill.errors import ConfigError
from datadrill.slo_windows import DEFAULT_MIN_WINDOW_S

slo_app = typer.Typer(
    help="Service level objectives: Prometheus rules from scenarios' SLOs.", no_args_is_help=True
)
app.add_typer(slo_app, name="slo")


@slo_app.command("rules")
def rules_cmd(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario modules whose SLOs become rules.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the rules file here instead of stdout.")
    ] = None,
    min_window: Annotated[
        float,
        typer.Option(
            "--min-window",
            help="Shortest burn-rate window in seconds (rate() needs two scrapes in a window).",
        ),
    ] = DEFAULT_MIN_WINDOW_S,
) -> None:
    """Prometheus recording and alerting rules (YAML) from the scenarios' SLOs: threshold
    alerts with `for`, multi-window multi-burn-rate alerts scaled to the drill."""
    if not math.isfinite(min_window) or min_window <= 0:
        raise ConfigError("slo rules", "--min-window", min_window, "a positive number of seconds")
    if output is not None and output.is_dir():
        raise ConfigError("slo rules", "--output", str(output), "a file to write (it is a directory)")
    # Imported here: the scenario models cost every other command ~0.3 s at start.
    from datadrill.engine.loader import load_scenario
    from datadrill.reporting.prom_rules import rules_yaml

    loaded = [load_scenario(path) for path in scenarios]
    text = rules_yaml(loaded, min_window_s=min_window)
    if output is None:
        # Plain stdout: the YAML must reach a pipe byte for byte, never through rich.
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            "slo rules", "--output", str(output), f"cannot be written: {exc.strerror}"
        ) from None
    alerts = text.count("\n  - alert: ")
    err.print(f"wrote {alerts} alerting rules for {len(loaded)} scenario(s) to {output}")
