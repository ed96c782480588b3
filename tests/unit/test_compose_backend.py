"""The compose backend, checked without a Docker engine: the compose file parses, every
service has a healthcheck and a pinned image, listeners and proxies are wired so clients
never bypass Toxiproxy, Trino's catalog is the catalog the sink writes, readiness handles
Trino's "ready but no worker" state, and --stack compose without an engine is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from datadrill.backends.compose import render as compose_render
from datadrill.backends.compose.readiness import (
    catalog_readiness,
    kafka_readiness,
    trino_readiness,
)
from datadrill.backends.compose.services import docker_problem
from datadrill.backends.compose.settings import ComposeSettings
from datadrill.platform.catalog import CATALOG_NAME

REPO = Path(__file__).resolve().parents[2]


def _document(settings: ComposeSettings) -> dict[str, Any]:
    loaded = yaml.safe_load(compose_render.render(settings)[compose_render.COMPOSE_FILE])
    assert isinstance(loaded, dict)
    return loaded


def test_the_repository_files_are_the_default_rendering() -> None:
    for relative, text in compose_render.render(ComposeSettings()).items():
        assert (REPO / relative).read_text(encoding="utf-8") == text, f"{relative} is stale: re-render it"


@pytest.mark.parametrize("brokers", [1, 3])
def test_every_service_has_a_healthcheck_and_a_pinned_image(brokers: int) -> None:
    services = _document(ComposeSettings(brokers=brokers))["services"]
    expected = {"toxiproxy", "schema-registry", "postgres", "minio", "minio-init", "trino"}
    expected |= {f"kafka-{n}" for n in range(1, brokers + 1)}
    assert set(services) == expected
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: image {image} is not pinned"
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"} and len(check["test"]) > 1, name


@pytest.mark.parametrize("brokers", [1, 3])
def test_each_broker_advertises_its_own_proxy(brokers: int) -> None:
    settings = ComposeSettings(brokers=brokers)
    services = _document(settings)["services"]
    proxies = {
        p["name"]: p for p in json.loads(compose_render.render(settings)[compose_render.TOXIPROXY_CONFIG])
    }
    published = {p.split(":")[1]: p.split(":")[2] for p in services["toxiproxy"]["ports"]}
    voters = {f"{n}@kafka-{n}:9093" for n in range(1, brokers + 1)}
    for n in range(1, brokers + 1):
        env = services[f"kafka-{n}"]["environment"]
        listeners = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
        external_host, external_port = listeners["EXTERNAL"].rsplit(":", 1)
        # What the broker tells clients is the host port of the proxy in front of it ...
        assert external_host == "127.0.0.1"
        assert int(external_port) == settings.broker_proxy_port(n)
        proxy = proxies[f"kafka-{n}"]
        assert proxy["listen"] == f"0.0.0.0:{external_port}"
        assert published[external_port] == external_port
        # ... whose upstream is this broker's EXTERNAL listener, not another broker's.
        assert proxy["upstream"] == f"kafka-{n}:9094"
        assert "EXTERNAL://:9094" in env["KAFKA_LISTENERS"]
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == min(3, brokers)
    # No broker port is published directly: clients cannot bypass the proxies.
    for n in range(1, brokers + 1):
        assert "ports" not in services[f"kafka-{n}"]
    assert settings.bootstrap_servers.split(",") == [
        f"127.0.0.1:{settings.broker_proxy_port(n)}" for n in range(1, brokers + 1)
    ]


def test_trino_reads_the_catalog_the_sink_writes() -> None:
    settings = ComposeSettings()
    props = dict(
        line.split("=", 1)
        for line in compose_render.render(settings)[compose_render.TRINO_CATALOG].splitlines()
        if line and not line.startswith("#")
    )
    assert props["connector.name"] == "iceberg"
    assert props["iceberg.catalog.type"] == "jdbc"
    assert props["iceberg.jdbc-catalog.catalog-name"] == CATALOG_NAME
    # Same database as the host's pyiceberg catalog, through the same proxy.
    assert props["iceberg.jdbc-catalog.connection-url"] == (
        f"jdbc:postgresql://toxiproxy:{settings.postgres_proxy_port}/{settings.catalog_database}"
    )
    assert settings.catalog_uri.endswith(
        f"@127.0.0.1:{settings.postgres_proxy_port}/{settings.catalog_database}"
    )
    assert props["iceberg.jdbc-catalog.connection-user"] == settings.database_user
    assert props["iceberg.jdbc-catalog.default-warehouse-dir"] == f"s3://{settings.bucket}/"
    assert props["s3.aws-access-key"] == settings.s3_access_key
    init = compose_render.render(settings)[compose_render.POSTGRES_INIT]
    for table in ("iceberg_tables", "iceberg_namespace_properties"):
        assert f"CREATE TABLE IF NOT EXISTS {table}" in init


def test_the_catalog_schema_matches_pyiceberg(tmp_path: Path) -> None:
    import sqlalchemy

    from datadrill.platform.catalog import open_catalog

    uri = f"sqlite:///{tmp_path / 'c.db'}"
    open_catalog(uri, tmp_path / "w")
    engine = sqlalchemy.create_engine(uri)
    inspector = sqlalchemy.inspect(engine)
    for table in ("iceberg_tables", "iceberg_namespace_properties"):
        columns = [c["name"] for c in inspector.get_columns(table)]
        block = compose_render.CATALOG_SCHEMA.split(f"CREATE TABLE IF NOT EXISTS {table} (")[1].split(");")[0]
        declared = [
            line.split()[0] for line in block.strip().splitlines() if not line.strip().startswith("PRIMARY")
        ]
        assert declared == columns
    engine.dispose()


@pytest.mark.parametrize(
    ("info", "nodes", "include", "ready", "reason"),
    [
        (None, None, True, False, "no answer"),
        ({"starting": True}, None, True, False, "still starting"),
        ({"starting": False}, None, True, False, "cannot be queried"),
        # The known state: the coordinator answers, no node may run tasks.
        ({"starting": False}, [("c", True, "active")], False, False, "ready but no worker"),
        (
            {"starting": False},
            [("c", True, "active"), ("w", False, "shutting_down")],
            False,
            False,
            "no worker",
        ),
        (
            {"starting": False},
            [("c", True, "active"), ("w", False, "active")],
            False,
            True,
            "1 active worker",
        ),
        ({"starting": False}, [("c", True, "active")], True, True, "coordinator runs tasks"),
    ],
)
def test_trino_readiness(
    info: dict[str, Any] | None,
    nodes: list[tuple[str, bool, str]] | None,
    include: bool,
    ready: bool,
    reason: str,
) -> None:
    result = trino_readiness(info, nodes, include_coordinator=include)
    assert result.ready is ready and reason in result.reason


def test_kafka_and_catalog_readiness() -> None:
    assert not kafka_readiness([1, 2], 3).ready
    assert kafka_readiness([1, 2, 3], 3).ready
    missing = catalog_readiness(["iceberg_tables"])
    assert not missing.ready and "iceberg_namespace_properties" in missing.reason
    assert catalog_readiness(["iceberg_tables", "iceberg_namespace_properties", "x"]).ready


@pytest.mark.skipif(docker_problem() is None, reason="a Docker engine answers here")
def test_compose_without_an_engine_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, flag in (
        (["run", str(REPO / "scenarios" / "calibration.py"), "--stack", "compose"], "--stack"),
        (["stack", "up", "--backend", "compose"], "--backend"),
        (["stack", "down", "--backend", "compose"], "--backend"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "datadrill.cli", *args, "--state-dir", str(tmp_path / "s")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Docker engine" in lines[0] and "Traceback" not in result.stderr
        assert lines[0].startswith(f"error: {flag}: {flag} = 'compose'"), lines[0]


EXTERNAL = {
    "bootstrap_servers": "127.0.0.1:9092",
    "catalog_uri": "postgresql://drill:drill@127.0.0.1:5432/catalog",
    "trino_url": "http://127.0.0.1:8080",
}


@pytest.mark.parametrize(
    ("external", "setting"),
    [
        ({"bootstrap_servers": "127.0.0.1:9092,kafka.prod:9092"}, "external.bootstrap_servers"),
        ({"catalog_uri": "postgresql://u:p@db.prod:5432/c"}, "external.catalog_uri"),
        ({"trino_url": "https://trino.prod:8443"}, "external.trino_url"),
        ({"toxiproxy_url": "http://10.1.2.3:8474"}, "external.toxiproxy_url"),
    ],
)
def test_an_external_cluster_outside_loopback_needs_the_allow_list(
    external: dict[str, str], setting: str
) -> None:
    from datadrill.config import parse_config
    from datadrill.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config({"external": {**EXTERNAL, **external}}, source="datadrill.toml")
    assert setting in str(caught.value) and "safety.allow_hosts" in str(caught.value)
    host = str(caught.value.value)
    allowed = parse_config(
        {"external": {**EXTERNAL, **external}, "safety": {"allow_hosts": [host]}}, source="datadrill.toml"
    )
    assert allowed.external is not None


@pytest.mark.parametrize(
    ("external", "field"),
    [
        ({"trino_url": "trino:8080"}, "external.trino_url"),
        ({"catalog_uri": "sqlite:///x.db"}, "external.catalog_uri"),
        ({"brokers": 0}, "external.brokers"),
        ({"kafka": "x"}, "external.kafka"),
    ],
)
def test_malformed_external_settings_name_the_field(external: dict[str, Any], field: str) -> None:
    from datadrill.config import parse_config
    from datadrill.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config({"external": {**EXTERNAL, **external}}, source="datadrill.toml")
    assert str(caught.value).startswith(f"datadrill.toml: {field} = ")


def test_the_catalog_and_query_paths_have_the_embedded_stacks_proxy_names() -> None:
    settings = ComposeSettings()
    proxies = {
        p["name"]: p for p in json.loads(compose_render.render(settings)[compose_render.TOXIPROXY_CONFIG])
    }
    assert proxies["catalog"]["upstream"] == "postgres:5432"
    assert proxies["catalog"]["listen"].endswith(f":{settings.postgres_proxy_port}")
    assert proxies["query"]["upstream"] == "trino:8080"
    assert proxies["query"]["listen"].endswith(f":{settings.trino_proxy_port}")
    services = _document(settings)["services"]
    # Trino publishes no port of its own; PostgreSQL publishes one for the harness only
    # (reverts and checks), while the platform is pointed at the proxy.
    assert "ports" not in services["trino"]
    assert services["postgres"]["ports"] == [f"127.0.0.1:{settings.postgres_port}:5432"]


def test_the_platform_on_compose_goes_through_the_proxies() -> None:
    from datadrill.config import parse_config
    from datadrill.platform.catalog import network_address

    settings = ComposeSettings(brokers=3)
    config = parse_config({"external": settings.external()}, source="compose")
    external = config.external
    assert external is not None
    proxies = {
        p["name"]: p for p in json.loads(compose_render.render(settings)[compose_render.TOXIPROXY_CONFIG])
    }
    published = _document(settings)["services"]["toxiproxy"]["ports"]

    def published_by_toxiproxy(address: str) -> bool:
        port = address.rsplit(":", 1)[1]
        return f"127.0.0.1:{port}:{port}" in published

    # Every address the platform uses is a proxy's, published by the toxiproxy container.
    for n, address in enumerate(external.bootstrap_servers.split(","), start=1):
        assert proxies[f"kafka-{n}"]["listen"].endswith(address.rsplit(":", 1)[1]) and published_by_toxiproxy(
            address
        )
    platform_catalog = network_address(external.catalog_uri)
    assert platform_catalog is not None and published_by_toxiproxy(platform_catalog)
    assert external.trino_url == f"http://127.0.0.1:{settings.trino_proxy_port}"
    # The harness's own path skips the proxy, so a fault on "catalog" never blocks a revert.
    assert network_address(external.harness_catalog_uri) == f"127.0.0.1:{settings.postgres_port}"
    # Table files go to MinIO with the keys the MinIO container was given.
    io = external.s3_properties()
    assert external.warehouse == f"s3://{settings.bucket}"
    assert io["s3.endpoint"] == settings.s3_endpoint and io["s3.force-virtual-addressing"] == "false"
    minio_env = _document(settings)["services"]["minio"]["environment"]
    assert (io["s3.access-key-id"], io["s3.secret-access-key"]) == (
        minio_env["MINIO_ROOT_USER"],
        minio_env["MINIO_ROOT_PASSWORD"],
    )
    # Trino reads the same catalog (the same name, the same database) and the same bucket.
    trino = compose_render.trino_catalog_properties(settings)
    assert trino["iceberg.jdbc-catalog.catalog-name"] == "datadrill"
    assert trino["iceberg.jdbc-catalog.default-warehouse-dir"].startswith(external.warehouse)
    assert external.compose_project == _document(settings)["name"]
