"""Bring the compose stack up and down (testcontainers' compose support), and wait until it
is really ready. Without a Docker engine nothing starts: the caller gets one clear error.

Example::

    backend = ComposeServices(ComposeSettings(brokers=3), Path(".datadrill/compose"))
    backend.up(on_progress=print)      # renders the files, docker compose up, waits for readiness
    backend.down()
"""

from __future__ import annotations

import gc
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datadrill.backends.compose.readiness import Readiness, check_all
from datadrill.backends.compose.render import COMPOSE_FILE, write
from datadrill.backends.compose.settings import ComposeSettings
from datadrill.errors import ConfigError, StackStartFailed


def docker_problem() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    # A failed connection leaves its socket to the garbage collector (inside requests);
    # collect it here, where its ResourceWarning says nothing the answer does not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        problem = _ping_docker()
        gc.collect()
    return problem


def _ping_docker() -> str | None:
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - a dependency of datadrill
        return f"the docker package is missing: {exc}"
    try:
        # "auto": engines refuse clients older than their minimum API version (1.44 on
        # Docker 29). Asking fails here, without an engine, leaving a socket to the garbage
        # collector: docker_problem collects it.
        client = docker.from_env(timeout=3, version="auto")
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - every failure means "no engine", with its reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return reason[:200]
    return None


def compose_plugin_problem() -> str | None:
    """Why ``docker compose`` (the Compose v2 plugin testcontainers runs) cannot be used,
    or None when ``docker compose version`` answers."""
    try:
        result = subprocess.run(
            ["docker", "compose", "version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return "the docker command is not on PATH: install the Docker CLI with its compose plugin"
    except subprocess.TimeoutExpired:
        return "'docker compose version' did not answer within 30 s"
    if result.returncode != 0:
        said = last_lines(result.stderr or result.stdout, 1)
        return (
            f"'docker compose version' failed ({said or f'exit {result.returncode}'}): install the "
            "Docker Compose v2 plugin (docker-compose-plugin, or Docker Desktop)"
        )
    return None


def last_lines(text: str, count: int = 5) -> str:
    """The last ``count`` non-empty lines of a command's output, on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def require_docker(flag: str = "--stack") -> None:
    """Raise a one-line ConfigError (exit 2) when no Docker engine answers, or when the
    ``docker compose`` plugin is missing."""
    problem = docker_problem() or compose_plugin_problem()
    if problem is not None:
        raise ConfigError(
            flag,
            flag,
            "compose",
            f"the compose backend needs a Docker engine and none answered ({problem}); "
            "use 'embedded', which needs none",
        )


@dataclass
class ComposeServices:
    settings: ComposeSettings
    directory: Path

    def _compose(self) -> object:
        from testcontainers.compose import DockerCompose

        # pull=False: testcontainers' pull runs "docker compose pull" with check=True before
        # "up", so an offline host fails even with every pinned image cached; "up" pulls
        # only what is missing.
        return DockerCompose(str(self.directory), compose_file_name=COMPOSE_FILE, pull=False, wait=True)

    def up(
        self,
        *,
        timeout_s: float = 600.0,
        on_progress: Callable[[str], None] | None = None,
        before_ready: Callable[[], None] | None = None,
    ) -> list[Readiness]:
        """``before_ready`` runs once the containers are up and before readiness is judged
        (the backend resets Toxiproxy there)."""
        require_docker()
        write(self.settings, self.directory)
        progress = on_progress or (lambda message: None)
        progress(
            "docker compose up --wait (missing pinned images are pulled; to fetch them "
            f"ahead: docker compose -f {self.directory / COMPOSE_FILE} pull)"
        )
        start_compose(self._compose())
        if before_ready is not None:
            before_ready()
        deadline = time.monotonic() + timeout_s
        while True:
            states = check_all(self.settings)
            waiting = [s for s in states if not s.ready]
            if not waiting:
                return states
            progress("; ".join(f"{s.service}: {s.reason}" for s in waiting))
            if time.monotonic() >= deadline:
                raise StackStartFailed(
                    f"the compose stack was not ready after {timeout_s:g} s: "
                    + "; ".join(f"{s.service}: {s.reason}" for s in waiting)
                )
            time.sleep(2)

    def running_elsewhere(self) -> str | None:
        """The directory of a compose stack of the same project started from another state
        directory (its containers would be taken over, and torn down with this one)."""
        import docker

        client = docker.from_env(timeout=10, version="auto")
        try:
            containers = client.containers.list(
                filters={"label": [f"com.docker.compose.project={self.settings.project}"]}
            )
        finally:
            client.close()
        ours = str(self.directory.resolve())
        for container in containers:
            where = container.labels.get("com.docker.compose.project.working_dir", "")
            if where and where != ours:
                return str(where)
        return None

    def down(self) -> None:
        require_docker()
        if (self.directory / COMPOSE_FILE).is_file():
            self._compose().stop()  # type: ignore[attr-defined]


def start_compose(compose: object) -> None:
    """``compose.start()``; a failing ``docker compose up --wait`` becomes one
    StackStartFailed with the last lines compose printed (testcontainers raises
    CalledProcessError with the output captured)."""
    try:
        compose.start()  # type: ignore[attr-defined]
    except subprocess.CalledProcessError as exc:
        output = _text(exc.stderr) or _text(exc.stdout)
        command = " ".join(str(part) for part in exc.cmd) if isinstance(exc.cmd, list) else str(exc.cmd)
        raise StackStartFailed(
            f"'{command}' failed with exit code {exc.returncode}: {last_lines(output) or 'no output'}"
        ) from None


def _text(data: object) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data if isinstance(data, str) else ""
