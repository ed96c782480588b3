"""The metastore: an Iceberg catalog, opened through pyiceberg.

The catalog entry of a table points at its current ``*.metadata.json``; lose it and every
reader fails, which is the incident datadrill rehearses. The stack's own catalog is
pyiceberg's SQL catalog on SQLite or PostgreSQL (the same ``iceberg_tables`` schema that
Trino's JDBC catalog reads); ``[catalog] type`` names any other catalog pyiceberg loads
(REST, Hive Metastore, Glue, ...), which the harness reaches through the same
:func:`open_stack_catalog` and pyiceberg's Catalog API only.

Example::

    catalog = open_stack_catalog(config, paths)          # any [catalog] type
    table = ensure_orders_table(open_catalog(catalog_uri(config, paths), paths.warehouse), "dwh.orders")
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import (
    BooleanType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from datadrill.config import PY_CATALOG_IMPL, StackConfig
from datadrill.errors import ConfigError
from datadrill.paths import StatePaths
from datadrill.platform.catalog_uris import (
    catalog_uri,
    check_catalog_reachable,
    describe_uri,
    is_database_uri,
    network_address,
    via_address,
    warehouse_location,
)

CATALOG_NAME = "datadrill"
# Snapshot summary keys where the sink keeps its exactly-once state.
OFFSETS_PROPERTY = "datadrill.sink.offsets"
MAX_EVENT_IDS_PROPERTY = "datadrill.sink.max-event-ids"

ORDERS_SCHEMA = Schema(
    NestedField(1, "order_id", LongType(), required=False),
    NestedField(2, "customer_id", LongType(), required=False),
    NestedField(3, "amount_cents", LongType(), required=False),
    NestedField(4, "currency", StringType(), required=False),
    NestedField(5, "status", StringType(), required=False),
    NestedField(6, "created_at", TimestamptzType(), required=False),
    NestedField(7, "is_canary", BooleanType(), required=False),
    NestedField(8, "event_id", LongType(), required=False),
    NestedField(9, "kafka_partition", IntegerType(), required=False),
    NestedField(10, "kafka_offset", LongType(), required=False),
    NestedField(11, "ingested_at", TimestamptzType(), required=False),
)

ORDERS_ARROW_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("customer_id", pa.int64()),
        ("amount_cents", pa.int64()),
        ("currency", pa.string()),
        ("status", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("is_canary", pa.bool_()),
        ("event_id", pa.int64()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)

TABLE_PROPERTIES = {
    # Every commit writes a metadata file; keep the directory from growing without bound.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    # Merge small manifests so planning a scan stays cheap on long runs: every 16 (not
    # pyiceberg's 100) so a compaction's commit, which reads every manifest, stays short.
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "16",
}


# How a person calls each catalog type, in status output and fault targets.
CATALOG_LABELS = {
    "rest": "REST catalog",
    "hive": "Hive Metastore",
    "glue": "Glue catalog",
    "dynamodb": "DynamoDB catalog",
    "bigquery": "BigQuery metastore",
    "in-memory": "in-memory catalog",
}


def file_io_properties(config: StackConfig) -> dict[str, str]:
    """pyiceberg FileIO properties (``s3.*``) for the table files: an external cluster's
    and those among ``[catalog] properties`` (which win)."""
    properties = config.external.s3_properties() if config.external is not None else {}
    properties.update({k: v for k, v in config.catalog.properties.items() if k.startswith("s3.")})
    return properties


def catalog_properties(
    config: StackConfig, paths: StatePaths, *, uri: str | None = None, init_tables: bool = False
) -> dict[str, str]:
    """The pyiceberg catalog properties ``[catalog]`` stands for: its ``properties``, then
    ``type``, ``uri`` and ``warehouse``. A SQL catalog gets the database the harness
    reaches (``uri`` overrides it: the platform's path through a proxy) and the warehouse
    location; ``init_tables`` creates its tables on first use."""
    catalog = config.catalog
    properties = {**file_io_properties(config), **catalog.properties}
    if catalog.is_sql:
        properties.update(
            type="sql",
            uri=uri or catalog_uri(config, paths),
            warehouse=warehouse_location(config, paths),
            init_catalog_tables="true" if init_tables else "false",
        )
        return properties
    if PY_CATALOG_IMPL not in properties:
        properties["type"] = catalog.type
    if uri or catalog.uri:
        properties["uri"] = uri or catalog.uri
    if catalog.warehouse:
        properties["warehouse"] = catalog.warehouse
    return properties


def describe_stack_catalog(config: StackConfig, paths: StatePaths) -> str:
    """The catalog for a person: "SQLite catalog at .datadrill/catalog.db", "PostgreSQL
    catalog at postgresql://drill:***@…", "REST catalog at http://…"."""
    catalog = config.catalog
    if catalog.is_sql:
        return describe_sql_catalog(catalog_uri(config, paths))
    impl = catalog.properties.get(PY_CATALOG_IMPL)
    label = f"catalog {impl}" if impl is not None else CATALOG_LABELS.get(catalog.type, f"{catalog.type} catalog")
    return f"{label} at {describe_uri(catalog.uri)}" if catalog.uri else label


def describe_sql_catalog(uri: str) -> str:
    """A SQL catalog's database for a person: "SQLite catalog at .datadrill/catalog.db"
    (relative to the working directory when under it), or the DSN with its password hidden."""
    if not is_database_uri(uri):
        return f"catalog at {describe_uri(uri)}" if uri else "the configured catalog"
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        with contextlib.suppress(ValueError):
            path = path.relative_to(Path.cwd())
        return f"SQLite catalog at {path}"
    if url.get_backend_name() == "postgresql":
        return f"PostgreSQL catalog at {describe_uri(uri)}"
    return f"catalog at {describe_uri(uri)}"


def open_catalog(
    uri: str,
    warehouse: Path | str,
    *,
    init_tables: bool = True,
    properties: dict[str, str] | None = None,
) -> SqlCatalog:
    """Open a SQL catalog on the database at ``uri``; ``init_tables`` creates its tables on
    first use (only the stack process does, so two processes never race to create them).
    ``properties`` configure the FileIO (S3 endpoint and keys for an s3:// warehouse). The
    harness opens the stack's catalog, of whatever type, with :func:`open_stack_catalog`."""
    location = f"file://{warehouse.resolve()}" if isinstance(warehouse, Path) else warehouse
    return SqlCatalog(
        CATALOG_NAME,
        uri=uri,
        warehouse=location,
        init_catalog_tables="true" if init_tables else "false",
        **(properties or {}),
    )


def open_stack_catalog(
    config: StackConfig, paths: StatePaths, *, uri: str | None = None, init_tables: bool = False
) -> Catalog:
    """A fresh client of the stack's catalog, of any type pyiceberg's ``load_catalog``
    knows, from ``[catalog]`` (see :func:`catalog_properties`). pyiceberg's own settings
    for a catalog named ``datadrill`` (``~/.pyiceberg.yaml``, ``PYICEBERG_CATALOG__DATADRILL__*``:
    the place for a REST catalog's secrets) apply beneath them."""
    properties = catalog_properties(config, paths, uri=uri, init_tables=init_tables)
    try:
        return load_catalog(CATALOG_NAME, **properties)
    except (ValueError, ImportError) as exc:
        # pyiceberg's words for a property it lacks or a type whose extra is not installed.
        kind = properties.get(PY_CATALOG_IMPL, config.catalog.type)
        raise ConfigError("[catalog]", "catalog.type", kind, f"pyiceberg cannot load it: {exc}") from None


def ensure_orders_table(catalog: Catalog, identifier: str) -> Table:
    namespace = identifier.split(".", 1)[0]
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)
    try:
        return catalog.create_table(identifier, ORDERS_SCHEMA, properties=TABLE_PROPERTIES)
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)


