"""The embedded backend: librdkafka's mock cluster, a SQLite or PostgreSQL catalog and
DuckDB, all owned by the stack process. No Docker.

Example::

    stack = EmbeddedBackend().up(StatePaths(Path(".datadrill")), load_config(None))
"""

from __future__ import annotations

from pathlib import Path

from datadrill.backends.base import BeforeHealth, Progress
from datadrill.config import StackConfig, load_config
from datadrill.errors import ConfigError
from datadrill.paths import StatePaths
from datadrill.stack.client import StackClient


class StackProcessBackend:
    """down/clean for backends whose only thing to stop is the stack process (embedded,
    external); compose also stops its services."""

    def down(self, paths: StatePaths) -> list[int]:
        from datadrill.backends.stackd.manager import stack_down

        return stack_down(paths)

    def clean(self, paths: StatePaths) -> list[int]:
        from datadrill.backends.stackd.manager import clean_stale

        return clean_stale(paths)


class EmbeddedBackend(StackProcessBackend):
    name = "embedded"

    def configure(self, *, config_file: Path | None, overrides: dict[str, object] | None = None) -> StackConfig:
        config = load_config(config_file, overrides=overrides)
        if config.external is not None:
            raise ConfigError(
                str(config_file or "datadrill.toml"),
                "external",
                "[external]",
                "only for --backend/--stack external; remove it to use the embedded stack",
            )
        return config

    def ready(self, config: StackConfig) -> list[str]:
        return []  # everything it needs, it starts itself

    def up(
        self,
        paths: StatePaths,
        config: StackConfig,
        *,
        timeout_s: float = 60.0,
        on_progress: Progress | None = None,
        before_health: BeforeHealth | None = None,
    ) -> StackClient:
        return start_stack_process(
            paths, config, timeout_s=timeout_s, on_progress=on_progress, before_health=before_health
        )



def start_stack_process(
    paths: StatePaths,
    config: StackConfig,
    *,
    timeout_s: float,
    on_progress: Progress | None,
    before_health: BeforeHealth | None = None,
) -> StackClient:
    """What every backend ends with: the table checked to be ours, the stack process
    started and healthy, a client on it."""
    from datadrill.backends.ownership import check_table_is_ours
    from datadrill.backends.stackd.manager import stack_up

    check_table_is_ours(paths, config)
    stack_up(paths, config, timeout_s=timeout_s, on_progress=on_progress, before_health=before_health)
    return StackClient.attach(paths.root)
