"""The stack's Prometheus metrics: what a team's monitoring would scrape from its platform,
served by ``prometheus_client`` on ``http://127.0.0.1:<port>/metrics``.

Three sources, read when Prometheus scrapes (a custom collector on a private registry):

- the supervisor: each platform process up, healthy (running with a fresh heartbeat),
  paused, and its restarts;
- Kafka: the sink's consumer-group lag per partition (high watermark − committed offset),
  read on a background thread so a scrape never waits on a slow or dead broker;
- the fault ledger (``<state dir>/fault-ledger.jsonl``), read as data: faults applied,
  reverted and outstanding;
- during a run, the journal of the run holding the stack's lease
  (``<run_dir>/journal.jsonl``), tailed incrementally: every SLI's latest value and
  good/bad state, sample counters per SLO (total and good, so PromQL computes error
  ratios and burn rates), datadrill's own alerts, phases, faults injected and reverted.

This module reads journals and the ledger as plain JSON lines: the stack process stays
below ``faults/`` and ``engine/``.

Example::

    metrics = StackMetrics(paths, supervisor=supervisor, lease=lambda: leases.current()["lease"],
                           lag=KafkaLagReader(bootstrap, group="datadrill-sink", topic="orders.v1"))
    server = MetricsServer(metrics)
    server.start()          # 'http://127.0.0.1:40123/metrics'
    server.stop()
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from datadrill.clock import Clock, MonotonicClock
from datadrill.jsonl import JsonlTail
from datadrill.platform.component import read_heartbeat

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from datadrill.paths import StatePaths
    from datadrill.platform.supervisor import ProcessStatus

log = logging.getLogger("datadrill.metrics")

# A heartbeat older than this means the process is not making progress (the same bound as
# `stack status`, backends/stackd/status.py; not imported: status imports the process).
HEARTBEAT_STALE_S = 5.0
# Kafka calls of one lag reading; the reading runs off the scrape's thread.
LAG_TIMEOUT_S = 1.0
# Labels of the run's series.
RUN_LABELS = ("scenario", "run_id")
# Kafka Connect's connector and task states (its REST API's status documents).
CONNECT_STATES = ("UNASSIGNED", "RUNNING", "PAUSED", "STOPPED", "FAILED", "RESTARTING")
# Connect status documents (GET /connectors/{name}/status), one per connector.
ConnectorStatuses = Callable[[], Iterable[Mapping[str, Any]]]


class SupervisorLike(Protocol):
    def status(self) -> list[ProcessStatus]: ...


# -- the run's journal ---------------------------------------------------------------------
@dataclass
class SLOState:
    objective: float | None = None
    value: float | None = None
    good: bool | None = None
    samples: int = 0
    good_samples: int = 0
    alert_fired: bool = False


@dataclass
class RunState:
    """What a run's journal said so far."""

    run_id: str
    scenario: str = ""
    elapsed_s: float = 0.0
    slos: dict[str, SLOState] = field(default_factory=dict)
    phases: dict[tuple[str, str], bool] = field(default_factory=dict)  # (name, kind) -> active
    injected: dict[str, int] = field(default_factory=dict)  # by fault kind
    reverted: dict[str, int] = field(default_factory=dict)
    active: dict[int, str] = field(default_factory=dict)  # fault id -> kind
    finished: bool = False

    def apply(self, record: Mapping[str, Any]) -> None:
        """One journal record; records of types this needs not are ignored."""
        kind = record.get("type")
        t = record.get("t")
        if isinstance(t, int | float):
            self.elapsed_s = max(self.elapsed_s, float(t))
        if kind == "run_started":
            self.scenario = str(record.get("scenario", ""))
            for slo in record.get("slos") or ():
                if isinstance(slo, dict) and "name" in slo:
                    state = self.slos.setdefault(str(slo["name"]), SLOState())
                    objective = slo.get("objective")
                    state.objective = float(objective) if isinstance(objective, int | float) else None
        elif kind == "sample":
            state = self.slos.setdefault(str(record.get("slo", "")), SLOState())
            value = record.get("value")
            state.value = float(value) if isinstance(value, int | float) else None
            state.good = bool(record.get("good"))
            state.samples += 1
            state.good_samples += 1 if state.good else 0
        elif kind == "alert_fired":
            self.slos.setdefault(str(record.get("slo", "")), SLOState()).alert_fired = True
        elif kind in ("phase_started", "phase_finished"):
            self.phases[(str(record.get("name", "")), str(record.get("kind", "")))] = kind == "phase_started"
        elif kind == "fault_injected":
            fault_kind = str(record.get("kind", ""))
            self.injected[fault_kind] = self.injected.get(fault_kind, 0) + 1
            self.active[int(record.get("fault_id", 0))] = fault_kind
        elif kind == "fault_reverted":
            fault_kind = self.active.pop(int(record.get("fault_id", 0)), str(record.get("kind", "")))
            self.reverted[fault_kind] = self.reverted.get(fault_kind, 0) + 1
        elif kind == "run_finished":
            self.finished = True


