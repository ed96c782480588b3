"""The stack's Prometheus metrics (datadrill.interfaces.metrics), fed from files: a run's
journal, the fault ledger, a supervisor's status; read back through prometheus_client's
own parser, over HTTP from the metrics server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from datadrill.interfaces.metrics import LagReading, MetricsServer, StackMetrics
from datadrill.paths import StatePaths
from datadrill.platform.supervisor import ProcessStatus


class FakeSupervisor:
    def __init__(self, *procs: ProcessStatus) -> None:
        self.procs = list(procs)

    def status(self) -> list[ProcessStatus]:
        return self.procs


class FakeLag:
    group, topic = "datadrill-sink", "orders.v1"

    def __init__(self, reading: LagReading | None) -> None:
        self.reading = reading

    def latest(self) -> LagReading | None:
        return self.reading


def _append(path: Path, *records: dict[str, Any]) -> None:
    with path.open("a") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


def _scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(server.url, timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


RUN = {"scenario": "metadata-loss", "run_id": "r1"}


def _run_started(t: float = 0.0) -> dict[str, Any]:
    return {
        "type": "run_started",
        "t": t,
        "scenario": "metadata-loss",
        "run_id": "r1",
        "slos": [
            {
                "name": "mart queries succeed",
                "statement": "s",
                "kind": "query_success",
                "unit": "ok",
                "objective": 0.999,
                "alert": "bad for 2 s",
            },
        ],
    }


def test_journal_of_the_lease_holder_is_followed_incrementally(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    paths.root.mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    journal = run_dir / "journal.jsonl"
    lease: dict[str, Any] | None = {"run_id": "r1", "scenario": "metadata-loss", "run_dir": str(run_dir)}
    supervisor = FakeSupervisor(
        ProcessStatus("sink", 42, True, False, 3, "exit 1", 10.0),
        ProcessStatus("relay", None, False, True, 0, None, None),
    )
    metrics = StackMetrics(
        paths,
        supervisor=supervisor,
        lease=lambda: lease,
        lag=FakeLag(LagReading({0: 5, 1: 0}, at_mono=0.0)),  # type: ignore[arg-type]
    )
    server = MetricsServer(metrics)
    assert server.start().startswith("http://127.0.0.1:")
    try:
        _append(
            journal,
            _run_started(),
            {"type": "phase_started", "t": 0.1, "name": "steady state", "kind": "steady_state"},
            {"type": "sample", "t": 1.0, "slo": "mart queries succeed", "good": True, "value": 1.0},
        )
        first = _scrape(server)
        labels = {"slo": "mart queries succeed", **RUN}
        assert _value(first, "datadrill_sli_good", **labels) == 1.0
        assert _value(first, "datadrill_slo_samples_total", **labels) == 1.0
        assert _value(first, "datadrill_slo_objective_ratio", **labels) == 0.999
        assert (
            _value(first, "datadrill_run_phase_active", phase="steady state", kind="steady_state", **RUN) == 1
        )
        assert _value(first, "datadrill_component_restarts_total", component="sink") == 3.0
        assert _value(first, "datadrill_component_up", component="relay") == 0.0
        assert _value(first, "datadrill_component_paused", component="relay") == 1.0
        assert _value(first, "datadrill_component_healthy", component="sink") == 0.0  # no heartbeat
        assert (
            _value(
                first,
                "datadrill_kafka_consumer_group_lag_messages",
                group="datadrill-sink",
                topic="orders.v1",
                partition="0",
            )
            == 5.0
        )

        # Only what was appended since is read; a half-written line waits for its end.
        _append(
            journal,
            {"type": "phase_finished", "t": 4.0, "name": "steady state", "kind": "steady_state"},
            {
                "type": "fault_injected",
                "t": 5.0,
                "fault_id": 1,
                "kind": "metadata.catalog_entry",
                "description": "delete",
            },
            {"type": "sample", "t": 6.0, "slo": "mart queries succeed", "good": False, "value": 0.0},
            {"type": "alert_fired", "t": 8.0, "slo": "mart queries succeed", "rule": "bad for 2 s"},
        )
        with journal.open("a") as out:
            out.write('{"type": "sample", "t": 9.0, "slo": "mart qu')
        second = _scrape(server)
        assert _value(second, "datadrill_sli_good", **labels) == 0.0
        assert _value(second, "datadrill_slo_samples_total", **labels) == 2.0
        assert _value(second, "datadrill_slo_good_samples_total", **labels) == 1.0
        assert _value(second, "datadrill_alert_fired", **labels) == 1.0
        assert _value(second, "datadrill_run_elapsed_seconds", **RUN) == 8.0
        assert _value(second, "datadrill_run_faults_active", kind="metadata.catalog_entry", **RUN) == 1.0
        assert (
            _value(second, "datadrill_run_phase_active", phase="steady state", kind="steady_state", **RUN)
            == 0
        )

        # The lease released: the run's series are gone (Prometheus marks them stale).
        lease = None
        third = _scrape(server)
        assert _value(third, "datadrill_sli_good", **labels) is None
        assert _value(third, "datadrill_component_up", component="sink") == 1.0
    finally:
        server.stop()


def test_a_new_run_starts_its_counters_over(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    paths.root.mkdir()
    runs = []
    for run_id in ("r1", "r2"):
        run_dir = tmp_path / run_id
        run_dir.mkdir()
        _append(
            run_dir / "journal.jsonl",
            {**_run_started(), "run_id": run_id},
            {"type": "sample", "t": 1.0, "slo": "mart queries succeed", "good": False},
        )
        runs.append({"run_id": run_id, "scenario": "metadata-loss", "run_dir": str(run_dir)})
    holder = [runs[0]]
    metrics = StackMetrics(paths, supervisor=None, lease=lambda: holder[0])
    server = MetricsServer(metrics)
    server.start()
    try:
        labels = {"slo": "mart queries succeed", "scenario": "metadata-loss"}
        assert _value(_scrape(server), "datadrill_slo_samples_total", run_id="r1", **labels) == 1.0
        assert _value(_scrape(server), "datadrill_slo_samples_total", run_id="r1", **labels) == 1.0
        holder[0] = runs[1]
        samples = _scrape(server)
        assert _value(samples, "datadrill_slo_samples_total", run_id="r2", **labels) == 1.0
        assert _value(samples, "datadrill_slo_samples_total", run_id="r1", **labels) is None
        # A sample without a value (the SLI could not be measured): state, no value.
        assert _value(samples, "datadrill_sli_value", run_id="r2", **labels) is None
        assert _value(samples, "datadrill_sli_good", run_id="r2", **labels) == 0.0
    finally:
        server.stop()


def test_fault_ledger_applied_reverted_outstanding(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    paths.root.mkdir()
    _append(
        paths.fault_ledger,
        {
            "op": "intent",
            "id": "a",
            "kind": "kafka.broker_loss",
            "description": "",
            "data": {},
            "run_id": "r1",
        },
        {"op": "applied", "id": "a", "data": {}},
        {
            "op": "intent",
            "id": "b",
            "kind": "kafka.broker_loss",
            "description": "",
            "data": {},
            "run_id": "r1",
        },
        {"op": "reverted", "id": "a", "note": "ok"},
    )
    server = MetricsServer(StackMetrics(paths, supervisor=None, lease=lambda: None))
    server.start()
    try:
        samples = _scrape(server)
        assert _value(samples, "datadrill_faults_applied_total", kind="kafka.broker_loss") == 2.0
        assert _value(samples, "datadrill_faults_reverted_total", kind="kafka.broker_loss") == 1.0
        assert _value(samples, "datadrill_faults_outstanding", kind="kafka.broker_loss", run_id="r1") == 1.0
        _append(paths.fault_ledger, {"op": "reverted", "id": "b", "note": "ok"})
        samples = _scrape(server)
        assert _value(samples, "datadrill_faults_outstanding", kind="kafka.broker_loss", run_id="r1") is None
        assert _value(samples, "datadrill_faults_reverted_total", kind="kafka.broker_loss") == 2.0
    finally:
        server.stop()


def test_connector_and_task_states_from_connect_status_documents(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / "state")
    paths.root.mkdir()
    documents = [
        {
            "name": "sink",
            "connector": {"state": "RUNNING"},
            "tasks": [{"id": 0, "state": "FAILED", "trace": "x"}],
        },
        {"name": "relay", "connector": {"state": "STOPPED"}, "tasks": []},
    ]
    server = MetricsServer(
        StackMetrics(paths, supervisor=None, lease=lambda: None, connectors=lambda: documents)
    )
    server.start()
    try:
        samples = _scrape(server)
        task = "datadrill_connector_task_state"
        assert _value(samples, task, connector="sink", task="0", state="FAILED") == 1.0
        assert _value(samples, task, connector="sink", task="0", state="RUNNING") == 0.0
        assert _value(samples, "datadrill_connector_state", connector="sink", state="RUNNING") == 1.0
        assert _value(samples, "datadrill_connector_state", connector="relay", state="STOPPED") == 1.0
        assert _value(samples, task, connector="relay", task="0", state="RUNNING") is None
    finally:
        server.stop()
