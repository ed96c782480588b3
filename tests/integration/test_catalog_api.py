"""Catalog faults, backups, restores and re-registration through pyiceberg's Catalog API, on
a SQL catalog on SQLite, on PostgreSQL, and on a catalog that is no database at all.

The third is :class:`PointerCatalog`, loaded through ``[catalog] properties``'
``py-catalog-impl`` by the same :func:`open_stack_catalog` the harness uses: a metastore
that keeps only "table -> metadata location" in memory, as a REST, Hive or Glue catalog
does on its server, and whose ``purge_table`` fails the test. Whatever works on it uses
nothing SQL-specific. Its tables live outside the stack's warehouse layout (as a REST
server picks locations itself), so re-registration must find them by the location it saw.

No stack process runs: :class:`CatalogStack` is the part of the Stack protocol these
faults and steps use, built from the same functions as the stack client's.
"""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.noop import NoopCatalog
from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
from pyiceberg.io import load_file_io
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import Table

from conftest import new_database
from datadrill.clock import MonotonicClock
from datadrill.config import StackConfig, parse_config
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.faults.ledger import FaultLedger, cleanup, inject
from datadrill.faults.registry import plugin_for
from datadrill.model import CatalogOutage, DeleteCatalogEntry, HideTable
from datadrill.paths import StatePaths
from datadrill.platform.catalog import (
    ORDERS_ARROW_SCHEMA,
    catalog_uri,
    ensure_orders_table,
    file_io_properties,
    open_catalog,
    open_stack_catalog,
    warehouse_location,
)
from datadrill.platform.warehouse import Warehouse
from datadrill.recovery.backup import restore_backup, take_backup
from datadrill.recovery.reregister import reregister

pytestmark = pytest.mark.integration

TABLE = "dwh.orders"
_ids = itertools.count(1)


class PointerCatalog(NoopCatalog):
    """A catalog of pointers (identifier -> metadata location), shared by every client
    opened with the same ``pointer.store`` property, like clients of one server."""

    STORES: ClassVar[dict[str, dict[tuple[str, str], str]]] = {}

    @property
    def _pointers(self) -> dict[tuple[str, str], str]:
        return self.STORES.setdefault(self.properties["pointer.store"], {})

    @staticmethod
    def _key(identifier: str | tuple[str, ...]) -> tuple[str, str]:
        parts = identifier.split(".", 1) if isinstance(identifier, str) else list(identifier)
        return parts[0], parts[1]

    def create_namespace(self, namespace: Any, properties: Any = None) -> None:
        pass  # namespaces exist as long as a table names them

    def namespace_exists(self, namespace: Any) -> bool:
        return True

    def list_tables(self, namespace: Any) -> list[tuple[str, str]]:
        name = namespace if isinstance(namespace, str) else namespace[0]
        return sorted(key for key in self._pointers if key[0] == name)

    def table_exists(self, identifier: Any) -> bool:
        return self._key(identifier) in self._pointers

    def load_table(self, identifier: Any) -> Table:
        key = self._key(identifier)
        if key not in self._pointers:
            raise NoSuchTableError(f"Table does not exist: {'.'.join(key)}")
        location = self._pointers[key]
        io = load_file_io(self.properties, location)
        metadata = FromInputFile.table_metadata(io.new_input(location))
        return Table(key, metadata, location, io, catalog=self)

    def register_table(self, identifier: Any, metadata_location: str, overwrite: bool = False) -> Table:
        key = self._key(identifier)
        if key in self._pointers and not overwrite:
            raise TableAlreadyExistsError(f"Table already exists: {'.'.join(key)}")
        self._pointers[key] = metadata_location
        return self.load_table(identifier)

    def drop_table(self, identifier: Any) -> None:
        if self._pointers.pop(self._key(identifier), None) is None:
            raise NoSuchTableError(f"Table does not exist: {identifier}")

    def rename_table(self, from_identifier: Any, to_identifier: Any) -> Table:
        location = self._pointers.pop(self._key(from_identifier))
        self._pointers[self._key(to_identifier)] = location
        return self.load_table(to_identifier)

    def purge_table(self, identifier: Any) -> None:
        raise AssertionError("a fault or step purged a table: drop_table must never delete files")


class CatalogStack:
    """What catalog faults and steps use of the Stack protocol, made as StackClient makes it."""

    def __init__(self, config: StackConfig, paths: StatePaths) -> None:
        self.config, self.paths = config, paths

    @property
    def catalog_uri(self) -> str:
        return catalog_uri(self.config, self.paths)

    def catalog(self) -> Catalog:
        return open_stack_catalog(self.config, self.paths)

    def warehouse(self) -> Warehouse:
        return Warehouse(warehouse_location(self.config, self.paths), file_io_properties(self.config))


