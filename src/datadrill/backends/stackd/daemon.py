"""The stack process: owns the mock Kafka cluster, supervises the platform, serves control.

Started in the background by ``datadrill stack up`` (see :mod:`manager`), one per state
directory, holding ``stack.lock`` for its whole life. It writes ``stack.json`` (endpoints,
pid, control URL) once every component is started, and removes it on a clean stop.

Run by hand for debugging::

    python -m datadrill.backends.stackd.daemon --state-dir .datadrill
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from datadrill.backends.kafka.external import ExternalKafka
from datadrill.backends.kafka.mock import MockCluster
from datadrill.backends.stackd.control import ControlServer
from datadrill.backends.stackd.election import LeaderElector
from datadrill.config import StackConfig, read_running_config
from datadrill.engine.clock import MonotonicClock
from datadrill.errors import ControlError
from datadrill.netfaults import FaultProxyServer, ToxiproxyAdmin
from datadrill.paths import StatePaths
from datadrill.platform import source_db
from datadrill.platform.component import read_heartbeat, write_json_atomic
from datadrill.platform.query_service import QueryService
from datadrill.platform.supervisor import EventLog, Supervisor

log = logging.getLogger("datadrill.stack")

COMPONENTS = ("workload", "relay", "sink")
HEARTBEAT_STALE_S = 5.0
# Exit code when another stack process already holds this state directory.
EXIT_ALREADY_RUNNING = 3


class StackProcess:
    def __init__(self, paths: StatePaths, config: StackConfig) -> None:
        self.paths = paths
        self.config = config
        self.clock = MonotonicClock()
        self.events = EventLog(paths.events_file)
        self.stop_requested = threading.Event()
        self.started_mono = self.clock.monotonic()
        self.started_wall = self.clock.wall()
        self._lock = threading.Lock()
        self.cluster: MockCluster | None = None
        self.elector: LeaderElector | None = None
        self.supervisor: Supervisor | None = None
        self.control: ControlServer | None = None
        self.catalog_uri = ""
        self.external_kafka: ExternalKafka | None = None
        self.fault_proxy: FaultProxyServer | None = None
        self.query_service: QueryService | None = None
        self.query_url = ""
        # Proxies the fault proxy runs in front of the stack's network paths, by name.
        self.proxies: dict[str, dict[str, str]] = {}

    # -- start-up ------------------------------------------------------------------------
    def start(self) -> None:
        if self.config.external is None:
            self._start_mock_kafka()
        else:
            self._start_external_kafka()
        source_db.connect(self.paths.source_db).close()
        if not self.paths.workload_file.exists():
            write_json_atomic(self.paths.workload_file, self.config.workload.model_dump())

        from datadrill.platform.catalog import catalog_uri, network_address

        # The harness's own path to the catalog (reverts, checks); the platform's path may
        # go through a proxy (catalog_via), so that network faults hit the platform only.
        self.catalog_uri = catalog_uri(self.config, self.paths)
        if self.config.external is None:
            catalog_via = self._start_fault_proxy()
        else:
            self._external_fault_paths()
            catalog_via = None
            platform_uri = network_address(self.config.external.catalog_uri)
            if platform_uri != network_address(self.catalog_uri):
                catalog_via = platform_uri

        # Start the platform before the catalog is ready: the processes spend their first
        # second importing, and the sink waits for the table anyway.
        self._start_platform(catalog_via)

        from datadrill.platform.catalog import ensure_orders_table, open_stack_catalog

        ensure_orders_table(
            open_stack_catalog(self.config, self.paths, init_tables=True), self.config.catalog.table
        )
        self._start_queries(catalog_via)
        self.control = ControlServer(self._routes())
        self.control.start()
        self._write_state()
        self._event("stack_started", control=self.control.url)

    def _start_mock_kafka(self) -> None:
        kafka = self.config.kafka
        self.cluster = MockCluster.start(brokers=kafka.brokers)
        self.cluster.set_group_initial_rebalance_delay(kafka.group_initial_rebalance_delay_ms)
        self.elector = LeaderElector(
            brokers=self.cluster.broker_ids, delay_s=kafka.election_delay_s, clock=self.clock
        )
        self._create_topic(kafka.topic, kafka.partitions, kafka.replication_factor)
        # Where the relay routes records that break their data contract.
        self._create_topic(f"{kafka.topic}.dlq", 1, kafka.replication_factor)
        self._event(
            "kafka_started", bootstrap=self.cluster.bootstrap_servers, library=self.cluster.library.path
        )

    def _start_external_kafka(self) -> None:
        from datadrill.backends.kafka.external import ContainerControl, ExternalKafka

        external = self.config.external
        assert external is not None
        kafka = self.config.kafka
        containers = ContainerControl(external.compose_project) if external.compose_project else None
        self.external_kafka = ExternalKafka(
            external.bootstrap_servers,
            brokers=external.brokers,
            toxiproxy_url=external.toxiproxy_url,
            containers=containers,
        )
        self.external_kafka.create_topic(
            kafka.topic, partitions=kafka.partitions, replication_factor=kafka.replication_factor
        )
        self.external_kafka.create_topic(
            f"{kafka.topic}.dlq", partitions=1, replication_factor=kafka.replication_factor
        )
        self._event("kafka_attached", bootstrap=external.bootstrap_servers)

    @property
    def bootstrap_servers(self) -> str:
        if self.external_kafka is not None:
            return self.external_kafka.bootstrap_servers
        assert self.cluster is not None
        return self.cluster.bootstrap_servers

    def _start_fault_proxy(self) -> str | None:
        """datadrill's own fault proxy (Toxiproxy's API) on the stack's network paths, so
        network faults hit the platform the way a bad link would. A SQLite catalog is a
        file and has no network path; a PostgreSQL one is reached through "catalog"."""
        from datadrill.platform.catalog import network_address

        self.fault_proxy = FaultProxyServer(allow_hosts=self.config.safety.allow_hosts)
        admin = ToxiproxyAdmin(self.fault_proxy.start())
        database = network_address(self.catalog_uri)
        if database is None:
            return None
        catalog_via = admin.create_proxy("catalog", "127.0.0.1:0", database).listen
        self.proxies["catalog"] = {"listen": catalog_via, "upstream": database}
        return catalog_via

    def _external_fault_paths(self) -> None:
        """The proxies of the cluster's Toxiproxy, if it has one (kafka-N, catalog, query)."""
        assert self.config.external is not None
        url = self.config.external.toxiproxy_url
        if url:
            for name, info in ToxiproxyAdmin(url).proxies().items():
                self.proxies[name] = {"listen": info.listen, "upstream": info.upstream}

    def _start_platform(self, catalog_via: str | None) -> None:
        state_dir = str(self.paths.root.resolve())
        bootstrap = self.bootstrap_servers
        python = sys.executable
        self.supervisor = Supervisor(
            self.paths,
            events=self.events,
            clock=self.clock,
            backoff_initial_s=self.config.supervisor.backoff_initial_s,
            backoff_max_s=self.config.supervisor.backoff_max_s,
        )
        self.supervisor.add(
            "workload", [python, "-m", "datadrill.platform.workload", "--state-dir", state_dir]
        )
        self.supervisor.add(
            "relay",
            [python, "-m", "datadrill.platform.relay", "--state-dir", state_dir, "--bootstrap", bootstrap],
        )
        sink_argv = [
            python,
            "-m",
            "datadrill.platform.sink",
            "--state-dir",
            state_dir,
            "--bootstrap",
            bootstrap,
        ]
        self.supervisor.add("sink", sink_argv + (["--catalog-via", catalog_via] if catalog_via else []))
        self.supervisor.start_all()

    def _start_queries(self, catalog_via: str | None) -> None:
        """Dashboards' queries: Trino on an external cluster that has one; otherwise the
        DuckDB query service, reached only through the "query" proxy of our fault proxy."""
        from datadrill.platform.catalog import via_address, warehouse_location

        external = self.config.external
        if external is not None and external.trino_url:
            self.query_url = external.trino_url.rstrip("/")
            return
        platform_uri = via_address(self.catalog_uri, catalog_via) if catalog_via else self.catalog_uri
        self.query_service = QueryService(
            platform_uri,
            warehouse_location(self.config, self.paths),
            table=self.config.catalog.table,
            properties=external.s3_properties() if external is not None else None,
        )
        service_address = self.query_service.start().removeprefix("http://")
        if self.fault_proxy is None:
            self.query_url = f"http://{service_address}"
            return
        admin = ToxiproxyAdmin(self.fault_proxy.url)
        query_listen = admin.create_proxy("query", "127.0.0.1:0", service_address).listen
        self.proxies["query"] = {"listen": query_listen, "upstream": service_address}
        self.query_url = f"http://{query_listen}"

    def _create_topic(self, topic: str, partitions: int, replication_factor: int) -> None:
        assert self.cluster is not None and self.elector is not None
        self.cluster.create_topic(topic, partitions=partitions, replication_factor=replication_factor)
        # Spread leaders ourselves so we always know who leads what.
        for move in self.elector.add_topic(
            topic, partitions=partitions, replication_factor=replication_factor
        ):
            self.cluster.set_partition_leader(move.topic, move.partition, move.leader)

    @property
    def broker_addresses(self) -> dict[int, str]:
        if self.external_kafka is not None:
            return self.external_kafka.broker_addresses
        assert self.cluster is not None
        return self.cluster.broker_addresses

    def _write_state(self) -> None:
        assert self.control is not None
        from datadrill.platform.catalog import describe_uri, warehouse_location

        external = self.config.external
        write_json_atomic(
            self.paths.state_file,
            {
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "state_dir": str(self.paths.root.resolve()),
                "control_url": self.control.url,
                "backend": "embedded" if external is None else "external",
                "bootstrap_servers": self.bootstrap_servers,
                "brokers": {str(k): v for k, v in self.broker_addresses.items()},
                "topic": self.config.kafka.topic,
                "catalog_uri": describe_uri(self.catalog_uri),
                "fault_proxy_url": self.fault_proxy_url or None,
                "proxies": self.proxies,
                "query_url": self.query_url,
                "query_engine": "trino" if external is not None and external.trino_url else "duckdb",
                "table": self.config.catalog.table,
                "warehouse": warehouse_location(self.config, self.paths),
                "source_db": str(self.paths.source_db.resolve()),
                "started_wall": self.started_wall,
                "librdkafka": self.cluster.library.path if self.cluster else None,
            },
        )

    # -- running -------------------------------------------------------------------------
    def run_forever(self) -> None:
        assert self.supervisor is not None
        while not self.stop_requested.wait(0.05):
            # Only the mock cluster needs us to elect leaders; real brokers elect their own.
            if self.elector is not None and self.cluster is not None:
                with self._lock:
                    for move in self.elector.due_moves():
                        self.cluster.set_partition_leader(move.topic, move.partition, move.leader)
                        self._event(
                            "leader_elected", topic=move.topic, partition=move.partition, leader=move.leader
                        )
            self.supervisor.poll()

    def shutdown(self) -> None:
        self._event("stack_stopping")
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.control is not None:
            self.control.stop()
        if self.query_service is not None:
            self.query_service.stop()
        if self.fault_proxy is not None:
            self.fault_proxy.stop()
        if self.cluster is not None:
            self.cluster.close()
        if self.external_kafka is not None:
            self.external_kafka.close()
        self.paths.state_file.unlink(missing_ok=True)
        self._event("stack_stopped")

    def _event(self, name: str, **fields: Any) -> None:
        self.events.append(
            {"event": name, "mono": self.clock.monotonic(), "wall": self.clock.wall(), **fields}
        )

    # -- control routes ------------------------------------------------------------------
    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/health", lambda p, b: {"ok": True, "pid": os.getpid()}),
            ("GET", "/status", lambda p, b: self.status()),
            ("POST", "/kafka/topics", self._h_topic),
            ("POST", r"/kafka/brokers/(?P<broker>\d+)/down", self._h_broker_down),
            ("POST", r"/kafka/brokers/(?P<broker>\d+)/up", self._h_broker_up),
            ("POST", r"/kafka/brokers/(?P<broker>-?\d+)/rtt", self._h_rtt),
            ("POST", "/kafka/request-errors", self._h_push_errors),
            ("DELETE", r"/kafka/request-errors/(?P<api_key>\d+)", self._h_clear_errors),
            ("POST", "/kafka/partitions/leader", self._h_leader),
            ("GET", "/kafka/leaders", lambda p, b: self._leaders()),
            ("POST", r"/components/(?P<name>[a-z]+)/signal", self._h_signal),
            ("POST", r"/components/(?P<name>[a-z]+)/pause", self._h_pause),
            ("POST", r"/components/(?P<name>[a-z]+)/resume", self._h_resume),
            ("POST", "/workload", self._h_workload),
            ("POST", "/shutdown", self._h_shutdown),
        ]

    def _mock(self, what: str) -> MockCluster:
        """The mock cluster, for faults that only it can inject."""
        if self.external_kafka is not None:
            raise self.external_kafka.unsupported(what)
        assert self.cluster is not None
        return self.cluster

    def _leaders(self) -> dict[str, Any]:
        if self.elector is None:
            raise ControlError("leaders are tracked for the mock cluster only; ask the real cluster")
        return {
            "leaders": [
                {"topic": t, "partition": p, "leader": leader}
                for (t, p), leader in sorted(self.elector.leaders().items())
            ],
            "down": list(self.elector.down_brokers()),
        }

    def _h_topic(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        name = str(body["name"])
        partitions = int(body.get("partitions", 1))
        rf = int(body.get("replication_factor", min(3, self.config.kafka.brokers)))
        with self._lock:
            if self.external_kafka is not None:
                self.external_kafka.create_topic(name, partitions=partitions, replication_factor=rf)
            else:
                self._create_topic(name, partitions, rf)
        self._event("topic_created", topic=name, partitions=partitions, replication_factor=rf)
        return {"topic": name, "partitions": partitions, "replication_factor": rf}

    def _h_broker_down(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        broker = int(params["broker"])
        if self.external_kafka is not None:
            self.external_kafka.broker_down(broker)
            how = self.external_kafka.how_brokers_fail()
            self._event("broker_down", broker=broker, how=how)
            return {"broker": broker, "up": False, "how": how}
        assert self.cluster is not None and self.elector is not None
        with self._lock:
            self.cluster.broker_down(broker)
            self.elector.broker_down(broker)
        self._event("broker_down", broker=broker, election_delay_s=self.elector.delay_s)
        return {"broker": broker, "up": False, "election_delay_s": self.elector.delay_s}

    def _h_broker_up(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        broker = int(params["broker"])
        if self.external_kafka is not None:
            self.external_kafka.broker_up(broker)
            self._event("broker_up", broker=broker)
            return {"broker": broker, "up": True}
        assert self.cluster is not None and self.elector is not None
        with self._lock:
            self.cluster.broker_up(broker)
            for move in self.elector.broker_up(broker):
                self.cluster.set_partition_leader(move.topic, move.partition, move.leader)
        self._event("broker_up", broker=broker)
        return {"broker": broker, "up": True}

    def _h_rtt(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        broker, rtt = int(params["broker"]), int(body["rtt_ms"])
        if rtt < 0:
            raise ControlError(f"rtt_ms must be >= 0, got {rtt}")
        if self.external_kafka is not None:
            self.external_kafka.set_broker_rtt(broker, rtt)
        else:
            assert self.cluster is not None
            self.cluster.set_broker_rtt(broker, rtt)
        self._event("broker_rtt", broker=broker, rtt_ms=rtt)
        return {"broker": broker, "rtt_ms": rtt}

    def _h_push_errors(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        cluster = self._mock("queued Kafka request errors")
        api_key = int(body["api_key"])
        errors = [int(e) for e in body["errors"]]
        broker = body.get("broker_id")
        if broker is None:
            cluster.push_request_errors(api_key, errors)
        else:
            rtts = [int(r) for r in body.get("rtts_ms", [0] * len(errors))]
            if len(rtts) != len(errors):
                raise ControlError("rtts_ms must have one entry per error")
            cluster.push_broker_request_errors(int(broker), api_key, list(zip(errors, rtts, strict=True)))
        self._event("request_errors_pushed", api_key=api_key, errors=errors, broker=broker)
        return {"api_key": api_key, "count": len(errors)}

    def _h_clear_errors(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        cluster = self._mock("queued Kafka request errors")
        api_key = int(params["api_key"])
        cluster.clear_request_errors(api_key)
        self._event("request_errors_cleared", api_key=api_key)
        return {"api_key": api_key, "cleared": True}

    def _h_leader(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        cluster = self._mock("moving a partition leader by hand")
        assert self.elector is not None
        topic, partition, broker = str(body["topic"]), int(body["partition"]), int(body["broker_id"])
        with self._lock:
            cluster.set_partition_leader(topic, partition, broker)
            self.elector.record_leader(topic, partition, broker)
        self._event("leader_moved", topic=topic, partition=partition, leader=broker)
        return {"topic": topic, "partition": partition, "leader": broker}

    def _h_signal(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        assert self.supervisor is not None
        name = params["name"]
        sig_name = str(body.get("signal", "SIGKILL"))
        try:
            signum = signal.Signals[sig_name]
        except KeyError:
            raise ControlError(f"unknown signal {sig_name!r}; use e.g. SIGKILL or SIGTERM") from None
        pid = self.supervisor.signal(name, signum)
        self._event("component_signalled", component=name, signal=sig_name, pid=pid)
        return {"component": name, "signal": sig_name, "pid": pid}

    def _h_pause(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        assert self.supervisor is not None
        self.supervisor.pause(params["name"])
        self._event("component_paused", component=params["name"])
        return {"component": params["name"], "paused": True}

    def _h_resume(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        assert self.supervisor is not None
        pid = self.supervisor.resume(params["name"])
        self._event("component_resumed", component=params["name"], pid=pid)
        return {"component": params["name"], "paused": False, "pid": pid}

    def _h_workload(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        from datadrill.config import WorkloadConfig

        current = WorkloadConfig.model_validate_json(self.paths.workload_file.read_text(encoding="utf-8"))
        updated = WorkloadConfig.model_validate({**current.model_dump(), **body})
        write_json_atomic(self.paths.workload_file, updated.model_dump())
        self._event("workload_changed", **updated.model_dump())
        return updated.model_dump()

    def _h_shutdown(self, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self.stop_requested.set()
        return {"stopping": True}

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        assert self.supervisor is not None
        components: list[dict[str, Any]] = []
        components.extend(self._kafka_status())
        components.extend(self._catalog_status())
        if self.fault_proxy is not None or self.proxies:
            components.append(self._fault_proxy_status())
        components.append(self._source_status())
        components.extend(self._process_status())
        assert self.control is not None
        components.append(
            {
                "name": "control",
                "endpoint": self.control.url,
                "healthy": True,
                "detail": f"stack pid {os.getpid()}",
            }
        )
        return {
            "healthy": all(c["healthy"] for c in components),
            "state_dir": str(self.paths.root.resolve()),
            "uptime_s": round(self.clock.monotonic() - self.started_mono, 3),
            "components": components,
        }

    def _kafka_status(self) -> list[dict[str, Any]]:
        from confluent_kafka.admin import AdminClient

        leaders = self.elector.leaders() if self.elector is not None else {}
        topic = self.config.kafka.topic
        out = []
        try:
            metadata = AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=3)
            seen = len(metadata.brokers)
            partitions = len(metadata.topics[topic].partitions) if topic in metadata.topics else 0
            ok = partitions == self.config.kafka.partitions
            detail = f"{seen} brokers in metadata, {topic}: {partitions} partitions"
        except Exception as exc:  # noqa: BLE001 - any failure is reported as unhealthy
            ok, detail = False, f"metadata request failed: {exc}"
        out.append({"name": "kafka", "endpoint": self.bootstrap_servers, "healthy": ok, "detail": detail})
        if self.external_kafka is not None:
            for broker, address in self.broker_addresses.items():
                up = self.external_kafka.is_up(broker)
                detail = f"{'up' if up else 'DOWN'}; broker loss: {self.external_kafka.how_brokers_fail()}"
                out.append(
                    {"name": f"kafka-broker-{broker}", "endpoint": address, "healthy": up, "detail": detail}
                )
            return out
        assert self.cluster is not None and self.elector is not None
        for broker, address in self.cluster.broker_addresses.items():
            up = self.elector.is_up(broker)
            led = sum(1 for leader in leaders.values() if leader == broker)
            out.append(
                {
                    "name": f"kafka-broker-{broker}",
                    "endpoint": address,
                    "healthy": up,
                    "detail": f"{'up' if up else 'DOWN'}, leads {led} partitions",
                }
            )
        return out

    def _catalog_status(self) -> list[dict[str, Any]]:
        from datadrill.platform.catalog import describe_uri, open_stack_catalog

        table = self.config.catalog.table
        catalog_entry: dict[str, Any] = {"name": "catalog", "endpoint": describe_uri(self.catalog_uri)}
        # The engine's own address (clients get the proxy's, in stack.json's query_url).
        engine_url = self.query_service.url if self.query_service is not None else self.query_url
        query_entry: dict[str, Any] = {"name": "query-engine", "endpoint": engine_url}
        try:
            catalog = open_stack_catalog(self.config, self.paths)
            loaded = catalog.load_table(table)
            snapshot = loaded.current_snapshot()
            catalog_entry.update(
                healthy=True, detail=f"{table} snapshot {snapshot.snapshot_id if snapshot else 'none'}"
            )
        except Exception as exc:  # noqa: BLE001 - reported as unhealthy
            catalog_entry.update(healthy=False, detail=f"cannot load {table}: {exc}")
            query_entry.update(healthy=False, detail="catalog unavailable")
            return [catalog_entry, query_entry]
        if self.query_service is None:
            return [catalog_entry, self._trino_status(query_entry)]
        try:
            # Straight to the service, not through its proxy: a network fault on the query
            # path is the drill's business, not a sign that the stack is broken.
            _, rows = self.query_service.execute(f"SELECT count(*) FROM {table}")
            query_entry.update(
                healthy=True,
                detail=f"duckdb, {table}: {rows[0][0]} rows; {self.query_service.queries} queries served",
            )
        except Exception as exc:  # noqa: BLE001 - reported as unhealthy
            query_entry.update(healthy=False, detail=str(exc))
        return [catalog_entry, query_entry]

    def _trino_status(self, entry: dict[str, Any]) -> dict[str, Any]:
        from datadrill.backends.compose.trino_engine import TrinoQueryEngine

        table = self.config.catalog.table
        engine = TrinoQueryEngine.from_url(self.query_url, timeout_s=10)
        try:
            rows = engine.rows(f"SELECT count(*) FROM {table}", tables=(table,))
            entry.update(healthy=True, detail=f"trino, {table}: {rows[0][0]} rows")
        except Exception as exc:  # noqa: BLE001 - reported as unhealthy
            entry.update(healthy=False, detail=f"trino: {exc}")
        finally:
            engine.close()
        return entry

    @property
    def fault_proxy_url(self) -> str:
        """The Toxiproxy API on the stack's paths: our own fault proxy, or the cluster's."""
        if self.fault_proxy is not None:
            return self.fault_proxy.url
        return self.config.external.toxiproxy_url if self.config.external is not None else ""

    def _fault_proxy_status(self) -> dict[str, Any]:
        url = self.fault_proxy_url
        entry: dict[str, Any] = {"name": "fault-proxy", "endpoint": url}
        try:
            proxies = ToxiproxyAdmin(url).proxies()
        except Exception as exc:  # noqa: BLE001 - reported as unhealthy
            entry.update(healthy=False, detail=f"Toxiproxy API failed: {exc}")
            return entry
        parts = []
        for name, info in sorted(proxies.items()):
            state = "" if info.enabled else " DOWN"
            toxics = f" [{', '.join(t.name for t in info.toxics)}]" if info.toxics else ""
            parts.append(f"{name} {info.listen}->{info.upstream}{state}{toxics}")
        entry.update(healthy=True, detail="; ".join(parts) or "no proxies", proxies=self.proxies)
        return entry

    def _source_status(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": "source-db", "endpoint": str(self.paths.source_db.resolve())}
        try:
            db = source_db.connect(self.paths.source_db)
            try:
                orders, depth = source_db.count_orders(db), source_db.outbox_depth(db)
            finally:
                db.close()
            entry.update(healthy=True, detail=f"{orders} orders, outbox depth {depth}")
        except sqlite3.Error as exc:
            entry.update(healthy=False, detail=str(exc))
        return entry

    def _process_status(self) -> list[dict[str, Any]]:
        assert self.supervisor is not None
        now = self.clock.monotonic()
        out = []
        for proc in self.supervisor.status():
            beat = read_heartbeat(self.paths, proc.name)
            fresh = (
                beat is not None
                and beat.get("pid") == proc.pid
                and now - float(beat["mono"]) < HEARTBEAT_STALE_S
            )
            healthy = proc.running and fresh
            if proc.paused:
                detail = "PAUSED"
            elif not proc.running:
                detail = f"restarting (last exit: {proc.last_exit})"
            elif not fresh:
                detail = "starting (no heartbeat yet)"
            else:
                detail = _describe_progress(proc.name, beat or {})
            if proc.restarts:
                detail += f"; {proc.restarts} restarts, last: {proc.last_exit}"
            out.append(
                {
                    "name": proc.name,
                    "endpoint": f"pid {proc.pid}" if proc.pid else "-",
                    "healthy": healthy,
                    "detail": detail,
                    "pid": proc.pid,
                    "restarts": proc.restarts,
                    "last_exit": proc.last_exit,
                    "stats": beat or {},
                }
            )
        return out


def _describe_progress(name: str, beat: dict[str, Any]) -> str:
    if name == "workload":
        return f"{beat.get('rate', 0):g} orders/s, {beat.get('orders_written', 0)} written"
    if name == "relay":
        return f"{beat.get('marked', 0)} published and marked"
    if name == "sink":
        return f"{beat.get('rows_committed', 0)} rows in {beat.get('commits', 0)} commits"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datadrill-stack")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    paths = StatePaths(Path(args.state_dir))
    paths.make()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lock = paths.lock_file.open("a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another stack process holds %s", paths.lock_file)
        return EXIT_ALREADY_RUNNING
    paths.pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    stack = StackProcess(paths, read_running_config(paths))

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stack.stop_requested.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        stack.start()
        log.info("stack ready: %s", paths.state_file)
        stack.run_forever()
    finally:
        stack.shutdown()
        paths.pid_file.unlink(missing_ok=True)
        lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
