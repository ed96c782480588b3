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

    from datadrill.backends.compose.settings import ComposeSettings

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
    from datadrill.backends.stackd.manager import stack_up

    progress = on_progress or (lambda message: None)
    if backend == "compose":
        from datadrill.backends.compose.backend import ComposeBackend, require_docker

        require_docker()
        compose = ComposeBackend(compose_settings(brokers), paths.root / COMPOSE_DIR)
        elsewhere = compose.running_elsewhere()
        if elsewhere is not None:
            raise ConfigError(
                "--state-dir",
                "--state-dir",
                str(paths.root),
                f"a compose stack (project {compose.settings.project}) already runs from {elsewhere}; "
                f"use it with --state-dir {Path(elsewhere).parent}, or stop it there first",
            )
        compose.up(timeout_s=max(timeout_s, 600.0), on_progress=lambda m: progress(f"compose: {m}"))
        # Toxiproxy is ours on the compose stack: toxics a killed run left on it (in no
        # ledger, if that run's state directory was a throwaway) come off here.
        from datadrill.netfaults import ToxiproxyAdmin

        ToxiproxyAdmin(compose.settings.toxiproxy_url).reset()
    elif backend == "external":
        from datadrill.backends.compose.readiness import SCHEMA_MISSING, check_all

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
    check_table_is_ours(paths, config)
    return stack_up(paths, config, timeout_s=timeout_s, on_progress=on_progress)


def check_table_is_ours(paths: StatePaths, config: StackConfig) -> None:
    """Refuse a table another stack's sink wrote on a cluster that outlived it.

    The sink keeps its exactly-once state (per partition: the highest event id committed)
    in the table's snapshots, and event ids come from this state directory's source
    database. A table written from another source is ahead of this one: every new event
    would look like a duplicate and be dropped, silently.
    """
    import contextlib
    import sqlite3

    from pyiceberg.exceptions import NoSuchTableError
    from sqlalchemy.exc import SQLAlchemyError

    from datadrill.platform import source_db
    from datadrill.platform.catalog import open_stack_catalog, sink_state

    try:
        table = open_stack_catalog(config, paths).load_table(config.catalog.table)
    except (NoSuchTableError, SQLAlchemyError, OSError):
        return  # no table yet (or no catalog schema yet): the stack creates it
    _, max_ids = sink_state(table)
    if not max_ids:
        return
    ours = 0
    if paths.source_db.exists():
        with contextlib.closing(source_db.connect(paths.source_db)) as db, contextlib.suppress(sqlite3.Error):
            ours = source_db.last_event_id(db)
    if max(max_ids.values()) > ours:
        raise ConfigError(
            "[catalog]",
            "table",
            config.catalog.table,
            f"already written by another datadrill stack (its sink is at event {max(max_ids.values())}, "
            f"this state directory's source at {ours}); use the state directory that wrote it, or "
            "another catalog.table and kafka.topic, or drop the table and the topic",
        )


def tear_down(backend: str, paths: StatePaths, *, brokers: int = 3) -> list[int]:
    """Stop the stack process, then the compose services (for ``compose``)."""
    from datadrill.backends.stackd.manager import stack_down

    killed = stack_down(paths)
    if backend == "compose":
        from datadrill.backends.compose.backend import ComposeBackend

        ComposeBackend(compose_settings(brokers), paths.root / COMPOSE_DIR).down()
    return killed


def running_backend(state: dict[str, Any]) -> str:
    """``embedded`` or ``external`` (a compose stack's platform runs as ``external``)."""
    return str(state.get("backend", "embedded"))