class Pipeline:
    """A writer of the table: through the stack's own catalog, or (for the pointer catalog)
    through a SQL catalog of its own whose new metadata location the pointer then takes, as a
    REST server's commit would."""

    def __init__(self, stack: CatalogStack, writer: Catalog, pointers: dict[tuple[str, str], str] | None) -> None:
        self.stack, self.writer, self.pointers = stack, writer, pointers
        self.orders = 0
        # Where the table's files are, known while the catalog still lists it.
        self.root = Path(writer.load_table(TABLE).location().removeprefix("file://"))

    def append(self, rows: int) -> None:
        table = self.writer.load_table(TABLE)
        now = datetime.now(UTC)
        first = self.orders + 1
        self.orders += rows
        batch = pa.Table.from_pylist(
            [
                {"order_id": i, "customer_id": i % 7, "amount_cents": 100 * i, "currency": "EUR",
                 "status": "new", "created_at": now, "is_canary": False, "event_id": i,
                 "kafka_partition": 0, "kafka_offset": i, "ingested_at": now}
                for i in range(first, self.orders + 1)
            ],
            schema=ORDERS_ARROW_SCHEMA,
        )
        table.append(batch)
        if self.pointers is not None:
            self.pointers[("dwh", "orders")] = self.writer.load_table(TABLE).metadata_location


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "pointer"])
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pipeline]:
    paths = StatePaths(tmp_path / ".datadrill")
    paths.make()
    kind = request.param
    pointers: dict[tuple[str, str], str] | None = None
    if kind == "sqlite":
        config = parse_config({}, source="test")
    elif kind == "postgres":
        dsn = new_database(request.getfixturevalue("postgres_dsn"), f"catalog_api_{next(_ids)}")
        config = parse_config({"catalog": {"uri": dsn}}, source="test")
    else:
        store = uuid.uuid4().hex
        config = parse_config(
            {
                "catalog": {
                    "properties": {
                        "py-catalog-impl": f"{__name__}.PointerCatalog",
                        "pointer.store": store,
                    }
                },
                "platform": {"reference": False},
            },
            source="test",
        )
        pointers = PointerCatalog.STORES.setdefault(store, {})
    stack = CatalogStack(config, paths)
    if pointers is None:
        writer = open_stack_catalog(config, paths, init_tables=True)
    else:
        # Table files outside <warehouse>/<namespace>/<table>: the server picked the place.
        writer = open_catalog(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "server-files")
    ensure_orders_table(writer, TABLE)
    flow = Pipeline(stack, writer, pointers)
    flow.append(50)
    yield flow
    if pointers is not None:
        PointerCatalog.STORES.pop(config.catalog.properties["pointer.store"], None)


def context_of(pipeline: Pipeline, tmp_path: Path, run_id: str = "run-1") -> DrillContext:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    return DrillContext(pipeline.stack, run_dir, MonotonicClock(), run_id=run_id)  # type: ignore[arg-type]


