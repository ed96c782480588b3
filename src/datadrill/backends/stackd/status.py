"""What ``GET /status`` answers: every service and process of the stack, healthy or not,
with a line of detail. Processes carry their state as fields (``paused``, ``pid``,
``restarts``, ``last_exit``), never only as text to parse.

Declared components (``[components.NAME]``) are listed after the reference platform's
processes with ``declared: true``, their ``command`` and a ``health``: ``starting`` (not
ready yet since its last start), ``ready`` (its ready check passed), ``running`` (no check),
``hung`` (stopped by SIGSTOP), ``paused``, ``stopped``, ``restarting`` or ``failed``; only
``ready`` and ``running`` are healthy. A connector component (``connector = "NAME"``) is
listed with the state its Kafka Connect cluster reports (``connector NAME on URL``).

Example::

    stack_status(process)["healthy"]
    [c["name"] for c in stack_status(process)["components"]]
    # ['kafka', 'kafka-broker-1', ..., 'catalog', 'query-engine', 'fault-proxy',
    #  'source-db', 'workload', 'relay', 'sink', 'control']
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING, Any

from datadrill.netfaults import ToxiproxyAdmin
from datadrill.platform import source_db
from datadrill.platform.component import read_heartbeat
from datadrill.platform.source_conn import SOURCE_ERRORS, SourceConnection, describe_source
from datadrill.platform.supervisor import ProcessStatus
from datadrill.procs import read_proc_state

if TYPE_CHECKING:
    from datadrill.backends.stackd.process import StackProcess

HEARTBEAT_STALE_S = 5.0
# The embedded stack's own PostgreSQL server, as the supervisor knows it.
SOURCE_PROCESS = "source-db"
# A connector component's status comes from its Connect cluster: `stack status` waits at
# most this long for it.
CONNECT_TIMEOUT_S = 2.0
Entry = dict[str, Any]


def stack_status(stack: StackProcess) -> dict[str, Any]:
    components: list[Entry] = []
    components.extend(_kafka(stack))
    components.extend(_catalog_and_queries(stack))
    if stack.fault_proxy is not None or stack.proxies:
        components.append(_fault_proxy(stack))
    components.append(_source(stack))
    components.extend(process_entries(stack))
    components.extend(connector_entries(stack))
    if stack.connect_server is not None:
        components.append(_connect(stack))
    if stack.metrics_server is not None:
        components.append(_metrics(stack))
    assert stack.control is not None
    components.append(
        {
            "name": "control",
            "endpoint": stack.control.url,
            "healthy": True,
            "detail": f"stack pid {os.getpid()}",
        }
    )
    return {
        "healthy": all(c["healthy"] for c in components),
        "pid": os.getpid(),
        "backend": stack.backend,
        "state_dir": str(stack.paths.root.resolve()),
        "uptime_s": round(stack.clock.monotonic() - stack.started_mono, 3),
        "components": components,
        # The drill holding the stack, if one does (one at a time).
        "run": stack.leases.current()["lease"],
        # A declared component that did not get ready while the stack started (`stack up`
        # raises it): component, message, log, log_tail.
        "start_failure": stack.start_failure,
    }


def _kafka(stack: StackProcess) -> list[Entry]:
    from confluent_kafka.admin import AdminClient

    topic = stack.config.kafka.topic
    bootstrap = stack.kafka.bootstrap_servers
    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=3)
        seen = len(metadata.brokers)
        partitions = len(metadata.topics[topic].partitions) if topic in metadata.topics else 0
        ok = partitions == stack.config.kafka.partitions
        detail = f"{seen} brokers in metadata, {topic}: {partitions} partitions"
    except Exception as exc:  # noqa: BLE001 - any failure is reported as unhealthy
        ok, detail = False, f"metadata request failed: {exc}"
    out: list[Entry] = [{"name": "kafka", "endpoint": bootstrap, "healthy": ok, "detail": detail}]
    for broker in stack.kafka.brokers():
        out.append(
            {
                "name": f"kafka-broker-{broker.broker}",
                "endpoint": broker.address,
                "healthy": broker.up,
                "detail": broker.detail,
            }
        )
    return out


def _catalog_and_queries(stack: StackProcess) -> list[Entry]:
    from datadrill.platform.catalog import describe_uri, open_stack_catalog

    table = stack.config.catalog.table
    catalog_entry: Entry = {"name": "catalog", "endpoint": describe_uri(stack.catalog_uri)}
    # The address clients use: Trino's protocol, through the fault proxy's "query" path
    # on the embedded stack (so drills reach them as they reach dashboards).
    query_entry: Entry = {"name": "query-engine", "endpoint": stack.query_url}
    try:
        loaded = open_stack_catalog(stack.config, stack.paths).load_table(table)
        snapshot = loaded.current_snapshot()
        catalog_entry.update(
            healthy=True, detail=f"{table} snapshot {snapshot.snapshot_id if snapshot else 'none'}"
        )
    except Exception as exc:  # noqa: BLE001 - reported as unhealthy
        catalog_entry.update(healthy=False, detail=f"cannot load {table}: {exc}")
        query_entry.update(healthy=False, detail="catalog unavailable")
        return [catalog_entry, query_entry]
    if stack.query_service is None:
        return [catalog_entry, _trino(stack, query_entry)]
    try:
        # Straight to the service, not through its proxy: a network fault on the query
        # path is the drill's business, not a sign that the stack is broken.
        _, rows = stack.query_service.execute(f"SELECT count(*) FROM {table}")
        query_entry.update(
            healthy=True,
            detail=(
                f"Trino protocol over DuckDB (catalog iceberg), {table}: {rows[0][0]} rows; "
                f"{stack.query_service.queries} queries served; engine at {stack.query_service.url}"
            ),
        )
    except Exception as exc:  # noqa: BLE001 - reported as unhealthy
        query_entry.update(healthy=False, detail=str(exc))
    return [catalog_entry, query_entry]


def _trino(stack: StackProcess, entry: Entry) -> Entry:
    from datadrill.interfaces.trino_client import TrinoQueryEngine

    table = stack.config.catalog.table
    engine = TrinoQueryEngine.from_url(stack.query_url, timeout_s=10)
    try:
        rows = engine.rows(f"SELECT count(*) FROM {table}", tables=(table,))
        entry.update(healthy=True, detail=f"trino, {table}: {rows[0][0]} rows")
    except Exception as exc:  # noqa: BLE001 - reported as unhealthy
        entry.update(healthy=False, detail=f"trino: {exc}")
    finally:
        engine.close()
    return entry


def _fault_proxy(stack: StackProcess) -> Entry:
    url = stack.fault_proxy_url
    entry: Entry = {"name": "fault-proxy", "endpoint": url}
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
    entry.update(healthy=True, detail="; ".join(parts) or "no proxies", proxies=stack.proxies)
    return entry


def _metrics(stack: StackProcess) -> Entry:
    # Not scraped here: serving the endpoint is what it takes to be healthy; a scrape
    # reads Kafka and journals, which `stack status` must not wait for.
    assert stack.metrics_server is not None
    return {
        "name": "metrics",
        "endpoint": stack.metrics_server.url,
        "healthy": True,
        "detail": "Prometheus metrics (scrape this URL)",
    }


def _source(stack: StackProcess) -> Entry:
    """The source database: its server, orders and outbox depth (read on the harness's
    direct path: a SourceOutage on the "source" proxy is the drill's business). The
    embedded stack's own PostgreSQL server (the supervised process ``source-db``) is
    listed here, with its process's fields, rather than as a second entry."""
    entry: Entry = {"name": "source-db", "endpoint": describe_source(stack.source_uri)}
    try:
        db = source_db.connect(stack.source_uri)
        try:
            orders, depth = source_db.count_orders(db), source_db.outbox_depth(db)
            server = _source_server(db)
        finally:
            db.close()
        entry.update(healthy=True, detail=f"{server}, {orders} orders, outbox depth {depth}", server=server)
    except SOURCE_ERRORS as exc:
        entry.update(healthy=False, detail=str(exc).strip())
    proc = _source_process(stack)
    if proc is not None:
        entry.update(
            pid=proc.pid,
            paused=proc.paused,
            running=proc.running,
            restarts=proc.restarts,
            last_exit=proc.last_exit,
        )
        if proc.paused or proc.stopped:
            entry.update(healthy=False, detail="PAUSED (the server is stopped)")
        elif not proc.running:
            entry.update(healthy=False, detail=f"restarting (last exit: {proc.last_exit})")
        else:
            entry["detail"] += f"; server pid {proc.pid}"
        if proc.restarts:
            entry["detail"] += f"; {proc.restarts} restarts, last: {proc.last_exit}"
    return entry


def _source_server(db: SourceConnection) -> str:
    if db.is_postgres:
        version = db.execute("SHOW server_version").fetchone()[0]
        return f"PostgreSQL {str(version).split()[0]}"
    return f"SQLite {sqlite3.sqlite_version}"


def _source_process(stack: StackProcess) -> ProcessStatus | None:
    if stack.supervisor is None:
        return None
    return next((p for p in stack.supervisor.status() if p.name == SOURCE_PROCESS), None)


def process_entries(stack: StackProcess) -> list[Entry]:
    assert stack.supervisor is not None
    now = stack.clock.monotonic()
    out = []
    for proc in stack.supervisor.status():
        if proc.name == SOURCE_PROCESS:
            continue  # the source-db entry (_source) shows it
        declared = stack.config.components.get(proc.name)
        if declared is not None:
            has_check = bool(declared.ready.log or declared.ready.port)
            out.append(declared_entry(proc, command=declared.command, has_check=has_check))
            continue
        beat = read_heartbeat(stack.paths, proc.name)
        fresh = (
            beat is not None and beat.get("pid") == proc.pid and now - float(beat["mono"]) < HEARTBEAT_STALE_S
        )
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
                "healthy": proc.running and fresh,
                "detail": detail,
                "pid": proc.pid,
                "paused": proc.paused,
                "running": proc.running,
                "restarts": proc.restarts,
                "last_exit": proc.last_exit,
                "stats": beat or {},
            }
        )
    return out


