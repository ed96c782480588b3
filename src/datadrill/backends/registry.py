"""The one place a backend's name maps to its class.

Example::

    backend = backend_for("compose", flag="--stack", brokers=3)
    backend.name   # "compose"
"""

from __future__ import annotations

from datadrill.backends.base import Backend
from datadrill.errors import ConfigError

BACKENDS = ("embedded", "external", "compose")


def backend_for(name: str, *, flag: str = "--backend", brokers: int = 3) -> Backend:
    """The backend called ``name``; a ConfigError naming ``flag`` for anything else."""
    if name == "embedded":
        from datadrill.backends.embedded import EmbeddedBackend

        return EmbeddedBackend()
    elif name == "external":
        from datadrill.backends.external import ExternalBackend

        return ExternalBackend()
    elif name == "compose":
        from datadrill.backends.compose.stack import ComposeBackend

        return ComposeBackend(brokers=brokers, flag=flag)
    else:
        raise ConfigError(flag, flag, name, f"one of {', '.join(BACKENDS)}")
