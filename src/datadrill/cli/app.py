"""The ``datadrill`` Typer application and what every command shares: the consoles, the
``--state-dir`` option and the check of a directory option. The commands register
themselves on it at import (:mod:`.stack_commands`, :mod:`.drill_commands`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from datadrill.errors import ConfigError

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


def check_directory(flag: str, value: Path | None) -> None:
    """A directory option names a directory, or a path where one can be made: refused
    (a :class:`ConfigError` naming ``flag``) when it, or the nearest part of it that
    exists, is a file. Checked as the option is read, before anything starts.

    Example::

        check_directory("--state-dir", Path("notes.txt/state"))
        # ConfigError: --state-dir: --state-dir = 'notes.txt/state' is invalid: a directory
        # (made if missing); notes.txt is a file
    """
    if value is None:
        return
    for part in (value, *value.parents):
        if part.is_dir():
            return
        if part.exists() or part.is_symlink():
            kind = "a file" if part.is_file() else "not a directory"
            raise ConfigError(flag, flag, str(value), f"a directory (made if missing); {part} is {kind}")


def state_dir_checked(value: Path) -> Path:
    """``callback`` of every ``--state-dir`` option (see :func:`check_directory`)."""
    check_directory("--state-dir", value)
    return value


def report_dir_checked(value: Path | None) -> Path | None:
    """``callback`` of ``--report-dir`` (see :func:`check_directory`)."""
    check_directory("--report-dir", value)
    return value


StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar="DATADRILL_STATE_DIR",
        help="Where the stack keeps its state, logs and data.",
        show_default=True,
        callback=state_dir_checked,
    ),
]


@app.command("calibrate")
def calibrate_cmd(
    size: Annotated[
        list[int] | None,
        typer.Option(
            "--size",
            help="Rows per side of one calibration size; repeat it (default: 100,000, 300,000 and 1,000,000; Parquet against Parquet at 2× each).",
        ),
    ] = None,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="sqlite (default) or postgresql: also time a PostgreSQL source (a throwaway server "
            "of the system's binaries unless --pg-uri).",
        ),
    ] = "sqlite",
    pg_uri: Annotated[
        str | None, typer.Option("--pg-uri", help="A PostgreSQL database for --source postgresql instead.")
    ] = None,
    show: Annotated[bool, typer.Option("--show", help="Print the cached calibration; run nothing.")] = False,
) -> None:
    """Time reconciliation at larger synthetic sizes on this machine, cache it per datadrill
    version, host and CPU count, and print each fit (fixed part, per-row part, error): the
    projection at production volume fits its cost models from it."""
    from datadrill.engine import calibration

    path = calibration.cache_path()
    if show:
        cached = calibration.load_cached(path)
        if cached is None:
            err.print(f"no calibration for {calibration.machine_key()} in {path}: run `datadrill calibrate`")
            raise typer.Exit(1)
        found = cached
    else:
        if source not in ("sqlite", "postgresql"):
            raise ConfigError("calibrate", "--source", source, "sqlite or postgresql")
        if pg_uri is not None and source != "postgresql":
            raise ConfigError("calibrate", "--pg-uri", pg_uri, "only with --source postgresql")
        engines: tuple[str, ...] = calibration.DEFAULT_ENGINES
        if source == "postgresql":
            engines = (*engines, calibration.POSTGRESQL_DUCKDB)
        sizes = tuple(size) if size else calibration.DEFAULT_SIZES
        found = calibration.calibrate(sizes, engines=engines, pg_uri=pg_uri)
        calibration.save(path, found)
    for line in calibration.describe(found):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    out.print(f"cache: {path}", markup=False, highlight=False)
