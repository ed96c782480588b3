"""The state file a stack process writes (``stack.json``): reading it, and telling a
running stack from none and from one whose process died.

Example::

    state = require_state(StatePaths(Path(".datadrill")))
    state["control_url"], state["pid"], state["backend"]
"""

from __future__ import annotations

import json
from typing import Any

from datadrill.errors import StackNotRunning, StackProcessDied
from datadrill.paths import StatePaths
from datadrill.procs import alive


def read_state(paths: StatePaths) -> dict[str, Any] | None:
    try:
        data = json.loads(paths.state_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def require_state(paths: StatePaths) -> dict[str, Any]:
    """The running stack's state; raises :class:`StackNotRunning` when there is none and
    :class:`StackProcessDied` when its process is gone without cleaning up."""
    state = read_state(paths)
    if state is None:
        raise StackNotRunning(f"no stack is running in {paths.root}; start one with 'datadrill stack up'")
    if not alive(int(state["pid"])):
        raise StackProcessDied(
            f"the stack process (pid {state['pid']}) in {paths.root} has died; its last lines are in "
            f"{paths.log('stack')}. Run 'datadrill stack up' to start a new one (it cleans up first)"
        )
    return state
