"""A real Connect cluster's connector under the drill: a second stack on the external
backend, with no reference platform, whose ``[connect] url`` is the session stack's Kafka
Connect API and whose only component is ``[components.sinkc] connector = "sink"``. A
scenario run on that stack hangs and kills ``sinkc`` (through Connect's REST API: pause and
resume, ``POST .../restart``) with a ConnectorHealth and a ConsumerLag SLO on it; it must
alert and recover. ResetOffsets on ``sinkc`` goes to Connect's offsets API under the
connector's own name, and the sink's refusal comes back with the connector running again.

Timings are asserted loosely (an alert fired, the run recovered), never to the second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import events, new_database, run_cli
from datadrill.clock import MonotonicClock
from datadrill.engine.runner import Runner
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.interfaces.connect_client import ConnectClient, ConnectError
from datadrill.model import (
    SLO,
    ConnectorHealth,
    ConsumerLag,
    Expectations,
    HangComponent,
    KillComponent,
    ResetOffsets,
    Scenario,
    Target,
    ThresholdAlert,
)
from datadrill.model.report import Verdict
from datadrill.model.scenario import SteadyState, Workload
from datadrill.recovery import run_step
from datadrill.stack.client import StackClient

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def external(stack: StackClient, postgres_dsn: str, tmp_path: Path) -> Iterator[StackClient]:
    # The external backend's catalog is a JDBC-style SQL catalog on PostgreSQL; with no
    # reference platform nothing is written to it.
    dsn = new_database(postgres_dsn, "catalog_external_connect")
    config = tmp_path / "datadrill.toml"
    config.write_text(
        "[platform]\nreference = false\n\n"
        f'[connect]\nurl = "{stack.connect.url}"\n\n'
        '[components.sinkc]\nconnector = "sink"\n\n'
        "[external]\n"
        f'bootstrap_servers = "{stack.bootstrap_servers}"\n'
        f"brokers = {len(stack.bootstrap_servers.split(','))}\n"
        f'catalog_uri = "{dsn}"\n',
        encoding="utf-8",
    )
    state_dir = tmp_path / ".datadrill"
    up = run_cli(
        "stack",
        "up",
        "--backend",
        "external",
        "--config",
        str(config),
        "--state-dir",
        str(state_dir),
        cwd=tmp_path,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield StackClient.attach(state_dir)
    finally:
        down = run_cli("stack", "down", "--backend", "external", "--state-dir", str(state_dir), cwd=tmp_path)
        assert down.returncode == 0, down.stdout + down.stderr


def _running(connect: ConnectClient) -> None:
    wait_until(
        lambda: connect.status("sink").running, timeout=60, interval=0.2, what="the sink connector to run"
    )


@pytest.mark.timeout(600)
def test_a_connect_clusters_connector_is_drilled_by_its_component_name(
    stack: StackClient, external: StackClient, tmp_path: Path
) -> None:
    connect = ConnectClient(stack.connect.url)
    assert external.connect.url == stack.connect.url and not external.connect.embedded
    assert external.config.component_names == ("sinkc",)
    _running(connect)
    sink_group = stack.config.sink.group_id
    scenario = Scenario(
        name="connect-sink-hang-and-kill",
        description="The Connect cluster's sink connector hangs (paused through REST), then is restarted.",
        workload=Workload(rate=0),  # observe-only: the first stack's workload is the traffic
        slos=(
            SLO(
                "sinkc healthy",
                sli=ConnectorHealth(component="sinkc"),
                objective=0.5,
                alert=ThresholdAlert(for_s=0.5),
            ),
            SLO(
                "sink lag",
                sli=ConsumerLag(max_messages=100_000, target=Target(topic=stack.topic, group=sink_group)),
                objective=0.5,
            ),
        ),
        schedule=(
            HangComponent("sinkc", at_s=1, duration_s=4),
            KillComponent(at_s=8, component="sinkc"),
        ),
        steady_state=SteadyState(warmup_s=1, timeout_s=90),
        expectations=Expectations(detect_within_s=60, recover_within_s=120),
        stabilisation_s=2.0,
        max_duration_s=240.0,
    )
    paused_before = sum(
        1 for e in events(stack) if e["event"] == "connector_paused" and e["connector"] == "sink"
    )
    report = Runner(scenario, stack=external, run_dir=tmp_path / "run", stack_kind="external").run()

    assert report.verdict is Verdict.PASSED, (report.reasons, [t.text for t in report.timeline])
    health = next(s for s in report.slos if s.name == "sinkc healthy")
    assert health.first_alert_s is not None  # the hang showed as a PAUSED connector
    # The faults reached the first stack's connector "sink" through its REST API.
    paused = [e for e in events(stack) if e["event"] == "connector_paused" and e["connector"] == "sink"]
    assert len(paused) > paused_before
    restarts = [e for e in events(stack) if e["event"] == "connector_restarted" and e["connector"] == "sink"]
    assert restarts, "KillComponent on a Connect cluster's connector is POST .../restart"
    _running(connect)

    # ResetOffsets on the component: Connect's offsets API under the connector's name.
    context = DrillContext(external, tmp_path, MonotonicClock())
    with pytest.raises(ConnectError, match=r"DELETE /connectors/sink/offsets .*doesn't support external"):
        run_step(ResetOffsets(component="sinkc"), context)
    _running(connect)  # resumed after the refusal, not left STOPPED
    connect.close()
