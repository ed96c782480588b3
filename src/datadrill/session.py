"""One way to get a stack: attach to the one running in a state directory, or start one
(of any backend) and stop it afterwards. The CLI, the pytest plugin, bench/, scripts/ and
the tests all get their stacks here, so every one of them reverts leftover faults and
checks that the table is this stack's own the same way.

It sits above ``stack/`` and ``backends/`` (which never import faults or the engine): the
faults a killed run left behind are reverted from here, through the fault ledger, as the
new stack starts answering.

Example::

    with stack_session(state_dir=Path(".datadrill"), backend="embedded") as session:
        session.stack.status().healthy
        session.origin          # "running" (attached) or "started" (stopped on exit)
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from datadrill.backends.base import Backend
from datadrill.backends.registry import backend_for
from datadrill.config import StackConfig
from datadrill.errors import ConfigError, StackNotRunning
from datadrill.paths import StatePaths
from datadrill.stack.client import StackClient


@dataclass(frozen=True)
class StackSession:
    stack: StackClient
    origin: str  # "running": attached to a stack someone else stops; "started": ours
    backend: Backend


def attach_running(state_dir: Path, *, backend: str, flag: str = "--stack") -> StackClient | None:
    """The stack running in ``state_dir``, if any; a ConfigError naming ``flag`` when it is
    of another backend than asked for."""
    try:
        stack = StackClient.attach(state_dir)
    except StackNotRunning:
        return None
    running = stack.backend
    # Stacks started before the state file said "compose" recorded compose as external.
    if running != backend and not (backend == "compose" and running == "external"):
        raise ConfigError(
            flag,
            flag,
            backend,
            f"the stack running in {state_dir} is {running}; stop it ('datadrill stack down') "
            f"or pass {flag} {running}",
        )
    return stack


def revert_leftovers(paths: StatePaths, progress: Callable[[str], None]) -> None:
    """Faults a killed run left in this directory's data (a deleted catalog row, moved
    metadata files, a query path left down on a cluster's Toxiproxy) outlive the stack
    process: the next stack reverts them before its health counts."""
    from datadrill.faults.ledger import FaultLedger, cleanup

    ledger = FaultLedger.for_stack(paths.root)
    if not ledger.outstanding():
        return
    for result in cleanup(StackClient.attach(paths.root), ledger=ledger):
        progress(f"reverted a leftover fault: {result.description} ({result.note})")


def start_stack(
    backend: Backend,
    paths: StatePaths,
    config: StackConfig,
    *,
    timeout_s: float = 60.0,
    on_progress: Callable[[str], None] | None = None,
) -> StackClient:
    """Start a stack of ``backend`` in ``paths`` that outlives this call (``stack up``):
    leftover faults reverted, the table checked to be this stack's own."""
    return backend.up(
        paths, config, timeout_s=timeout_s, on_progress=on_progress, before_health=revert_leftovers
    )


@contextlib.contextmanager
def stack_session(
    *,
    state_dir: Path | None = None,
    backend: str = "embedded",
    config: StackConfig | None = None,
    config_file: Path | None = None,
    overrides: dict[str, object] | None = None,
    brokers: int = 3,
    start_in: Path | None = None,
    timeout_s: float = 60.0,
    flag: str = "--stack",
    on_progress: Callable[[str], None] | None = None,
) -> Iterator[StackSession]:
    """Attach to the stack running in ``state_dir`` when there is one; otherwise start a
    stack of ``backend`` in ``start_in`` (default: a temporary directory) from ``config``
    (default: ``config_file`` and ``overrides``), and stop it when the block ends."""
    chosen = backend_for(backend, flag=flag, brokers=brokers)
    if state_dir is not None:
        running = attach_running(state_dir, backend=backend, flag=flag)
        if running is not None:
            yield StackSession(running, "running", chosen)
            return
    if config is None:
        config = chosen.configure(config_file=config_file, overrides=overrides)
    with contextlib.ExitStack() as exits:
        if start_in is None:
            start_in = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="datadrill-stack-")))
            start_in = start_in / ".datadrill"
        paths = StatePaths(start_in)
        # Registered before up(): a stack that fails half-way is stopped all the same.
        exits.callback(chosen.down, paths)
        stack = start_stack(chosen, paths, config, timeout_s=timeout_s, on_progress=on_progress)
        yield StackSession(stack, "started", chosen)
