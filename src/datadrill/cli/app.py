"""The ``datadrill`` Typer application and what every command shares: the consoles and the
``--state-dir`` option. The commands register themselves on it at import
(:mod:`.stack_commands`, :mod:`.drill_commands`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="datadrill",
    help="Game days for data platforms: inject faults, measure detection and recovery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_app = typer.Typer(
    help="Start, inspect and stop a stack: embedded, external (your cluster) or compose (Docker).",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")

# Tables are read in CI logs and pasted into tickets: never squeeze them to 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar="DATADRILL_STATE_DIR",
        help="Where the stack keeps its state, logs and data.",
        show_default=True,
    ),
]