def declared_health(proc: ProcessStatus, *, hung: bool, has_check: bool) -> str:
    """One word for a declared component's state (see the module's docstring);
    ``has_check``: it has a ``ready`` log or port check."""
    if proc.failed_trace is not None:
        return "failed"
    if proc.paused:
        return "paused"
    if proc.stopped:
        return "stopped"
    if not proc.running:
        return "restarting"
    if hung:
        return "hung"
    if not proc.ready:
        return "starting"
    return "ready" if has_check else "running"


def declared_entry(proc: ProcessStatus, *, command: tuple[str, ...], has_check: bool) -> Entry:
    # Stopped (SIGSTOP: state T in /proc) runs no code at all.
    seen = read_proc_state(proc.pid) if proc.running and proc.pid is not None else None
    hung = seen is not None and seen.state == "T"
    health = declared_health(proc, hung=hung, has_check=has_check)
    if health == "starting":
        detail = f"starting: waiting for {proc.waiting_for}"
    elif health == "restarting":
        detail = f"restarting (last exit: {proc.last_exit})"
    elif health == "hung":
        detail = "hung: stopped by SIGSTOP, makes no progress"
    elif health == "failed":
        detail = "FAILED until restarted"
    else:
        detail = health
    if proc.restarts:
        detail += f"; {proc.restarts} restarts, last: {proc.last_exit}"
    return {
        "name": proc.name,
        "endpoint": f"pid {proc.pid}" if proc.pid else "-",
        "healthy": health in ("ready", "running"),
        "detail": detail,
        "pid": proc.pid,
        "paused": proc.paused,
        "running": proc.running,
        "restarts": proc.restarts,
        "last_exit": proc.last_exit,
        "stats": {},
        "declared": True,
        "kind": "process",
        "health": health,
        "ready": proc.ready,
        "command": list(command),
    }


