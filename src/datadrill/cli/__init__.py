"""The ``datadrill`` command line.

Exit codes: 0 success, 1 the thing asked about is not so (stack unhealthy, not running,
already running, a drill that did not pass), 2 bad input (unknown option, malformed config
or scenario, unreachable DSN).

- :mod:`.app`: the Typer application, consoles, shared options;
- :mod:`.stack_commands`: ``stack up | status | down``;
- :mod:`.drill_commands`: ``list | validate | run | cleanup | replay | report``;
- :mod:`.live`: the live progress display and the end-of-run summary;
- :mod:`.main`: the entry point.
"""

from datadrill.cli.main import main

__all__ = ["main"]
