"""`datadrill stack status --backend external`: the readiness of an existing cluster, here
the session stack's Kafka and a throwaway PostgreSQL catalog, with no Trino answering."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import sqlalchemy

from conftest import new_database, run_cli
from datadrill.backends.compose.render import CATALOG_SCHEMA
from datadrill.stack.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_external_status_reports_each_service(
    stack: StackClient, postgres_dsn: str, tmp_path: Path
) -> None:
    dsn = new_database(postgres_dsn, "catalog_external")
    config = tmp_path / "datadrill.toml"
    config.write_text(
        "[external]\n"
        f'bootstrap_servers = "{stack.bootstrap_servers}"\n'
        "brokers = 3\n"
        f'catalog_uri = "{dsn}"\n'
        f'trino_url = "http://127.0.0.1:{_closed_port()}"\n'
    )
    before = run_cli(
        "stack", "status", "--backend", "external", "--config", str(config), "--json", cwd=tmp_path
    )
    assert before.returncode == 1, before.stderr
    states = {c["service"]: c for c in json.loads(before.stdout)["components"]}
    assert states["kafka"]["ready"] and "3 brokers" in states["kafka"]["reason"]
    assert not states["catalog"]["ready"] and "iceberg_tables" in states["catalog"]["reason"]
    assert not states["trino"]["ready"] and "no answer" in states["trino"]["reason"]

    engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://"))
    with engine.begin() as connection:
        for statement in CATALOG_SCHEMA.split(";"):
            if statement.strip():
                connection.execute(sqlalchemy.text(statement))
    engine.dispose()
    after = run_cli(
        "stack", "status", "--backend", "external", "--config", str(config), "--json", cwd=tmp_path
    )
    states = {c["service"]: c for c in json.loads(after.stdout)["components"]}
    assert states["catalog"]["ready"], states["catalog"]
    assert after.returncode == 1  # Trino still does not answer


def test_external_status_without_an_external_section_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "datadrill.toml"
    config.write_text("[workload]\nrate = 10\n")
    result = run_cli("stack", "status", "--backend", "external", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "external" in result.stderr and "Traceback" not in result.stderr
