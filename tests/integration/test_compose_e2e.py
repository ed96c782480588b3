"""The compose stack for real: Kafka (KRaft), Schema Registry, PostgreSQL, MinIO, Trino and
Toxiproxy in Docker, the reference platform on them, and the scenarios run unchanged.

Needs a Docker engine; where none answers every test here is skipped, with the reason in
the test summary.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli
from datadrill.backends.compose.services import docker_problem
from datadrill.backends.compose.settings import ComposeSettings
from datadrill.stack.client import StackClient

_NO_ENGINE = docker_problem()

pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.skipif(_NO_ENGINE is not None, reason=f"no Docker engine answers here: {_NO_ENGINE}"),
]

REPO = Path(__file__).resolve().parents[2]
SETTINGS = ComposeSettings()  # what `stack up --backend compose` brings up (3 brokers)


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    state_dir = tmp_path_factory.mktemp("compose") / ".datadrill"
    up = run_cli("stack", "up", "--backend", "compose", "--state-dir", str(state_dir), timeout=1500)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield StackClient.attach(state_dir)
    finally:
        down = run_cli("stack", "down", "--backend", "compose", "--state-dir", str(state_dir), timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr


def _run(scenario: str, state_dir: Path, reports: Path) -> dict[str, object]:
    result = run_cli(
        "run",
        str(REPO / "scenarios" / scenario),
        "--stack",
        "compose",
        "--state-dir",
        str(state_dir),
        "--report-dir",
        str(reports),
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, object] = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    return report


@pytest.mark.timeout(2400)
def test_the_headline_scenario_runs_on_the_compose_stack(
    compose_stack: StackClient, tmp_path: Path
) -> None:
    state = compose_stack.state
    assert state["backend"] == "external" and state["query_engine"] == "trino"
    assert state["bootstrap_servers"] == SETTINGS.bootstrap_servers
    with urllib.request.urlopen(f"{SETTINGS.toxiproxy_url}/proxies", timeout=10) as response:
        assert {"kafka-1", "kafka-2", "kafka-3", "catalog", "query"} <= set(json.loads(response.read()))

    report = _run("metadata_loss.py", compose_stack.paths.root, tmp_path / "reports")
    assert report["verdict"] == "passed", report.get("reasons")
    assert report["stack"] == "compose"

    # Dashboards' queries were Trino's, reading the table the sink wrote to MinIO.
    engine = compose_stack.mart_queries(timeout_s=30)
    try:
        ((rows,),) = engine.rows("SELECT count(*) FROM dwh.orders")
    finally:
        engine.close()
    assert int(rows) > 1000
    table = compose_stack.catalog().load_table("dwh.orders")
    assert table.metadata_location.startswith(f"s3://{SETTINGS.bucket}/")
    assert compose_stack.warehouse().exists(table.metadata_location)
    # The contract went through Schema Registry.
    with urllib.request.urlopen(f"{SETTINGS.schema_registry_url}/subjects", timeout=10) as response:
        assert "orders.v1-value" in json.loads(response.read())


@pytest.mark.timeout(1200)
def test_broker_loss_kills_the_brokers_container(compose_stack: StackClient) -> None:
    import docker

    client = docker.from_env(version="auto")
    labels = [f"com.docker.compose.project={SETTINGS.project}", "com.docker.compose.service=kafka-2"]

    def status() -> str:
        (container,) = client.containers.list(all=True, filters={"label": labels})
        return str(container.status)

    try:
        compose_stack.control.post("/kafka/brokers/2/down")
        assert status() == "exited"
        compose_stack.control.post("/kafka/brokers/2/up")
        assert status() == "running"
    finally:
        client.close()


@pytest.mark.timeout(1200)
def test_network_faults_hit_trino_through_its_proxy(compose_stack: StackClient, tmp_path: Path) -> None:
    report = _run("network_query_path.py", compose_stack.paths.root, tmp_path / "reports")
    assert report["verdict"] == "passed", report.get("reasons")
