"""The external backend: an existing cluster (the ``[external]`` section of the config);
datadrill runs the workload, relay and sink on this host against it.

Example::

    backend = ExternalBackend()
    config = backend.configure(config_file=Path("staging.toml"))
    backend.ready(config)      # [] when every service answers
"""

from __future__ import annotations

from pathlib import Path

from datadrill.backends.base import BeforeHealth, Progress
from datadrill.backends.embedded import StackProcessBackend, start_stack_process
from datadrill.config import StackConfig, load_config
from datadrill.errors import ConfigError
from datadrill.paths import StatePaths
from datadrill.stack.client import StackClient


class ExternalBackend(StackProcessBackend):
    name = "external"

    def configure(self, *, config_file: Path | None, overrides: dict[str, object] | None = None) -> StackConfig:
        config = load_config(config_file, overrides=overrides)
        if config.external is None:
            raise ConfigError(
                str(config_file or "datadrill.toml"),
                "external",
                None,
                "an [external] section with bootstrap_servers and catalog_uri (see the README)",
            )
        if config.source.server == "postgresql" and not config.source.uri:
            # No throwaway server on someone else's cluster: the source is theirs.
            raise ConfigError(
                str(config_file or "datadrill.toml"),
                "source.uri",
                "",
                'your PostgreSQL source database: [source] uri = "postgresql://USER@HOST:PORT/DB"',
            )
        return config

    def ready(self, config: StackConfig) -> list[str]:
        from datadrill.backends.compose.readiness import SCHEMA_MISSING, check_all

        assert config.external is not None
        # The stack process creates a missing catalog schema itself (pyiceberg's SQL catalog
        # does); everything else must answer before the platform starts on it.
        return [
            f"{s.service}: {s.reason}"
            for s in check_all(config.external)
            if not s.ready and not s.reason.startswith(SCHEMA_MISSING)
        ]

    def up(
        self,
        paths: StatePaths,
        config: StackConfig,
        *,
        timeout_s: float = 60.0,
        on_progress: Progress | None = None,
        before_health: BeforeHealth | None = None,
    ) -> StackClient:
        waiting = self.ready(config)
        if waiting:
            raise ConfigError("[external]", waiting[0].split(":", 1)[0], "not ready", "; ".join(waiting))
        return start_stack_process(
            paths, config, timeout_s=timeout_s, on_progress=on_progress, before_health=before_health
        )
