"""When the compose stack is really ready, not merely started.

A container's healthcheck says a process answers; a game day needs more. The decisions
are pure functions over what the services report, so they are tested without an engine;
:func:`check_all` gathers the reports over the network (imports happen there).

- Trino: ``/v1/info`` no longer says ``starting``, and ``system.runtime.nodes`` lists an
  active node that runs tasks. A coordinator that does not schedule work on itself
  (``node-scheduler.include-coordinator=false``) with no worker yet answers queries about
  itself but fails every table scan with "No nodes available to run query": that is the
  known "ready but no worker" state, and it is not ready.
- Kafka: the metadata lists every broker.
- Catalog: the ``iceberg_tables`` and ``iceberg_namespace_properties`` tables exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CATALOG_TABLES = ("iceberg_tables", "iceberg_namespace_properties")


@dataclass(frozen=True)
class Readiness:
    service: str
    ready: bool
    reason: str


def trino_readiness(
    info: Mapping[str, Any] | None,
    nodes: Sequence[tuple[str, bool, str]] | None,
    *,
    include_coordinator: bool,
) -> Readiness:
    """``info``: Trino's /v1/info answer (None: no answer). ``nodes``: rows of
    ``SELECT node_id, coordinator, state FROM system.runtime.nodes`` (None: the query failed)."""
    if info is None:
        return Readiness("trino", False, "no answer from /v1/info")
    if info.get("starting", True):
        return Readiness("trino", False, "the server is still starting")
    if nodes is None:
        return Readiness("trino", False, "system.runtime.nodes cannot be queried yet")
    active = [(node, coordinator) for node, coordinator, state in nodes if state == "active"]
    workers = [node for node, coordinator in active if not coordinator]
    if workers:
        return Readiness("trino", True, f"{len(workers)} active worker(s)")
    if include_coordinator and any(coordinator for _, coordinator in active):
        return Readiness("trino", True, "the coordinator runs tasks itself")
    return Readiness(
        "trino", False, "ready but no worker: the coordinator is up and no active node can run a query"
    )


def kafka_readiness(seen_brokers: Iterable[int], expected: int) -> Readiness:
    seen = sorted(set(seen_brokers))
    if len(seen) >= expected:
        return Readiness("kafka", True, f"{len(seen)} brokers in metadata")
    return Readiness(
        "kafka", False, f"{len(seen)} of {expected} brokers in metadata (seen: {seen or 'none'})"
    )


SCHEMA_MISSING = "the catalog schema is missing"


def catalog_readiness(tables: Iterable[str]) -> Readiness:
    present = set(tables)
    missing = [t for t in CATALOG_TABLES if t not in present]
    if missing:
        return Readiness("catalog", False, f"{SCHEMA_MISSING} {', '.join(missing)}")
    return Readiness("catalog", True, "catalog schema present")


def check_all(settings: Any) -> list[Readiness]:
    """Ask every service (lazily importing each client); one Readiness per service.

    ``settings`` is a ComposeSettings or an ExternalConfig: anything with
    ``bootstrap_servers``, ``brokers``, ``catalog_uri``, ``trino_url`` and ``trino_host_port``.
    """
    checks = [_check_kafka(settings), _check_catalog(settings)]
    # An external cluster without Trino is queried by datadrill's own DuckDB service.
    if settings.trino_url:
        checks.append(_check_trino(settings))
    if getattr(settings, "schema_registry_url", ""):
        checks.append(_check_schema_registry(settings.schema_registry_url))
    return checks


def schema_registry_readiness(status: int | None, body: object) -> Readiness:
    """A registry is ready when ``GET /subjects`` answers 200 with a JSON list (it has
    read its schemas topic; before that it answers 5xx or not at all)."""
    if status is None:
        return Readiness("schema-registry", False, "no answer")
    if status != 200 or not isinstance(body, list):
        return Readiness("schema-registry", False, f"GET /subjects answered HTTP {status}")
    return Readiness("schema-registry", True, f"{len(body)} subjects")


def _check_schema_registry(url: str) -> Readiness:
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/subjects", timeout=5)
    except httpx.HTTPError:
        return schema_registry_readiness(None, None)
    try:
        body = response.json()
    except ValueError:
        body = None
    return schema_registry_readiness(response.status_code, body)


def _check_kafka(settings: Any) -> Readiness:
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": settings.bootstrap_servers}).list_topics(timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet", with why
        return Readiness("kafka", False, f"metadata request failed: {exc}")
    return kafka_readiness(metadata.brokers, settings.brokers)


def _check_catalog(settings: Any) -> Readiness:
    import sqlalchemy

    engine = sqlalchemy.create_engine(settings.catalog_uri, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            names = sqlalchemy.inspect(engine).get_table_names()
    except Exception as exc:  # noqa: BLE001
        return Readiness("catalog", False, f"cannot reach the catalog database: {exc}")
    finally:
        engine.dispose()
    return catalog_readiness(names)


def _check_trino(settings: Any) -> Readiness:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{settings.trino_url.rstrip('/')}/v1/info", timeout=5) as response:  # noqa: S310
            info = json.loads(response.read())
    except Exception:  # noqa: BLE001
        info = None
    nodes = None
    if info is not None and not info.get("starting", True):
        import trino

        try:
            host, port = settings.trino_host_port
            connection = trino.dbapi.connect(  # type: ignore[no-untyped-call]
                host=host,
                port=port,
                http_scheme="https" if settings.trino_url.startswith("https") else "http",
                user="datadrill",
                request_timeout=10,
            )
            cursor = connection.cursor()
            cursor.execute("SELECT node_id, coordinator, state FROM system.runtime.nodes")
            nodes = [(str(r[0]), bool(r[1]), str(r[2])) for r in cursor.fetchall()]
        except Exception:  # noqa: BLE001
            nodes = None
    # The image's single node schedules work on itself (include-coordinator defaults to true).
    return trino_readiness(info, nodes, include_coordinator=True)
