"""datadrill: game days for data platforms.

Example::

    from datadrill import EmbeddedStack
    stack = EmbeddedStack.attach(Path(".datadrill"))
    stack.query_engine().rows("SELECT count(*) FROM dwh.orders")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datadrill.config import StackConfig, load_config
from datadrill.errors import (
    ConfigError,
    ControlError,
    DrillError,
    KafkaMockUnavailable,
    QueryFailed,
    StackAlreadyRunning,
    StackError,
    StackNotRunning,
    StackProcessDied,
    StackStartFailed,
    WaitTimeout,
)

if TYPE_CHECKING:
    from datadrill.stack.client import EmbeddedStack, StackClient
    from datadrill.stack.port import Stack

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ControlError",
    "DrillError",
    "EmbeddedStack",
    "KafkaMockUnavailable",
    "QueryFailed",
    "Stack",
    "StackAlreadyRunning",
    "StackClient",
    "StackConfig",
    "StackError",
    "StackNotRunning",
    "StackProcessDied",
    "StackStartFailed",
    "WaitTimeout",
    "__version__",
    "load_config",
]


def __getattr__(name: str) -> Any:
    # Heavy imports (pyiceberg, duckdb) only when asked for: keeps `import datadrill` cheap.
    if name in ("EmbeddedStack", "StackClient"):
        from datadrill.stack.client import StackClient

        return StackClient
    if name == "Stack":
        from datadrill.stack.port import Stack

        return Stack
    raise AttributeError(f"module 'datadrill' has no attribute {name!r}")
