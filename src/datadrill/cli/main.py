"""The entry point: every command registered, datadrill's own errors turned into one line
and an exit code (0 success, 1 the thing asked about is not so, 2 bad input)."""

from __future__ import annotations

import sys

from rich.markup import escape

# Imported for their side effect: each module's commands register on the app.
from datadrill.cli import drill_commands, stack_commands  # noqa: F401
from datadrill.cli.app import app, err
from datadrill.errors import ConfigError, DrillError


def main() -> None:
    """Entry point: turn datadrill's own errors into one line and an exit code."""
    try:
        app(standalone_mode=True)
    except ConfigError as exc:
        # One line, however long: scripts and CI logs grep for it.
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except DrillError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        for note in getattr(exc, "__notes__", []):
            err.print(note, highlight=False, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