class RunFollower:
    """Follows the journal of the run that holds the lease, from its first line; a new
    run (another run id) starts over."""

    def __init__(self) -> None:
        self._tail: JsonlTail | None = None
        self.state: RunState | None = None

    def update(self, lease: Mapping[str, Any] | None) -> RunState | None:
        if lease is None or not lease.get("run_dir"):
            self._tail, self.state = None, None
            return None
        run_id = str(lease.get("run_id", ""))
        if self.state is None or self.state.run_id != run_id:
            path = Path(str(lease["run_dir"])) / "journal.jsonl"
            self._tail = JsonlTail(path, from_end=False, expected="a journal event")
            self.state = RunState(run_id=run_id, scenario=str(lease.get("scenario", "")))
        assert self._tail is not None
        try:
            for record in self._tail.read_new():
                self.state.apply(record)
        except Exception as exc:  # noqa: BLE001 - a damaged journal must not break the scrape
            log.warning("cannot read the run's journal: %s", exc)
        return self.state


# -- the fault ledger ----------------------------------------------------------------------
@dataclass
class LedgerState:
    applied: dict[str, int] = field(default_factory=dict)  # intents, by kind
    reverted: dict[str, int] = field(default_factory=dict)
    outstanding: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (kind, run_id)


class LedgerFollower:
    """Tails the stack's fault ledger (its record format: :mod:`datadrill.faults.ledger`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tail = JsonlTail(path, from_end=False, expected="a fault ledger record")
        self.state = LedgerState()

    def update(self) -> LedgerState:
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_size < self._tail.offset:
                self.state = LedgerState()  # the file was replaced: the tail reads it anew
        try:
            records = self._tail.read_new()
        except Exception as exc:  # noqa: BLE001 - a damaged ledger must not break the scrape
            log.warning("cannot read the fault ledger: %s", exc)
            return self.state
        for record in records:
            op, fault_id = record.get("op"), str(record.get("id"))
            if op == "intent":
                kind = str(record.get("kind", ""))
                self.state.applied[kind] = self.state.applied.get(kind, 0) + 1
                self.state.outstanding[fault_id] = (kind, str(record.get("run_id") or ""))
            elif op == "reverted" and fault_id in self.state.outstanding:
                kind = self.state.outstanding.pop(fault_id)[0]
                self.state.reverted[kind] = self.state.reverted.get(kind, 0) + 1
        return self.state


# -- Kafka lag -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LagReading:
    lag: dict[int, int]  # partition -> messages behind
    at_mono: float
    error: str | None = None


class KafkaLagReader:
    """The consumer group's lag per partition: one ``committed`` and one ``list_offsets``
    call per reading, each bounded by ``LAG_TIMEOUT_S``. :meth:`latest` never blocks: it
    returns the last reading and starts a new one on a background thread if none runs, so
    Prometheus's 1 s scrape timeout is never spent waiting on a broker that is down."""

    def __init__(self, bootstrap_servers: str, *, group: str, topic: str, clock: Clock | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group = group
        self.topic = topic
        self.clock = clock or MonotonicClock()
        self._lock = threading.Lock()
        self._reading: LagReading | None = None
        self._busy = False
        self._consumer: Any = None
        self._admin: Any = None
        self._partitions: list[int] = []
        self._closed = False

    def latest(self) -> LagReading | None:
        with self._lock:
            start = not self._busy and not self._closed
            self._busy = self._busy or start
            reading = self._reading
        if start:
            threading.Thread(target=self._refresh, name="metrics-lag", daemon=True).start()
        return reading

    def _refresh(self) -> None:
        try:
            reading = self.read()
        except Exception as exc:  # noqa: BLE001 - shown as the reading's error
            reading = LagReading({}, self.clock.monotonic(), f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._reading = reading
            self._busy = False

    def read(self) -> LagReading:
        from confluent_kafka import Consumer, TopicPartition
        from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

        if self._consumer is None:
            common: dict[str, str | int | float | bool] = {
                "bootstrap.servers": self.bootstrap_servers,
                "client.id": "datadrill-metrics",
            }
            self._consumer = Consumer({**common, "group.id": self.group, "enable.auto.commit": False})
            self._admin = AdminClient(common)
        if not self._partitions:
            metadata = self._consumer.list_topics(self.topic, timeout=LAG_TIMEOUT_S)
            self._partitions = sorted(metadata.topics[self.topic].partitions)
        partitions = [TopicPartition(self.topic, p) for p in self._partitions]
        committed = self._consumer.committed(partitions, timeout=LAG_TIMEOUT_S)
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        futures = self._admin.list_offsets(
            {TopicPartition(self.topic, p): latest for p in self._partitions},
            request_timeout=LAG_TIMEOUT_S,
        )
        high = {tp.partition: future.result(timeout=LAG_TIMEOUT_S).offset for tp, future in futures.items()}
        lag = {}
        for tp in committed:
            # A partition the group never committed counts from the start of the log.
            position = tp.offset if tp.offset >= 0 else 0
            lag[tp.partition] = max(0, high[tp.partition] - position)
        return LagReading(lag, self.clock.monotonic())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()


# -- the collector -------------------------------------------------------------------------
class StackMetrics(Collector):
    """Every metric of the stack, computed at scrape time. Names follow Prometheus's
    conventions: a ``datadrill_`` prefix, base units in the name, counters end in ``_total``."""

    def __init__(
        self,
        paths: StatePaths,
        *,
        supervisor: SupervisorLike | None,
        lease: Callable[[], Mapping[str, Any] | None],
        lag: KafkaLagReader | None = None,
        connectors: ConnectorStatuses | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.paths = paths
        self.connectors = connectors
        self.supervisor = supervisor
        self.lease = lease
        self.lag = lag
        self.clock = clock or MonotonicClock()
        self._run = RunFollower()
        self._ledger = LedgerFollower(paths.fault_ledger)
        # Scrapes may come concurrently (a threading server): the followers are not shared.
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            yield from self._components()
            yield from self._kafka()
            yield from self._connect()
            yield from self._faults(self._ledger.update())
            state = self._run.update(self.lease())
            if state is not None:
                yield from _run_metrics(state)

    def _components(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("datadrill_component_up", "1 while the process runs", labels=["component"])
        healthy = GaugeMetricFamily(
            "datadrill_component_healthy",
            "1 while the process runs and its heartbeat is fresh",
            labels=["component"],
        )
        paused = GaugeMetricFamily(
            "datadrill_component_paused",
            "1 while the process is paused (stopped on purpose)",
            labels=["component"],
        )
        restarts = CounterMetricFamily(
            "datadrill_component_restarts", "Restarts by the supervisor", labels=["component"]
        )
        now = self.clock.monotonic()
        for proc in self.supervisor.status() if self.supervisor is not None else []:
            beat = read_heartbeat(self.paths, proc.name)
            fresh = (
                beat is not None
                and beat.get("pid") == proc.pid
                and now - float(beat.get("mono", 0)) < HEARTBEAT_STALE_S
            )
            up.add_metric([proc.name], 1.0 if proc.running else 0.0)
            # A declared component beats no heart: its readiness check stands in for one.
            ok = proc.ready if proc.ready is not None else fresh
            healthy.add_metric([proc.name], 1.0 if proc.running and ok else 0.0)
            paused.add_metric([proc.name], 1.0 if proc.paused else 0.0)
            restarts.add_metric([proc.name], float(proc.restarts))
        yield from (up, healthy, paused, restarts)

    def _connect(self) -> Iterator[Metric]:
        """One series per Connect state, 1 for the current one (a state set): PromQL then
        alerts on ``datadrill_connector_task_state{state="FAILED"} == 1``."""
        if self.connectors is None:
            return
        connector = GaugeMetricFamily(
            "datadrill_connector_state", "1 for the connector's current state", labels=["connector", "state"]
        )
        task = GaugeMetricFamily(
            "datadrill_connector_task_state",
            "1 for the task's current state",
            labels=["connector", "task", "state"],
        )
        try:
            documents = list(self.connectors())
        except Exception as exc:  # noqa: BLE001 - a failing source must not break the scrape
            log.warning("cannot read connector states: %s", exc)
            documents = []
        for doc in documents:
            name = str(doc.get("name", ""))
            current = str((doc.get("connector") or {}).get("state", ""))
            for state in CONNECT_STATES:
                connector.add_metric([name, state], 1.0 if state == current else 0.0)
            for entry in doc.get("tasks") or ():
                for state in CONNECT_STATES:
                    task.add_metric(
                        [name, str(entry.get("id", 0)), state], 1.0 if state == entry.get("state") else 0.0
                    )
        yield from (connector, task)

    def _kafka(self) -> Iterator[Metric]:
        if self.lag is None:
            return
        reading = self.lag.latest()
        lag = GaugeMetricFamily(
            "datadrill_kafka_consumer_group_lag_messages",
            "High watermark minus the group's committed offset",
            labels=["group", "topic", "partition"],
        )
        age = GaugeMetricFamily(
            "datadrill_kafka_consumer_group_lag_age_seconds",
            "Age of the lag reading (read in the background, at most once per scrape)",
            labels=["group", "topic"],
        )
        ok = GaugeMetricFamily(
            "datadrill_kafka_consumer_group_lag_read_ok",
            "1 if the last lag reading succeeded",
            labels=["group", "topic"],
        )
        if reading is not None:
            for partition, messages in sorted(reading.lag.items()):
                lag.add_metric([self.lag.group, self.lag.topic, str(partition)], float(messages))
            age.add_metric([self.lag.group, self.lag.topic], self.clock.monotonic() - reading.at_mono)
            ok.add_metric([self.lag.group, self.lag.topic], 0.0 if reading.error else 1.0)
        yield from (lag, age, ok)

    def _faults(self, ledger: LedgerState) -> Iterator[Metric]:
        applied = CounterMetricFamily(
            "datadrill_faults_applied", "Faults written to the stack's fault ledger", labels=["kind"]
        )
        reverted = CounterMetricFamily(
            "datadrill_faults_reverted", "Faults the ledger records as reverted", labels=["kind"]
        )
        outstanding = GaugeMetricFamily(
            "datadrill_faults_outstanding", "Faults applied and not yet reverted", labels=["kind", "run_id"]
        )
        for kind, count in sorted(ledger.applied.items()):
            applied.add_metric([kind], float(count))
            reverted.add_metric([kind], float(ledger.reverted.get(kind, 0)))
        by: dict[tuple[str, str], int] = {}
        for kind, run_id in ledger.outstanding.values():
            by[(kind, run_id)] = by.get((kind, run_id), 0) + 1
        for (kind, run_id), count in sorted(by.items()):
            outstanding.add_metric([kind, run_id], float(count))
        yield from (applied, reverted, outstanding)


def _run_metrics(state: RunState) -> Iterator[Metric]:
    run = [state.scenario, state.run_id]
    info = GaugeMetricFamily("datadrill_run_info", "The run holding the stack", labels=list(RUN_LABELS))
    info.add_metric(run, 1.0)
    elapsed = GaugeMetricFamily(
        "datadrill_run_elapsed_seconds",
        "Seconds since the run started (its journal)",
        labels=list(RUN_LABELS),
    )
    elapsed.add_metric(run, state.elapsed_s)
    slo_labels = ["slo", *RUN_LABELS]
    value = GaugeMetricFamily(
        "datadrill_sli_value", "The SLI's latest value (in its unit)", labels=slo_labels
    )
    good = GaugeMetricFamily("datadrill_sli_good", "1 if the SLI's latest sample was good", labels=slo_labels)
    objective = GaugeMetricFamily(
        "datadrill_slo_objective_ratio", "The fraction of samples that must be good", labels=slo_labels
    )
    samples = CounterMetricFamily("datadrill_slo_samples", "Samples taken of the SLI", labels=slo_labels)
    good_samples = CounterMetricFamily(
        "datadrill_slo_good_samples", "Samples of the SLI that were good", labels=slo_labels
    )
    fired = GaugeMetricFamily(
        "datadrill_alert_fired", "1 once datadrill's own alert rule for the SLO fired", labels=slo_labels
    )
    for name, slo in sorted(state.slos.items()):
        labels = [name, *run]
        if slo.value is not None:
            value.add_metric(labels, slo.value)
        if slo.good is not None:
            good.add_metric(labels, 1.0 if slo.good else 0.0)
        if slo.objective is not None:
            objective.add_metric(labels, slo.objective)
        samples.add_metric(labels, float(slo.samples))
        good_samples.add_metric(labels, float(slo.good_samples))
        fired.add_metric(labels, 1.0 if slo.alert_fired else 0.0)
    phase = GaugeMetricFamily(
        "datadrill_run_phase_active", "1 while the phase runs", labels=["phase", "kind", *RUN_LABELS]
    )
    for (name, kind), running in sorted(state.phases.items()):
        phase.add_metric([name, kind, *run], 1.0 if running else 0.0)
    injected = CounterMetricFamily(
        "datadrill_run_faults_injected", "Faults the run injected", labels=["kind", *RUN_LABELS]
    )
    reverted = CounterMetricFamily(
        "datadrill_run_faults_reverted", "Faults the run reverted", labels=["kind", *RUN_LABELS]
    )
    active = GaugeMetricFamily(
        "datadrill_run_faults_active", "Faults of the run in effect now", labels=["kind", *RUN_LABELS]
    )
    for kind in sorted(set(state.injected) | set(state.reverted)):
        injected.add_metric([kind, *run], float(state.injected.get(kind, 0)))
        reverted.add_metric([kind, *run], float(state.reverted.get(kind, 0)))
        active.add_metric([kind, *run], float(sum(1 for k in state.active.values() if k == kind)))
    yield from (
        info,
        elapsed,
        value,
        good,
        objective,
        samples,
        good_samples,
        fired,
        phase,
        injected,
        reverted,
        active,
    )


# -- the server ----------------------------------------------------------------------------
class MetricsServer:
    """``/metrics`` on 127.0.0.1 (a free port unless one is given), prometheus_client's
    own WSGI server on a private registry."""

    def __init__(self, *collectors: Collector, port: int = 0) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self.registry.register(collector)
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the metrics server is not started"
        return f"http://127.0.0.1:{self._server.server_port}/metrics"

    def start(self) -> str:
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        return self.url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
