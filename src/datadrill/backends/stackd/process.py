"""The stack process's life: bring the stack up around its Kafka cluster, run the
supervisor and the cluster's periodic work, shut everything down.

Started in the background by ``datadrill stack up`` (see :mod:`.manager`), one per state
directory. Besides the reference platform (workload, relay, sink; none with ``[platform]
reference = false``) it runs the components a config declares (``[components.NAME]``
with a ``command``), once every endpoint their placeholders name exists, and watches them
get ready (:mod:`datadrill.platform.declared`): ``stack up`` fails with the first that
does not. What the stack can do is reached through its control routes (:mod:`.routes`);
what it looks like through its status (:mod:`.status`).

Example::

    process = StackProcess(paths, config, kafka=kafka, backend="embedded", make_routes=routes)
    process.start()
    process.run_forever()   # until /shutdown or SIGTERM
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from datadrill.backends.kafka.base import KafkaCluster
from datadrill.backends.stackd.leases import Reaper, RunLeases, reaper_process
from datadrill.clock import Clock, MonotonicClock
from datadrill.config import DEFAULT_CONFIG_FILE, StackConfig
from datadrill.errors import ControlError
from datadrill.interfaces.connect_api import ConnectServer
from datadrill.interfaces.http_server import ControlServer, Handler
from datadrill.interfaces.metrics import KafkaLagReader, MetricsServer, StackMetrics
from datadrill.netfaults import FaultProxyServer, ToxiproxyAdmin
from datadrill.paths import StatePaths
from datadrill.platform import source_db
from datadrill.platform.component import write_json_atomic
from datadrill.platform.declared import Endpoints, StartupWatch, launch, ready_probe
from datadrill.platform.source_conn import describe_source, is_postgres
from datadrill.platform.supervisor import EventLog, Supervisor, log_tail
from datadrill.safety import is_loopback

if TYPE_CHECKING:
    from datadrill.platform.query_service import QueryService

log = logging.getLogger("datadrill.stack")

COMPONENTS = ("workload", "relay", "sink")


class StackProcess:
    def __init__(
        self,
        paths: StatePaths,
        config: StackConfig,
        *,
        kafka: KafkaCluster,
        backend: str,
        make_routes: Callable[[StackProcess], list[tuple[str, str, Handler]]],
        clock: Clock | None = None,
        reaper: Reaper | None = None,
    ) -> None:
        self.paths = paths
        self.config = config
        self.kafka = kafka
        self.backend = backend
        # The control API's routes (.routes), passed in so this module does not import them.
        self.make_routes = make_routes
        self.clock = clock or MonotonicClock()
        self.events = EventLog(paths.events_file)
        self.stop_requested = threading.Event()
        self.started_mono = self.clock.monotonic()
        self.started_wall = self.clock.wall()
        self.supervisor: Supervisor | None = None
        # Kafka Connect's REST API for the relay and the sink (started after the supervisor).
        self.connect_server: ConnectServer | None = None
        self.control: ControlServer | None = None
        self.catalog_uri = ""
        # The source database: the harness's path (source_uri) and the platform's
        # (source_via: through the fault proxy's "source" path where there is one).
        # A SQLite file unless the config names PostgreSQL.
        self.source_uri = config.source.uri or str(paths.source_db.resolve())
        self.source_via = self.source_uri
        self.fault_proxy: FaultProxyServer | None = None
        self.query_service: QueryService | None = None
        self.query_url = ""
        # Prometheus metrics of the stack and of the run holding it (interfaces.metrics).
        self.metrics_server: MetricsServer | None = None
        self.metrics_lag: KafkaLagReader | None = None
        # Proxies in front of the stack's network paths, by name.
        self.proxies: dict[str, dict[str, str]] = {}
        # Declared components not yet ready since the stack started; then None.
        self.startup: StartupWatch | None = None
        # Why the start failed (a declared component not ready): status reports it and
        # `stack up` raises it.
        self.start_failure: dict[str, str] | None = None
        # One drill at a time; a run that stops renewing its lease gets its faults reverted.
        self.leases = RunLeases(
            self.clock,
            reaper=reaper or reaper_process(paths.root.resolve(), paths.log("reaper")),
            on_event=self.event,
        )

    # -- start-up ------------------------------------------------------------------------
    def start(self) -> None:
        kafka = self.config.kafka
        self.kafka.create_topic(
            kafka.topic, partitions=kafka.partitions, replication_factor=kafka.replication_factor
        )
        # Where the relay routes records that break their data contract.
        self.kafka.create_topic(
            f"{kafka.topic}.dlq", partitions=1, replication_factor=kafka.replication_factor
        )
        self.event("kafka_ready", bootstrap=self.kafka.bootstrap_servers)
        self._start_source_server()
        source_db.connect(self.source_uri).close()
        if not self.paths.workload_file.exists():
            write_json_atomic(self.paths.workload_file, self.config.workload.model_dump())

        from datadrill.platform.catalog_uris import catalog_uri, network_address

        # The harness's own path to the catalog (reverts, checks); the platform's path may
        # go through a proxy (catalog_via), so that network faults hit the platform only.
        self.catalog_uri = catalog_uri(self.config, self.paths)
        external = self.config.external
        if external is None:
            catalog_via = self._start_fault_proxy()
        else:
            self._external_fault_paths()
            catalog_via = None
            platform_uri = network_address(external.catalog_uri)
            if platform_uri != network_address(self.catalog_uri):
                catalog_via = platform_uri

        # Start the platform before the catalog is ready: the processes spend their first
        # second importing, and the sink waits for the table anyway.
        self._start_platform(catalog_via)
        self._start_connect()

        from datadrill.platform.catalog import ensure_orders_table, open_stack_catalog

        if self.config.catalog.is_sql:
            # The reference table; never created in a team's REST, Hive or Glue catalog
            # (a non-SQL catalog runs without the reference platform: config refuses both).
            ensure_orders_table(
                open_stack_catalog(self.config, self.paths, init_tables=True), self.config.catalog.table
            )
        self._start_queries(catalog_via)
        self.control = ControlServer(self.make_routes(self))
        self.control.start()
        self._start_metrics()
        self._start_declared(catalog_via)
        self._write_state()
        self.event("stack_started", control=self.control.url)

    def _start_fault_proxy(self) -> str | None:
        """datadrill's own fault proxy (Toxiproxy's API) on the stack's network paths, so
        network faults hit the platform the way a bad link would. A SQLite catalog is a
        file and has no network path; a PostgreSQL one is reached through "catalog"."""
        from datadrill.platform.catalog_uris import network_address

        self.fault_proxy = FaultProxyServer(allow_hosts=self.config.safety.allow_hosts)
        admin = ToxiproxyAdmin(self.fault_proxy.start())
        self._proxy_source(admin)
        database = network_address(self.catalog_uri)
        if database is None:
            return None
        catalog_via = admin.create_proxy("catalog", "127.0.0.1:0", database).listen
        self.proxies["catalog"] = {"listen": catalog_via, "upstream": database}
        return catalog_via

    def _start_source_server(self) -> None:
        """The throwaway PostgreSQL server (``[source] server = "postgresql"`` with no uri, on
        the embedded stack): a supervised process named ``source-db``, ready (and its
        ``source`` database made) before anything writes to it."""
        source = self.config.source
        if self.config.external is not None or source.uri or source.server != "postgresql":
            return
        from datadrill.platform import pg_server

        began = self.clock.monotonic()
        plan = pg_server.prepare(self.paths.postgres_dir)
        supervisor = self._ensure_supervisor()
        # Killed by the kernel if the stack process dies (the server does not poll for its
        # parent the way datadrill's own processes do).
        supervisor.add("source-db", list(plan.argv), die_with_parent=True)
        supervisor.start("source-db")

        def running() -> bool:
            return any(p.running for p in supervisor.status() if p.name == "source-db")

        pg_server.wait_ready(plan, running=running, log=self.paths.log("source-db"))
        self.source_uri = self.source_via = plan.uri
        self.event(
            "source_db_ready",
            server=f"PostgreSQL {plan.version}",
            uri=describe_source(plan.uri),
            took_s=round(self.clock.monotonic() - began, 3),
        )

    def _proxy_source(self, admin: ToxiproxyAdmin) -> None:
        """A PostgreSQL source on loopback (the throwaway server, or a loopback ``[source]
        uri``) is reached by the platform through the fault proxy's "source" path, which a
        SourceOutage disables; the harness keeps its direct path (``source_uri``)."""
        if not is_postgres(self.source_uri):
            return
        parts = urlsplit(self.source_uri)
        host = parts.hostname or "localhost"
        if not is_loopback(host):
            return
        upstream = f"[{host}]:{parts.port or 5432}" if ":" in host else f"{host}:{parts.port or 5432}"
        listen = admin.create_proxy("source", "127.0.0.1:0", upstream).listen
        self.proxies["source"] = {"listen": listen, "upstream": upstream}
        self.source_via = _via(self.source_uri, listen)

    def _external_fault_paths(self) -> None:
        """The proxies of the cluster's Toxiproxy, if it has one (kafka-N, catalog, query)."""
        assert self.config.external is not None
        url = self.config.external.toxiproxy_url
        if url:
            for name, info in ToxiproxyAdmin(url).proxies().items():
                self.proxies[name] = {"listen": info.listen, "upstream": info.upstream}
            source = self.proxies.get("source")
            if source is not None and is_postgres(self.source_uri):
                # The cluster's "source" proxy (the compose stack has one) listens on its
                # Toxiproxy's host: the platform goes through it, the harness does not.
                port = source["listen"].rsplit(":", 1)[-1]
                host = urlsplit(url).hostname or "127.0.0.1"
                self.source_via = _via(self.source_uri, f"{host}:{port}")

    def _ensure_supervisor(self) -> Supervisor:
        # Made before the platform when the stack runs its own source server.
        if self.supervisor is None:
            self.supervisor = Supervisor(
                self.paths,
                events=self.events,
                clock=self.clock,
                backoff_initial_s=self.config.supervisor.backoff_initial_s,
                backoff_max_s=self.config.supervisor.backoff_max_s,
            )
        return self.supervisor

    def _start_platform(self, catalog_via: str | None) -> None:
        state_dir = str(self.paths.root.resolve())
        bootstrap = self.kafka.bootstrap_servers
        python = sys.executable
        self._ensure_supervisor()
        assert self.supervisor is not None
        if not self.config.platform.reference:
            return  # only the declared components run (started once every endpoint exists)
        source = ["--source", self.source_via]
        self.supervisor.add(
            "workload", [python, "-m", "datadrill.platform.workload", "--state-dir", state_dir, *source]
        )
        # The CDC relay reads the outbox's inserts from a replication slot instead of polling
        # the table; same component name, same arguments.
        relay_module = "datadrill.platform.cdc_relay" if self.config.relay.mode == "cdc" else "datadrill.platform.relay"
        self.supervisor.add(
            "relay",
            [
                python,
                "-m",
                relay_module,
                "--state-dir",
                state_dir,
                "--bootstrap",
                bootstrap,
                *source,
            ],
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
        # One by one: the source server (source-db) may run already.
        for name in COMPONENTS:
            self.supervisor.start(name)

    def endpoints(self, catalog_via: str | None) -> Endpoints:
        """The real endpoints declared components' placeholders expand to: the platform's
        paths (through the fault proxy where there is one, as the sink reaches them)."""
        from datadrill.platform.catalog import CATALOG_NAME, via_address, warehouse_location

        assert self.connect_server is not None and self.metrics_server is not None
        external = self.config.external
        return Endpoints(
            bootstrap_servers=self.kafka.bootstrap_servers,
            catalog_uri=via_address(self.catalog_uri, catalog_via) if catalog_via else self.catalog_uri,
            catalog_warehouse=warehouse_location(self.config, self.paths),
            query_url=self.query_url,
            # The Connect cluster this stack drills: a real one's, or the stack's own API.
            connect_url=self.config.connect.url.rstrip("/") or self.connect_server.url,
            metrics_url=self.metrics_server.url,
            state_dir=str(self.paths.root.resolve()),
            catalog_name=CATALOG_NAME,
            python=sys.executable,
            schema_registry_url=(external.schema_registry_url or None) if external is not None else None,
        )

    def _start_declared(self, catalog_via: str | None) -> None:
        """Start each declared process component under the supervisor (a connector lives on
        its Connect cluster: nothing to start). Every command is expanded before any
        starts, so a placeholder error starts nothing."""
        assert self.supervisor is not None
        declared = {name: c for name, c in self.config.components.items() if c.command}
        if not declared:
            return
        values = self.endpoints(catalog_via).values()
        launches = {
            name: launch(name, component, values, source=DEFAULT_CONFIG_FILE)
            for name, component in declared.items()
        }
        for name, run in launches.items():
            self.supervisor.add(
                name,
                list(run.argv),
                env=run.env,
                cwd=run.cwd,
                ready=ready_probe(declared[name].ready, self.paths.log(name)),
                # Not a datadrill Component, which polls for its parent: the kernel kills it
                # if the stack process dies.
                die_with_parent=True,
            )
        self.startup = StartupWatch(
            {name: component.ready.timeout_s for name, component in declared.items()},
            now=self.clock.monotonic(),
        )
        for name in launches:
            self.supervisor.start(name)

    def _start_connect(self) -> None:
        assert self.supervisor is not None
        self.connect_server = ConnectServer(
            self.supervisor,
            self.paths,
            self.config,
            bootstrap_servers=self.kafka.bootstrap_servers,
            on_event=self.event,
            source=self.source_uri,
        )
        self.connect_server.start()

    def _start_queries(self, catalog_via: str | None) -> None:
        """Dashboards' queries: Trino on a cluster that has one; otherwise the DuckDB query
        service, reached only through the "query" proxy of our fault proxy."""
        from datadrill.platform.catalog import open_stack_catalog, via_address, warehouse_location

        # Imported here, not with this module: DuckDB and pyiceberg take the stack process
        # ~0.6 s to import, time the platform's processes use to import theirs.
        from datadrill.platform.query_service import QueryService

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
            open_catalog=None
            if self.config.catalog.is_sql
            else lambda: open_stack_catalog(self.config, self.paths),
        )
        service_address = self.query_service.start().removeprefix("http://")
        if self.fault_proxy is None:
            self.query_url = f"http://{service_address}"
            return
        admin = ToxiproxyAdmin(self.fault_proxy.url)
        query_listen = admin.create_proxy("query", "127.0.0.1:0", service_address).listen
        self.proxies["query"] = {"listen": query_listen, "upstream": service_address}
        self.query_url = f"http://{query_listen}"

    def _start_metrics(self) -> None:
        # The reference sink's lag; without the reference platform no one consumes as it.
        if self.config.platform.reference:
            self.metrics_lag = KafkaLagReader(
                self.kafka.bootstrap_servers,
                group=self.config.sink.group_id,
                topic=self.config.kafka.topic,
                clock=self.clock,
            )
        metrics = StackMetrics(
            self.paths,
            supervisor=self.supervisor,
            lease=lambda: self.leases.current()["lease"],
            lag=self.metrics_lag,
            # Connector and task states as Kafka Connect's API reports them (read lazily).
            connectors=lambda: self.connect_server.statuses() if self.connect_server is not None else [],
            clock=self.clock,
        )
        self.metrics_server = MetricsServer(metrics)
        self.metrics_server.start()

    @property
    def fault_proxy_url(self) -> str:
        """The Toxiproxy API on the stack's paths: our own fault proxy, or the cluster's."""
        if self.fault_proxy is not None:
            return self.fault_proxy.url
        return self.config.external.toxiproxy_url if self.config.external is not None else ""

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
                "connect_url": self.connect_server.url if self.connect_server is not None else None,
                "backend": self.backend,
                "bootstrap_servers": self.kafka.bootstrap_servers,
                "brokers": {str(k): v for k, v in self.kafka.broker_addresses.items()},
                "kafka_capabilities": {c.value: why for c, why in self.kafka.capabilities().items()},
                "topic": self.config.kafka.topic,
                "catalog_uri": describe_uri(self.catalog_uri),
                "fault_proxy_url": self.fault_proxy_url or None,
                "proxies": self.proxies,
                "query_url": self.query_url,
                "metrics_url": self.metrics_server.url if self.metrics_server is not None else None,
                "query_engine": "trino" if external is not None and external.trino_url else "duckdb",
                "table": self.config.catalog.table,
                "warehouse": warehouse_location(self.config, self.paths),
                "source_db": describe_source(self.source_uri),
                # The harness's connection (a URI may hold a password: the state file is
                # private to the state directory, as the catalog's is).
                "source_uri": self.source_uri,
                "source_via": self.source_via,
                "started_wall": self.started_wall,
                "librdkafka": getattr(self.kafka, "library", None),
            },
        )

    # -- running -------------------------------------------------------------------------
    def run_forever(self) -> None:
        assert self.supervisor is not None
        while not self.stop_requested.wait(0.05):
            self.kafka.tick(self.event)
            self.supervisor.poll()
            self._watch_startup()
            self.leases.tick()

    def _watch_startup(self) -> None:
        """Until every declared component was ready once: the first one late (or exiting
        again and again) is the stack's start failure, which `stack up` raises."""
        if self.startup is None:
            return
        assert self.supervisor is not None
        failure = self.startup.update(self.supervisor.status(), now=self.clock.monotonic())
        if failure is not None:
            self.start_failure = {
                "component": failure.component,
                "message": failure.message,
                "log": str(self.paths.log(failure.component)),
                "log_tail": log_tail(self.paths.log(failure.component)),
            }
            self.event("component_not_ready", component=failure.component, reason=failure.message)
        if failure is not None or self.startup.done:
            self.startup = None

    def shutdown(self) -> None:
        self.event("stack_stopping")
        if self.supervisor is not None:
            if "source-db" in self.supervisor.names:
                # SIGINT is PostgreSQL's fast shutdown (SIGTERM, what stop_all sends, would
                # wait for every client session to end); the SIGTERM after it changes nothing.
                with contextlib.suppress(ControlError):
                    self.supervisor.signal("source-db", signal.SIGINT)
            self.supervisor.stop_all()
        if self.control is not None:
            self.control.stop()
        if self.connect_server is not None:
            self.connect_server.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.metrics_lag is not None:
            self.metrics_lag.close()
        if self.query_service is not None:
            self.query_service.stop()
        if self.fault_proxy is not None:
            self.fault_proxy.stop()
        self.kafka.close()
        self.paths.state_file.unlink(missing_ok=True)
        self.event("stack_stopped")

    def event(self, name: str, **fields: Any) -> None:
        self.events.append(
            {"event": name, "mono": self.clock.monotonic(), "wall": self.clock.wall(), **fields}
        )


def _via(uri: str, listen: str) -> str:
    """``uri`` with its host and port replaced by ``listen`` (a proxy's address); the user,
    password, database and parameters stay."""
    parts = urlsplit(uri)
    user, at, _ = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme, f"{user}{at}{listen}", parts.path, parts.query, parts.fragment))
