"""The compose backend against its upstream docs (issue 12), checked without an engine:
Toxiproxy reset before readiness, Trino's metadata cache off, no separate pull, a KRaft
quorum that can lose a voter, pg_isready over TCP, a cheap Kafka healthcheck, compose
failures as one error, and bounded JVM heaps."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from datadrill.backends.compose import render as compose_render
from datadrill.backends.compose import services as compose_services
from datadrill.backends.compose.readiness import Readiness
from datadrill.backends.compose.settings import ComposeSettings
from datadrill.backends.compose.stack import compose_settings
from datadrill.errors import ConfigError, StackStartFailed


def _services(settings: ComposeSettings) -> dict[str, Any]:
    loaded = yaml.safe_load(compose_render.render(settings)[compose_render.COMPOSE_FILE])
    assert isinstance(loaded, dict)
    services = loaded["services"]
    assert isinstance(services, dict)
    return services


class _FakeCompose:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.started = False

    def start(self) -> None:
        if self.error is not None:
            raise self.error
        self.started = True


def test_toxiproxy_is_reset_before_readiness_is_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    monkeypatch.setattr(compose_services, "require_docker", lambda flag="--stack": None)
    fake = _FakeCompose()
    monkeypatch.setattr(compose_services.ComposeServices, "_compose", lambda self: fake)

    def check_all(settings: object) -> list[Readiness]:
        events.append("readiness")
        return [Readiness("kafka", True, "ok")]

    monkeypatch.setattr(compose_services, "check_all", check_all)
    backend = compose_services.ComposeServices(ComposeSettings(brokers=1), tmp_path)
    backend.up(timeout_s=5, before_ready=lambda: events.append("reset"))
    assert fake.started
    assert events == ["reset", "readiness"]


def test_the_backend_passes_toxiproxys_reset_as_before_ready() -> None:
    # The ordering above only helps if the backend hands the reset to up(), not after it.
    source = Path(compose_services.__file__).with_name("stack.py").read_text(encoding="utf-8")
    assert "before_ready=ToxiproxyAdmin(self.settings.toxiproxy_url).reset" in source
    assert ").reset()" not in source


def test_trinos_metadata_cache_is_off() -> None:
    text = compose_render.render(ComposeSettings())[compose_render.TRINO_CATALOG]
    assert "iceberg.metadata-cache.enabled=false\n" in text


def test_docker_compose_does_not_pull_separately(tmp_path: Path) -> None:
    compose = compose_services.ComposeServices(ComposeSettings(brokers=1), tmp_path)._compose()
    assert getattr(compose, "pull") is False  # noqa: B009 - an untyped object
    assert getattr(compose, "wait") is True  # noqa: B009


@pytest.mark.parametrize("brokers", [0, 2, 4])
def test_a_quorum_that_cannot_lose_a_voter_is_refused(brokers: int) -> None:
    with pytest.raises(ConfigError) as refused:
        compose_settings(brokers)
    message = str(refused.value)
    assert "--brokers" in message and str(brokers) in message and "1 or 3" in message


@pytest.mark.parametrize("brokers", [1, 3])
def test_one_or_three_brokers_are_allowed(brokers: int) -> None:
    assert compose_settings(brokers).brokers == brokers


def test_pg_isready_asks_over_tcp() -> None:
    test = _services(ComposeSettings())["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert test[test.index("-h") + 1] == "127.0.0.1"


def test_kafkas_healthcheck_starts_no_jvm_and_has_time() -> None:
    for n in (1, 2, 3):
        check = _services(ComposeSettings())[f"kafka-{n}"]["healthcheck"]
        command = " ".join(check["test"])
        assert ".sh" not in command and "java" not in command, command
        assert "/dev/tcp/127.0.0.1/9092" in command
        assert int(check["timeout"].rstrip("s")) >= 10


def test_a_failing_compose_up_is_one_stack_start_failed() -> None:
    output = "\n".join(f"line {i}" for i in range(20)) + "\nError response from daemon: pull access denied\n"
    error = subprocess.CalledProcessError(
        1, ["docker", "compose", "-f", "docker-compose.yml", "up", "--wait"], b"", output.encode()
    )
    with pytest.raises(StackStartFailed) as failed:
        compose_services.start_compose(_FakeCompose(error))
    message = str(failed.value)
    assert "\n" not in message
    assert "exit code 1" in message and "up --wait" in message
    assert "pull access denied" in message and "line 19" in message and "line 3 " not in message


def test_a_missing_compose_plugin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 125, "", "docker: 'compose' is not a docker command.\n")

    monkeypatch.setattr(compose_services.subprocess, "run", missing)
    problem = compose_services.compose_plugin_problem()
    assert problem is not None and "compose v2 plugin" in problem.lower() and "not a docker command" in problem
    monkeypatch.setattr(compose_services, "docker_problem", lambda: None)
    with pytest.raises(ConfigError) as refused:
        compose_services.require_docker()
    assert "compose" in str(refused.value) and "\n" not in str(refused.value)


def _megabytes(option: str) -> int:
    match = re.fullmatch(r"-Xmx(\d+)([mMgG])", option)
    assert match, option
    return int(match.group(1)) * (1024 if match.group(2) in "gG" else 1)


def test_jvm_heaps_fit_the_readmes_four_gigabytes() -> None:
    services = _services(ComposeSettings(brokers=3))
    heaps: list[int] = []
    for name, variable in [
        ("kafka-1", "KAFKA_HEAP_OPTS"),
        ("kafka-2", "KAFKA_HEAP_OPTS"),
        ("kafka-3", "KAFKA_HEAP_OPTS"),
        ("schema-registry", "SCHEMA_REGISTRY_HEAP_OPTS"),
        ("trino", "JAVA_TOOL_OPTIONS"),
    ]:
        options = services[name]["environment"][variable].split()
        heaps.append(_megabytes(next(o for o in options if o.startswith("-Xmx"))))
    # Heaps plus ~150 MB of JVM overhead each, plus ~400 MB for PostgreSQL, MinIO and
    # Toxiproxy: under the README's "~4 GB".
    assert sum(heaps) + 150 * len(heaps) + 400 <= 4096
