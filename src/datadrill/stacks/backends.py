"""The three stack backends and how each is brought up around the reference platform.

- ``embedded``: librdkafka's mock cluster, a SQLite or PostgreSQL catalog, DuckDB; no Docker.
- ``external``: an existing cluster (the ``[external]`` section of the config); datadrill
  runs the workload, relay and sink on this host against it.
- ``compose``: the services of ``docker-compose.yml`` (real Kafka, PostgreSQL, MinIO, Trino,
  Toxiproxy, Schema Registry), then the platform on them as for ``external``.

In every case the stack process in the state directory is the one handle the harness
uses: its control API injects faults, whatever the services behind it are.

Example::

    config = stack_config("compose", config_file=None, brokers=3)
    bring_up("compose", StatePaths(Path(".datadrill")), config, on_progress=print)
    ...
    tear_down("compose", StatePaths(Path(".datadrill")))
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from datadrill.config import StackConfig, load_config
from datadrill.errors import ConfigError
from datadrill.paths import StatePaths

BACKENDS = ("embedded", "external", "compose")
COMPOSE_DIR = "compose"


def check_backend(value: str, flag: str) -> str:
    if value not in BACKENDS:
        raise ConfigError(flag, flag, value, f"one of {', '.join(BACKENDS)}")
    return value


def compose_settings(brokers: int) -> Any:
    from pydantic import ValidationError

    from datadrill.stacks.compose.settings import ComposeSettings

    try:
        return ComposeSettings(brokers=brokers)
    except ValidationError:
        raise ConfigError("--brokers", "--brokers", brokers, "1, 2 or 3") from None


def stack_config(
    backend: str,
    *,
    config_file: Path | None,
    overrides: dict[str, object] | None = None,
    brokers: int = 3,
) -> StackConfig:
    """The configuration of a stack of ``backend``: the file (and flags) as they are for
    ``embedded``; with its ``[external]`` section required for ``external``; with
    ``[external]`` pointing at the compose services for ``compose``."""
    config = load_config(config_file, overrides=overrides)
    if backend == "external" and config.external is None:
        raise ConfigError(
            str(config_file or "datadrill.toml"),
            "external",
            None,
            "an [external] section with bootstrap_servers and catalog_uri (see the README)",
        )
    if backend == "compose":
        data = config.model_dump()
        data["external"] = compose_settings(brokers).external()
        return StackConfig.model_validate(data)
    if backend == "embedded" and config.external is not None:
        raise ConfigError(
            str(config_file or "datadrill.toml"),
            "external",
            "[external]",
            "only for --backend/--stack external; remove it to use the embedded stack",
        )
    return config


def bring_up(
    backend: str,
    paths: StatePaths,
    config: StackConfig,
    *,
    brokers: int = 3,
    timeout_s: float = 60.0,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Start the stack process in ``paths`` (after the compose services, for ``compose``)."""
    from datadrill.stacks.embedded.manager import stack_up

    progress = on_progress or (lambda message: None)
    if backend == "compose":
        from datadrill.stacks.compose.backend import ComposeBackend, require_docker

        require_docker()
        ComposeBackend(compose_settings(brokers), paths.root / COMPOSE_DIR).up(
            timeout_s=max(timeout_s, 600.0), on_progress=lambda m: progress(f"compose: {m}")
        )
    elif backend == "external":
        from datadrill.stacks.compose.readiness import SCHEMA_MISSING, check_all

        assert config.external is not None
        # The stack process creates a missing catalog schema itself (pyiceberg's SQL catalog
        # does); everything else must answer before the platform starts on it.
        waiting = [
            s for s in check_all(config.external) if not s.ready and not s.reason.startswith(SCHEMA_MISSING)
        ]
        if waiting:
            raise ConfigError(
                "[external]",
                waiting[0].service,
                "not ready",
                "; ".join(f"{s.service}: {s.reason}" for s in waiting),
            )
    return stack_up(paths, config, timeout_s=timeout_s, on_progress=on_progress)


def tear_down(backend: str, paths: StatePaths, *, brokers: int = 3) -> list[int]:
    """Stop the stack process, then the compose services (for ``compose``)."""
    from datadrill.stacks.embedded.manager import stack_down

    killed = stack_down(paths)
    if backend == "compose":
        from datadrill.stacks.compose.backend import ComposeBackend

        ComposeBackend(compose_settings(brokers), paths.root / COMPOSE_DIR).down()
    return killed


def running_backend(state: dict[str, Any]) -> str:
    """``embedded`` or ``external`` (a compose stack's platform runs as ``external``)."""
    return str(state.get("backend", "embedded"))