def sink_state(table: Table) -> tuple[dict[int, int], dict[int, int]]:
    """The sink's (next offsets, max event ids) per partition, from the newest snapshot
    in the current lineage that carries them. Empty when the sink never committed."""
    snapshot = table.current_snapshot()
    while snapshot is not None:
        summary = snapshot.summary
        raw = summary.additional_properties.get(OFFSETS_PROPERTY) if summary else None
        if raw is not None:
            assert summary is not None
            offsets = {int(k): int(v) for k, v in json.loads(raw).items()}
            raw_ids = summary.additional_properties.get(MAX_EVENT_IDS_PROPERTY, "{}")
            max_ids = {int(k): int(v) for k, v in json.loads(raw_ids).items()}
            return offsets, max_ids
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return {}, {}


__all__ = [
    "MAX_EVENT_IDS_PROPERTY",
    "OFFSETS_PROPERTY",
    "ORDERS_ARROW_SCHEMA",
    "ORDERS_SCHEMA",
    "NoSuchTableError",
    "catalog_properties",
    "catalog_uri",
    "check_catalog_reachable",
    "describe_sql_catalog",
    "describe_stack_catalog",
    "describe_uri",
    "ensure_orders_table",
    "file_io_properties",
    "network_address",
    "open_catalog",
    "open_stack_catalog",
    "sink_state",
    "via_address",
    "warehouse_location",
]
