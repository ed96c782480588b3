"""`--stack external`: the reference platform on a cluster datadrill does not own.

The "existing cluster" here is made of real parts the test starts itself: the session
stack's Kafka (librdkafka's mock cluster, over its sockets), a PostgreSQL catalog database
of its own, and a Toxiproxy API (datadrill's fault proxy, run by the test) with proxies
``kafka-N`` and ``catalog`` in front of them, as the compose stack has. The headline
scenario then runs on it, unchanged, and broker faults go through the proxies.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from conftest import new_database, run_cli
from datadrill.netfaults import FaultProxyServer, ToxiproxyAdmin
from datadrill.stack.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def toxiproxy() -> Iterator[ToxiproxyAdmin]:
    server = FaultProxyServer(allow_hosts=())
    admin = ToxiproxyAdmin(server.start())
    try:
        yield admin
    finally:
        server.stop()


def _stack_up(config: Path, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "stack",
        "up",
        "--backend",
        "external",
        "--config",
        str(config),
        "--state-dir",
        str(state_dir),
        cwd=config.parent,
    )


@pytest.mark.timeout(600)
def test_the_headline_scenario_runs_on_an_external_cluster(
    stack: StackClient, postgres_dsn: str, toxiproxy: ToxiproxyAdmin, tmp_path: Path
) -> None:
    dsn = new_database(postgres_dsn, "catalog_external_run")
    database = dsn.split("@", 1)[1].split("/", 1)[0]
    brokers = stack.bootstrap_servers.split(",")
    proxied = []
    for n, address in enumerate(brokers, start=1):
        proxied.append(toxiproxy.create_proxy(f"kafka-{n}", "127.0.0.1:0", address).listen)
    catalog_listen = toxiproxy.create_proxy("catalog", "127.0.0.1:0", database).listen
    # librdkafka's mock cluster does not serve CreateTopics: its topics are made the way an
    # operator would make them on a real cluster before a game day (datadrill then uses them).
    for topic, partitions in (("orders.external", 6), ("orders.external.dlq", 1)):
        stack.control.post("/kafka/topics", {"name": topic, "partitions": partitions})
    config = tmp_path / "datadrill.toml"
    config.write_text(
        # Its own topic and consumer group: the session stack's platform shares this Kafka.
        '[kafka]\ntopic = "orders.external"\n\n'
        '[sink]\ngroup_id = "datadrill-sink-external"\n\n'
        "[external]\n"
        f'bootstrap_servers = "{",".join(proxied)}"\n'
        f"brokers = {len(brokers)}\n"
        f'catalog_uri = "{dsn.replace(database, catalog_listen)}"\n'
        f'direct_catalog_uri = "{dsn}"\n'
        f'toxiproxy_url = "{toxiproxy.url}"\n',
        encoding="utf-8",
    )
    state_dir = tmp_path / ".datadrill"
    up = _stack_up(config, state_dir)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        assert "external stack up" in up.stdout
        running = StackClient.attach(state_dir)
        assert running.state["backend"] == "external"
        assert running.state["librdkafka"] is None  # no mock cluster of its own
        status = run_cli("stack", "status", "--json", "--state-dir", str(state_dir), cwd=tmp_path)
        assert status.returncode == 0, status.stdout + status.stderr
        components = {c["name"]: c for c in json.loads(status.stdout)["components"]}
        assert components["kafka"]["endpoint"] == ",".join(proxied)
        assert "Toxiproxy proxy kafka-N disabled" in components["kafka-broker-1"]["detail"]
        assert components["sink"]["healthy"], components["sink"]

        # Broker loss and broker latency go through the brokers' proxies on this cluster.
        running.control.post("/kafka/brokers/2/down")
        assert not toxiproxy.get_proxy("kafka-2").enabled
        running.control.post("/kafka/brokers/2/up")
        assert toxiproxy.get_proxy("kafka-2").enabled
        running.control.post("/kafka/brokers/1/rtt", {"rtt_ms": 50})
        assert [t.name for t in toxiproxy.toxics("kafka-1")] == ["datadrill-broker-rtt"]
        running.control.post("/kafka/brokers/1/rtt", {"rtt_ms": 0})
        assert toxiproxy.toxics("kafka-1") == ()
        # What only the mock cluster can do is refused with the reason.
        from datadrill.errors import ControlError

        with pytest.raises(ControlError, match="mock cluster"):
            running.control.post("/kafka/request-errors", {"api_key": 0, "errors": [7]})

        reports = tmp_path / "reports"
        run = run_cli(
            "run",
            str(REPO / "scenarios" / "metadata_loss.py"),
            "--stack",
            "external",
            "--state-dir",
            str(state_dir),
            "--report-dir",
            str(reports),
            cwd=tmp_path,
            timeout=400,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        print(run.stdout)  # the run's summary: `pytest -s` shows detection and recovery times
        assert "using the external stack running in" in run.stderr
        report = json.loads((reports / "report.json").read_text(encoding="utf-8"))
        assert report["verdict"] == "passed", report.get("reasons")
        assert report["stack"] == "external"
        # The platform wrote to the external cluster: its topic on that Kafka, its table in
        # that catalog database.
        from confluent_kafka.admin import AdminClient

        topics = AdminClient({"bootstrap.servers": stack.bootstrap_servers}).list_topics(timeout=10).topics
        assert {"orders.external", "orders.external.dlq"} <= set(topics)
        engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT table_namespace, table_name FROM iceberg_tables")
            ).fetchall()
        engine.dispose()
        assert [tuple(r) for r in rows] == [("dwh", "orders")]
    finally:
        down = run_cli("stack", "down", "--backend", "external", "--state-dir", str(state_dir), cwd=tmp_path)
        assert down.returncode == 0, down.stdout + down.stderr

    # The table now holds this source's event ids; a stack with a new source database (a
    # fresh state directory) would drop every new event as a duplicate: it is refused.
    again = _stack_up(config, tmp_path / "other")
    assert again.returncode == 2, again.stdout + again.stderr
    assert "already written by another datadrill stack" in again.stderr
    assert "Traceback" not in again.stderr


def test_an_embedded_run_refuses_a_config_with_an_external_section(tmp_path: Path) -> None:
    config = tmp_path / "datadrill.toml"
    config.write_text(
        '[external]\nbootstrap_servers = "127.0.0.1:9"\ncatalog_uri = "postgresql://u@127.0.0.1:9/c"\n'
    )
    result = run_cli(
        "run",
        str(REPO / "scenarios" / "metadata_loss.py"),
        "--state-dir",
        str(tmp_path / ".dd"),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "datadrill.toml: external" in result.stderr and "--stack external" in result.stderr
    assert "Traceback" not in result.stderr
