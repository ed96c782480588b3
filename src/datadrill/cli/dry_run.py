"""``datadrill run --dry-run``: what a run would do on this stack, changing nothing."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from datadrill.model.scenario import Scenario
from datadrill.stack.port import Stack


def run_dry(loaded: list[tuple[Path, Scenario]], stack: Stack, console: Console) -> int:
    """Print the plan of each scenario; returns the exit code (0, or 1 if something would fail)."""
    raise NotImplementedError("dry run: being built")