def connector_entries(stack: StackProcess) -> list[Entry]:
    """Connector components, as their Kafka Connect cluster reports them (read only; a
    cluster that does not answer is said, never raised)."""
    from datadrill.interfaces.connect_client import ConnectClient, ConnectError

    declared = {name: c.connector for name, c in stack.config.components.items() if c.connector}
    if not declared:
        return []
    url = stack.config.connect.url.rstrip("/")
    out: list[Entry] = []
    client = ConnectClient(url, timeout_s=CONNECT_TIMEOUT_S)
    try:
        for name, connector in declared.items():
            entry: Entry = {
                "name": name,
                "endpoint": url,
                "declared": True,
                "kind": "connector",
                "connector": connector,
                "command": [f"connector {connector} on {url}"],
                "pid": None,
                "restarts": None,
                "last_exit": None,
            }
            try:
                state = client.status(connector)
            except ConnectError as exc:
                entry.update(healthy=False, health="unreachable", detail=str(exc))
            else:
                if state.running:
                    health = "running"
                elif state.failed_tasks or state.state == "FAILED":
                    health = "failed"
                else:
                    health = state.state.lower() or "unknown"
                entry.update(
                    healthy=state.running,
                    health=health,
                    detail=f"connector {state.describe()} on {url}",
                    tasks=[{"id": t.id, "state": t.state} for t in state.tasks],
                )
            out.append(entry)
    finally:
        client.close()
    return out


def _connect(stack: StackProcess) -> Entry:
    """Kafka Connect's REST API: healthy when it answers; the detail is every connector's
    task state ("relay RUNNING, sink FAILED")."""
    assert stack.connect_server is not None
    connect = stack.connect_server
    states = []
    for name in connect.connectors:
        status = connect.status(name)
        tasks = status["tasks"]
        states.append(f"{name} {tasks[0]['state'] if tasks else status['connector']['state']}")
    return {"name": "connect", "endpoint": connect.url, "healthy": True, "detail": ", ".join(states)}


def _describe_progress(name: str, beat: dict[str, Any]) -> str:
    if name == "workload":
        return f"{beat.get('rate', 0):g} orders/s, {beat.get('orders_written', 0)} written"
    if name == "relay":
        return f"{beat.get('marked', 0)} published and marked"
    if name == "sink":
        return f"{beat.get('rows_committed', 0)} rows in {beat.get('commits', 0)} commits"
    return ""