def files_of(pipeline: Pipeline) -> dict[str, str]:
    """Every data file and manifest the table has ever had, with a hash of its bytes."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(pipeline.root.rglob("*"))
        if p.is_file() and not p.name.endswith(".metadata.json")
    }


def loaded(pipeline: Pipeline, identifier: str = TABLE) -> tuple[int | None, int]:
    """(snapshot id, rows) as a reader finds the table through a fresh catalog client."""
    table = pipeline.stack.catalog().load_table(identifier)
    snapshot = table.current_snapshot()
    return (snapshot.snapshot_id if snapshot else None), table.scan().to_arrow().num_rows


def test_delete_catalog_entry_then_the_reaper_reverts_it(pipeline: Pipeline, tmp_path: Path) -> None:
    context = context_of(pipeline, tmp_path)
    before, files = loaded(pipeline), files_of(pipeline)
    assert any(name.endswith(".parquet") for name in files), files
    ledger = FaultLedger.for_stack(pipeline.stack.paths.root)
    handle = inject(DeleteCatalogEntry(at_s=0), context, ledger=ledger)
    assert handle.landed == f"catalog has no row for {TABLE}"
    with pytest.raises(NoSuchTableError):
        pipeline.stack.catalog().load_table(TABLE)
    assert files_of(pipeline) == files  # dropped, never purged
    # What a killed run leaves: the stack's reaper reverts it from the ledger alone.
    results = cleanup(pipeline.stack, ledger=ledger, run_id="run-1", note_prefix="reverted by lease expiry")
    assert [(r.kind, r.ok) for r in results] == [("metadata.catalog_entry", True)]
    assert "re-registered dwh.orders" in results[0].note
    assert loaded(pipeline) == before == (before[0], 50)
    assert ledger.outstanding() == []
    assert handle.revert().startswith("already reverted (reverted by lease expiry: re-registered")


def test_hide_table_renames_it_away_and_back(pipeline: Pipeline, tmp_path: Path) -> None:
    context = context_of(pipeline, tmp_path)
    before, files = loaded(pipeline), files_of(pipeline)
    handle = inject(HideTable(at_s=0, duration_s=5), context, ledger=FaultLedger.for_stack(tmp_path / "l"))
    with pytest.raises(NoSuchTableError):
        pipeline.stack.catalog().load_table(TABLE)
    assert loaded(pipeline, TABLE + "__hidden_by_datadrill") == before
    assert handle.revert() == f"renamed {TABLE}__hidden_by_datadrill back to {TABLE}"
    assert loaded(pipeline) == before
    assert files_of(pipeline) == files


def test_restore_catalog_backup_returns_the_backups_snapshot(pipeline: Pipeline, tmp_path: Path) -> None:
    context = context_of(pipeline, tmp_path)
    backup = take_backup(context, "nightly", TABLE)
    at_backup = loaded(pipeline)
    assert (backup.snapshot_id, backup.rows) == at_backup == (at_backup[0], 50)
    pipeline.append(30)
    later, files = loaded(pipeline), files_of(pipeline)
    assert later[1] == 80 and later[0] != backup.snapshot_id
    # The catalog forgets the table (a fault left in place); the restore brings the backup's state.
    plugin = plugin_for("metadata.catalog_entry")
    spec = DeleteCatalogEntry(at_s=0)
    plugin.apply(spec, context, plugin.prepare(spec, context))
    with pytest.raises(NoSuchTableError):
        pipeline.stack.catalog().load_table(TABLE)
    restored = restore_backup(context, "nightly")
    assert restored.snapshot_id == backup.snapshot_id
    assert loaded(pipeline) == at_backup
    assert files_of(pipeline) == files  # the newer snapshot's data files are still there
    # A restore over a table the catalog still lists replaces its entry, files untouched.
    assert restore_backup(context, "nightly").snapshot_id == backup.snapshot_id
    assert loaded(pipeline) == at_backup


def test_reregister_from_the_newest_surviving_metadata(pipeline: Pipeline, tmp_path: Path) -> None:
    context = context_of(pipeline, tmp_path)
    pipeline.append(20)
    newest, files = loaded(pipeline), files_of(pipeline)
    ledger = FaultLedger.for_stack(tmp_path / "l")
    handle = inject(DeleteCatalogEntry(at_s=0), context, ledger=ledger)
    with pytest.raises(NoSuchTableError):
        pipeline.stack.catalog().load_table(TABLE)
    location = reregister(context, TABLE)
    assert location == pipeline.writer.load_table(TABLE).metadata_location
    assert loaded(pipeline) == newest == (newest[0], 70)
    assert files_of(pipeline) == files
    assert handle.revert() == "nothing to do: the table is in the catalog"


def test_catalog_outage_needs_a_sql_catalog(pipeline: Pipeline, tmp_path: Path) -> None:
    """The one fault that speaks SQL to the catalog: on a catalog that is no database it is
    refused before it does anything; on a SQL catalog it names the database."""
    context = context_of(pipeline, tmp_path)
    plugin = plugin_for("catalog.outage")
    spec = CatalogOutage(at_s=0, duration_s=1)
    if pipeline.stack.config.catalog.is_sql:
        assert "held in an exclusive lock" in plugin.target(spec, context)
        return
    with pytest.raises(ConfigError, match=r"CatalogOutage = 'catalog .*PointerCatalog'.*a sql catalog"):
        plugin.target(spec, context)
    with pytest.raises(ConfigError, match="a sql catalog"):
        plugin.prepare(spec, context)


def test_reregister_without_a_known_location_says_where_it_looked(tmp_path: Path) -> None:
    """A catalog that picked the table's place itself, and a run that never saw it: the
    warehouse layout does not find it, and the error names the places it looked."""
    from datadrill.recovery.reregister import NoSurvivingMetadata

    store = uuid.uuid4().hex
    config = parse_config(
        {
            "catalog": {"properties": {"py-catalog-impl": f"{__name__}.PointerCatalog", "pointer.store": store}},
            "platform": {"reference": False},
        },
        source="test",
    )
    paths = StatePaths(tmp_path / ".datadrill")
    paths.make()
    context = DrillContext(CatalogStack(config, paths), tmp_path, MonotonicClock())  # type: ignore[arg-type]
    with pytest.raises(NoSurvivingMetadata, match=r"dwh\.orders .*looked in file://.*/dwh/orders/metadata"):
        reregister(context, TABLE)
    PointerCatalog.STORES.pop(store, None)


def test_only_the_sql_catalogs_are_sql(pipeline: Pipeline) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = pipeline.stack.catalog()
    assert isinstance(catalog, SqlCatalog) == pipeline.stack.config.catalog.is_sql
    assert isinstance(catalog, PointerCatalog) != pipeline.stack.config.catalog.is_sql
