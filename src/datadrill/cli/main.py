"""The entry point: every command registered, datadrill's own errors turned into one line
and an exit code (0 success, 1 the thing asked about is not so, 2 bad input).

A mistake on the command line itself (an unknown command or option, a value of the wrong
type, a missing argument) is bad input too: one ``error:`` line naming the command, the
option and the value, then click's hint where the help is::

    $ datadrill run scenarios/metadata_loss.py --seed x
    error: run: --seed = 'x' is invalid: Input should be a valid integer, unable to parse string as an integer
    Try 'datadrill run --help' for help.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from pydantic import ValidationError
from rich.markup import escape

# Imported for their side effect: each module's commands register on the app.
from datadrill.cli import drill_commands, slo_commands, stack_commands  # noqa: F401
from datadrill.cli.app import app, err
from datadrill.errors import ConfigError, DrillError


def _click_exception(name: str) -> type[Exception]:
    """One of click's exception classes, found among ``typer.BadParameter``'s bases:
    typer vendors click in recent versions and used the ``click`` package before, so this
    is the one name for it that both have."""
    for base in typer.BadParameter.__mro__:
        if base.__name__ == name and issubclass(base, Exception):
            return base
    raise LookupError(f"typer.BadParameter does not derive from click's {name}")  # pragma: no cover


_UsageError = _click_exception("UsageError")
_ClickException = _click_exception("ClickException")


def _command(ctx: Any) -> str:
    """``run``, ``stack up``: the command as typed, without the program's name
    (``datadrill`` for the program itself)."""
    names: list[str] = []
    while ctx.parent is not None:
        names.append(str(ctx.info_name))
        ctx = ctx.parent
    return " ".join(reversed(names)) or "datadrill"


def _click_message(exc: Exception) -> str:
    format_message = getattr(exc, "format_message", None)
    return str(format_message()) if callable(format_message) else str(exc)


def _usage_message(exc: Exception) -> str:
    """A click usage error as datadrill says bad input: the command, the option, the value
    (typer checks values with pydantic: the value is on the validation error it raised
    from) and what is allowed."""
    ctx = getattr(exc, "ctx", None)
    message = _click_message(exc)
    if ctx is None:  # the option parser's own errors carry no command; they name the option
        return message
    command = _command(ctx)
    param = getattr(exc, "param", None)
    cause = exc.__cause__
    if param is not None and isinstance(cause, ValidationError) and cause.errors():
        detail = cause.errors()[0]
        name = param.opts[0] if getattr(param, "opts", None) else str(param.name)
        return str(ConfigError(command, name, detail.get("input"), detail["msg"]))
    return f"{command}: {message}"


def _print_error(message: str) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def _one_line(message: str) -> str:
    """Bad input is said in one line, however long: scripts and CI logs grep for it. A
    message can span lines when it quotes one that does (what a scenario module raised)."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


def main() -> None:
    """Entry point: turn datadrill's own errors into one line and an exit code."""
    try:
        # Not standalone: click's errors come here, to be said the way datadrill says them.
        code = app(standalone_mode=False)
    except ConfigError as exc:
        _print_error(_one_line(str(exc)))
        sys.exit(2)
    except DrillError as exc:
        _print_error(str(exc))
        for note in getattr(exc, "__notes__", []):
            err.print(note, highlight=False, markup=False)
        sys.exit(1)
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # a bare ``datadrill`` or ``datadrill stack``: the help is printed already
        _print_error(_one_line(_usage_message(exc)))
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            err.print(f"Try '{ctx.command_path} --help' for help.", style="dim", highlight=False, markup=False)
        sys.exit(2)
    except _ClickException as exc:
        _print_error(_click_message(exc))
        sys.exit(int(getattr(exc, "exit_code", 1)))
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
