"""The ``Backend`` protocol: how a stack of one kind is configured, brought up, checked,
stopped and cleaned. Every backend ends in the same place: a stack process in the state
directory, reached through :class:`~datadrill.stack.client.StackClient`.

Example::

    backend = backend_for("embedded")
    config = backend.configure(config_file=None)
    stack = backend.up(StatePaths(Path(".datadrill")), config, on_progress=print)
    backend.down(stack.paths)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from datadrill.config import StackConfig
    from datadrill.paths import StatePaths
    from datadrill.stack.client import StackClient

Progress = Callable[[str], None]
# Called once a new stack answers, before its health counts (the harness reverts a killed
# run's leftover faults there; backends do not know faults): (state paths, progress).
BeforeHealth = Callable[["StatePaths", Progress], None]


class Backend(Protocol):
    @property
    def name(self) -> str:
        """``embedded``, ``external`` or ``compose``: what the state file records."""
        ...

    def configure(self, *, config_file: Path | None, overrides: dict[str, object] | None = None) -> StackConfig:
        """The configuration of a stack of this kind, from the file and flags."""
        ...

    def ready(self, config: StackConfig) -> list[str]:
        """What is not ready to run a stack on (empty: everything is)."""
        ...

    def up(
        self,
        paths: StatePaths,
        config: StackConfig,
        *,
        timeout_s: float = 60.0,
        on_progress: Progress | None = None,
        before_health: BeforeHealth | None = None,
    ) -> StackClient:
        """Start the stack (and its services) in ``paths``; returns a client once healthy.
        ``before_health`` runs once the stack answers, before its health counts (the
        harness reverts a killed run's leftover faults there)."""
        ...

    def down(self, paths: StatePaths) -> list[int]:
        """Stop the stack process (and the backend's services); pids that had to be killed."""
        ...

    def clean(self, paths: StatePaths) -> list[int]:
        """Kill whatever a killed stack left behind in ``paths``."""
        ...
