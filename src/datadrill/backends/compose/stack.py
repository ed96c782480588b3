"""The compose backend: the services of ``docker-compose.yml`` (real Kafka, PostgreSQL,
MinIO, Trino, Toxiproxy, Schema Registry), then the platform on them as for ``external``.

Example::

    backend = ComposeBackend(brokers=3)
    stack = backend.up(StatePaths(Path(".datadrill")), backend.configure(config_file=None))
"""

from __future__ import annotations

from pathlib import Path

from datadrill.backends.base import BeforeHealth, Progress
from datadrill.backends.compose.settings import ComposeSettings
from datadrill.backends.embedded import start_stack_process
from datadrill.config import StackConfig, load_config
from datadrill.errors import ConfigError
from datadrill.paths import StatePaths
from datadrill.stack.client import StackClient


def compose_settings(brokers: int) -> ComposeSettings:
    from pydantic import ValidationError

    try:
        return ComposeSettings(brokers=brokers)
    except ValidationError:
        # 2 is refused: two KRaft voters cannot lose one (see settings.BROKER_COUNTS).
        raise ConfigError(
            "--brokers", "--brokers", brokers, "1 or 3 (each broker is a KRaft controller; 2 voters cannot lose one)"
        ) from None


class ComposeBackend:
    name = "compose"

    def __init__(self, *, brokers: int = 3, flag: str = "--stack") -> None:
        self.settings = compose_settings(brokers)
        self.flag = flag  # the option that chose this backend, for the no-Docker message

    def configure(self, *, config_file: Path | None, overrides: dict[str, object] | None = None) -> StackConfig:
        data = load_config(config_file, overrides=overrides).model_dump()
        data["external"] = self.settings.external()
        source = data["source"]
        if source["server"] == "postgresql" and not source["uri"]:
            # `--source postgresql`: the compose PostgreSQL's own source database.
            source["uri"] = self.settings.source_uri
        return StackConfig.model_validate(data)

    def ready(self, config: StackConfig) -> list[str]:
        from datadrill.backends.compose.services import docker_problem

        problem = docker_problem()
        return [f"docker: {problem}"] if problem else []

    def up(
        self,
        paths: StatePaths,
        config: StackConfig,
        *,
        timeout_s: float = 60.0,
        on_progress: Progress | None = None,
        before_health: BeforeHealth | None = None,
    ) -> StackClient:
        from datadrill.backends.compose.services import ComposeServices, require_docker
        from datadrill.netfaults import ToxiproxyAdmin

        progress = on_progress or (lambda message: None)
        require_docker(self.flag)
        compose = ComposeServices(self.settings, paths.compose_dir)
        elsewhere = compose.running_elsewhere()
        if elsewhere is not None:
            raise ConfigError(
                "--state-dir",
                "--state-dir",
                str(paths.root),
                f"a compose stack (project {self.settings.project}) already runs from {elsewhere}; "
                f"use it with --state-dir {Path(elsewhere).parent}, or stop it there first",
            )
        # Toxiproxy is ours on the compose stack: toxics and disabled proxies a killed run
        # left on it (in no ledger, if that run's state directory was a throwaway) come off
        # before readiness is judged. Toxiproxy reads its -config only at start, so on a
        # running stack a proxy left down would otherwise keep readiness waiting to the end.
        compose.up(
            timeout_s=max(timeout_s, 600.0),
            on_progress=lambda m: progress(f"compose: {m}"),
            before_ready=ToxiproxyAdmin(self.settings.toxiproxy_url).reset,
        )
        return start_stack_process(
            paths, config, timeout_s=timeout_s, on_progress=on_progress, before_health=before_health
        )

    def down(self, paths: StatePaths) -> list[int]:
        from datadrill.backends.compose.services import ComposeServices
        from datadrill.backends.stackd.manager import stack_down

        killed = stack_down(paths)
        ComposeServices(self.settings, paths.compose_dir).down()
        return killed

    def clean(self, paths: StatePaths) -> list[int]:
        from datadrill.backends.stackd.manager import clean_stale

        return clean_stale(paths)
