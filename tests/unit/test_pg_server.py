"""The throwaway PostgreSQL server's pieces that need no server: finding the binaries, the
one-line error without them, reachability for the server's user, the source's settings
(URI, host policy, CLI flags) and the compose stack's source database."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from datadrill.backends.compose import render as compose_render
from datadrill.backends.compose.settings import ComposeSettings
from datadrill.backends.compose.stack import ComposeBackend
from datadrill.backends.external import ExternalBackend
from datadrill.backends.stackd.process import _via
from datadrill.config import RESERVED_COMPONENT_NAMES, parse_config
from datadrill.errors import ConfigError
from datadrill.platform import pg_server

NOWHERE = "/nonexistent-datadrill/*/bin/postgres"
PACKAGE_LINE = (
    f"PostgreSQL server binaries not found (looked for {NOWHERE}): install the Debian package "
    "postgresql (sudo apt-get install postgresql)"
)


def _fake_bindir(root: Path, version: str) -> Path:
    bindir = root / version / "bin"
    bindir.mkdir(parents=True)
    for name in ("postgres", "initdb"):
        binary = bindir / name
        binary.write_text("#!/bin/sh\necho 'postgres (PostgreSQL) " + version + "'\n")
        binary.chmod(0o755)
    return bindir


def test_missing_binaries_are_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_GLOB", NOWHERE)
    with pytest.raises(ConfigError) as caught:
        pg_server.find_binaries()
    assert str(caught.value) == PACKAGE_LINE
    assert isinstance(caught.value, pg_server.PostgresNotFound)


def test_the_newest_version_wins_as_a_number_not_as_text(tmp_path: Path) -> None:
    _fake_bindir(tmp_path, "9.6")
    newest = _fake_bindir(tmp_path, "15")
    _fake_bindir(tmp_path, "13")
    found = pg_server.find_binaries(str(tmp_path / "*" / "bin" / "postgres"))
    assert found.bindir == newest
    assert found.version() == "15"


def test_a_postgres_without_initdb_beside_it_does_not_count(tmp_path: Path) -> None:
    bindir = _fake_bindir(tmp_path, "16")
    (bindir / "initdb").unlink()
    with pytest.raises(pg_server.PostgresNotFound):
        pg_server.find_binaries(str(tmp_path / "*" / "bin" / "postgres"))


def test_reachable_by_follows_search_permission(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    stranger = 54321  # owns nothing here, is in no group of ours
    outer.chmod(0o700)
    assert not pg_server.reachable_by(inner, stranger, stranger)
    outer.chmod(0o711)
    assert pg_server.reachable_by(inner, stranger, stranger) == all(
        p.stat().st_mode & stat.S_IXOTH for p in [inner, *inner.resolve().parents]
    )
    # A directory not made yet is made later, for that user.
    assert pg_server.reachable_by(inner / "not-yet", os.getuid(), os.getgid())


def test_the_platform_path_keeps_user_password_and_database() -> None:
    assert _via("postgresql://u:p%40w@127.0.0.1:5433/source?sslmode=disable", "127.0.0.1:40001") == (
        "postgresql://u:p%40w@127.0.0.1:40001/source?sslmode=disable"
    )
    assert _via("postgresql://127.0.0.1/source", "127.0.0.1:40001") == "postgresql://127.0.0.1:40001/source"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mysql://u@127.0.0.1/db", "a PostgreSQL URI with a host and a database"),
        ("postgresql://u@127.0.0.1:5432", "a PostgreSQL URI with a host and a database"),
        ("postgresql://u@db.prod:5432/source", "source.uri points outside loopback"),
    ],
)
def test_a_bad_source_uri_is_one_clear_error(uri: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"source": {"uri": uri}}, source="datadrill.toml")
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert message.startswith(("datadrill.toml: source.uri", "safety.allow_hosts: host = 'db.prod'"))


def test_a_source_outside_loopback_is_allowed_when_listed() -> None:
    config = parse_config(
        {"source": {"uri": "postgresql://u@db.prod:5432/source"}, "safety": {"allow_hosts": ["db.prod"]}},
        source="datadrill.toml",
    )
    assert config.source.is_postgres


def test_source_db_is_a_reserved_component_name() -> None:
    assert "source-db" in RESERVED_COMPONENT_NAMES
    with pytest.raises(ConfigError, match="a name of your own"):
        parse_config({"components": {"source-db": {"command": ["true"]}}}, source="datadrill.toml")


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datadrill.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--source", "mysql"], "error: --source: --source = 'mysql' is invalid: sqlite or postgresql"),
        (["--relay", "kafka"], "error: --relay: --relay = 'kafka' is invalid: poll or cdc"),
        (["--relay", "cdc"], "error: flags: relay.mode = 'cdc' is invalid: a PostgreSQL source"),
        (["--source", "postgresql"], f"error: {PACKAGE_LINE}"),
    ],
)
def test_stack_up_source_and_relay_flags_refuse_with_one_line(tmp_path: Path, args: list[str], line: str) -> None:
    # POSTGRES_GLOB pointing nowhere: no server binaries, whatever this machine has.
    result = _cli("stack", "up", "--state-dir", str(tmp_path / "s"), *args, cwd=tmp_path, env={"POSTGRES_GLOB": NOWHERE})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr
    assert not (tmp_path / "s" / "stack.json").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--source", "mysql"], "error: --source: --source = 'mysql' is invalid: sqlite or postgresql"),
        (["--relay", "kafka"], "error: --relay: --relay = 'kafka' is invalid: poll or cdc"),
        (["--relay", "cdc"], "error: flags: relay.mode = 'cdc' is invalid: a PostgreSQL source"),
        (["--source", "postgresql", "--relay", "cdc"], f"error: {PACKAGE_LINE}"),
    ],
)
def test_run_source_and_relay_flags_refuse_with_one_line(tmp_path: Path, args: list[str], line: str) -> None:
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "cdc_slot_loss.py"
    result = _cli(
        "run", "--state-dir", str(tmp_path / "s"), *args, str(scenario), cwd=tmp_path, env={"POSTGRES_GLOB": NOWHERE}
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr
    assert not (tmp_path / "s").exists()


def _compose_postgres(settings: ComposeSettings) -> dict[str, Any]:
    document = yaml.safe_load(compose_render.render(settings)[compose_render.COMPOSE_FILE])
    service: dict[str, Any] = document["services"]["postgres"]
    return service


def test_compose_postgres_runs_with_logical_decoding() -> None:
    command = _compose_postgres(ComposeSettings())["command"]
    assert command[0] == "postgres"
    settings = dict(arg.split("=", 1) for flag, arg in zip(command[1::2], command[2::2], strict=True) if flag == "-c")
    assert settings["wal_level"] == "logical"
    assert int(settings["max_replication_slots"]) >= 1 and int(settings["max_wal_senders"]) >= 1
    # The source database the init script creates is the one --source postgresql names.
    assert "CREATE DATABASE source;" in compose_render.postgres_init(ComposeSettings())


def test_compose_source_has_a_proxy_of_its_own() -> None:
    settings = ComposeSettings()
    proxies = {p["name"]: p for p in compose_render.toxiproxy_proxies(settings)}
    assert proxies["source"]["upstream"] == "postgres:5432"
    assert proxies["source"]["listen"] == f"0.0.0.0:{settings.source_proxy_port}"
    assert proxies["source"]["listen"] != proxies["catalog"]["listen"]
    ports = yaml.safe_load(compose_render.render(settings)[compose_render.COMPOSE_FILE])["services"]["toxiproxy"]["ports"]
    assert f"127.0.0.1:{settings.source_proxy_port}:{settings.source_proxy_port}" in ports


def test_compose_source_postgresql_is_its_source_database(tmp_path: Path) -> None:
    backend = ComposeBackend(brokers=1)
    settings = backend.settings
    config = backend.configure(config_file=None, overrides={"source.server": "postgresql", "relay.mode": "cdc"})
    assert config.source.uri == (
        f"postgresql://{settings.database_user}:{settings.database_password}"
        f"@127.0.0.1:{settings.postgres_port}/{settings.source_database}"
    )
    assert config.relay.mode == "cdc"
    # Without --source postgresql, the source stays SQLite.
    assert backend.configure(config_file=None).source.uri == ""


def test_external_source_postgresql_needs_a_uri(tmp_path: Path) -> None:
    toml = tmp_path / "staging.toml"
    toml.write_text(
        '[external]\nbootstrap_servers = "127.0.0.1:9092"\ncatalog_uri = "postgresql://u:p@127.0.0.1:5432/c"\n'
    )
    with pytest.raises(ConfigError, match=r"source.uri .* your PostgreSQL source database"):
        ExternalBackend().configure(config_file=toml, overrides={"source.server": "postgresql"})


def test_data_directories_outside_gone_state_directories_are_removed(tmp_path: Path) -> None:
    def outside(name: str, owner: Path | None, *, pid: int | None = None) -> Path:
        directory = tmp_path / f"{pg_server.OUTSIDE_PREFIX}{name}"
        (directory / "data").mkdir(parents=True)
        if owner is not None:
            (directory / pg_server.OWNER_FILE).write_text(f"{owner}\n")
        if pid is not None:
            (directory / "data" / "postmaster.pid").write_text(f"{pid}\n/data\n")
        return directory

    state = tmp_path / "state" / "postgres"
    state.mkdir(parents=True)
    linked = outside("linked", state / "data")
    (state / "data").symlink_to(linked / "data", target_is_directory=True)
    orphan = outside("orphan", tmp_path / "deleted-state" / "postgres" / "data")
    relinked = outside("relinked", state / "data")  # the state directory links elsewhere now
    running = outside("running", tmp_path / "deleted-state-2" / "postgres" / "data", pid=os.getpid())
    foreign = outside("foreign", None)  # not made by us: never touched

    assert sorted(pg_server.remove_orphans(tmp_path)) == sorted([orphan, relinked])
    assert linked.exists() and running.exists() and foreign.exists()
    assert not orphan.exists() and not relinked.exists()
