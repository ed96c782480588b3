"""Metadata faults: the catalog forgets a table, or the table's metadata files vanish.

The catalog faults speak pyiceberg's Catalog API only (``drop_table`` without purge,
``rename_table``, ``register_table``, ``load_table``, ``list_tables``), so they work on every
catalog pyiceberg loads: SQL, REST, Hive Metastore, Glue. Direct SQL is left only where it
is the fault itself: :class:`CatalogOutageFault` locks a SQL catalog's database.

Deleted things are kept aside (the catalog entry's metadata location, the files in the
run's quarantine), so reverting always works, even when no recovery step ran.

Each confirms its effect through a fresh catalog client and the warehouse, as a reader of
the table would find it; each names its target without touching the catalog's entries.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError

from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext, RevertData, Seen, await_effect, look_timeout
from datadrill.model.faults import CatalogOutage, DeleteCatalogEntry, DeleteMetadataFiles, HideTable
from datadrill.platform.warehouse import Warehouse


def has_catalog_row(catalog: Catalog, identifier: str) -> bool:
    """Does the catalog list the table? Unlike ``table_exists`` this never reads the
    metadata file, which may be the very thing that is missing."""
    namespace, name = identifier.split(".", 1)
    try:
        return any(t == (namespace, name) for t in catalog.list_tables(namespace))
    except NoSuchNamespaceError:
        return False


def describe_catalog(uri: str) -> str:
    """The catalog database for a person: "SQLite catalog at .datadrill/catalog.db" (relative
    to the working directory when under it), or the DSN with its password hidden."""
    from datadrill.platform.catalog import describe_sql_catalog

    return describe_sql_catalog(uri)


def describe_context_catalog(context: DrillContext) -> str:
    """The stack's catalog for a person, of whatever type ("REST catalog at http://…")."""
    from datadrill.platform.catalog import describe_stack_catalog

    return describe_stack_catalog(context.stack.config, context.stack.paths)


def _locations_file(context: DrillContext) -> Path:
    return context.run_dir / "catalog" / "metadata-locations.json"


def remember_location(context: DrillContext, identifier: str, metadata_location: str) -> None:
    """Note where ``identifier``'s metadata lived, for a re-registration after the catalog
    forgot it: a REST, Hive or Glue catalog picks table locations itself, so the warehouse
    layout alone may not find them."""
    path = _locations_file(context)
    known = remembered_locations(context)
    known[identifier] = metadata_location
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2), encoding="utf-8")


def remembered_locations(context: DrillContext) -> dict[str, str]:
    """The last metadata location seen in this run, by table identifier."""
    try:
        known: dict[str, str] = json.loads(_locations_file(context).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return known


# Catalog types whose pyiceberg client cannot ``register_table`` (pyiceberg 0.12's DynamoDB
# catalog raises NotImplementedError): a deleted entry could not be put back.
UNREGISTRABLE_TYPES = ("dynamodb",)


def require_registrable(context: DrillContext, field: str) -> None:
    kind = context.stack.config.catalog.type
    if kind in UNREGISTRABLE_TYPES:
        raise ConfigError(
            "scenario",
            field,
            kind,
            f"a catalog whose pyiceberg client can register_table; the {kind} catalog cannot, "
            "so what the fault or step removes could not be put back",
        )


def require_table(context: DrillContext, identifier: str, *, field: str) -> Catalog:
    """The stack's catalog, once it is known to list ``identifier``; else ConfigError
    naming the table and what the catalog does list."""
    catalog = context.stack.catalog()
    if has_catalog_row(catalog, identifier):
        return catalog
    namespace = identifier.split(".", 1)[0]
    try:
        listed = sorted(".".join(t) for t in catalog.list_tables(namespace))
    except NoSuchNamespaceError:
        listed = []
    raise ConfigError(
        "scenario",
        field,
        identifier,
        f"a table in the {describe_context_catalog(context)}; "
        f"namespace {namespace!r} lists {', '.join(listed) or 'no tables'}",
    )


class CatalogEntryFault:
    """Delete the table's catalog entry with pyiceberg's ``drop_table``, which never purges
    (pyiceberg 0.12: the SQL catalog deletes the row, REST sends ``purgeRequested=false``,
    Hive ``deleteData=False``, Glue deletes the entry; ``purge_table`` is the one that
    deletes files). The metadata and data files stay, so the metadata location saved before
    the drop brings the table back with ``register_table``."""

    kind = "metadata.catalog_entry"
    spec_type = DeleteCatalogEntry

    def prepare(self, spec: DeleteCatalogEntry, context: DrillContext) -> RevertData:
        require_registrable(context, "DeleteCatalogEntry")
        table = context.stack.catalog().load_table(spec.table)
        remember_location(context, spec.table, table.metadata_location)
        return {"table": spec.table, "metadata_location": table.metadata_location}

    def apply(self, spec: DeleteCatalogEntry, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.catalog().drop_table(spec.table)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        catalog = context.stack.catalog()
        identifier = data["table"]
        if has_catalog_row(catalog, identifier):
            return "nothing to do: the table is in the catalog"
        namespace = identifier.split(".", 1)[0]
        if not catalog.namespace_exists(namespace):
            catalog.create_namespace(namespace)
        catalog.register_table(identifier, data["metadata_location"])
        return f"re-registered {identifier} from the metadata location saved at injection"

    def exclusive_key(self, spec: DeleteCatalogEntry) -> str | None:
        return f"table:{spec.table}"

    def confirm(
        self, spec: DeleteCatalogEntry, context: DrillContext, data: RevertData, within_s: float
    ) -> str:
        identifier = data["table"]

        def look() -> Seen:
            catalog = context.stack.catalog()
            if has_catalog_row(catalog, identifier):
                return Seen(False, f"the catalog still lists {identifier}")
            if catalog.table_exists(identifier):  # a catalog that lists lazily, but loads
                return Seen(False, f"the catalog still loads {identifier}")
            return Seen(True, f"catalog has no row for {identifier}")

        return await_effect(context, within_s, expected=f"no catalog row for {identifier}", look=look)

    def target(self, spec: DeleteCatalogEntry, context: DrillContext) -> str:
        require_registrable(context, "DeleteCatalogEntry")
        require_table(context, spec.table, field="DeleteCatalogEntry.table")
        return f"the catalog entry of {spec.table} ({describe_context_catalog(context)})"


class MetadataFilesFault:
    """Move the table's ``*.metadata.json`` files (local or in object storage) into the
    run's quarantine: to readers they are gone; a revert writes them back."""

    kind = "metadata.files"
    spec_type = DeleteMetadataFiles

    def prepare(self, spec: DeleteMetadataFiles, context: DrillContext) -> RevertData:
        table = context.stack.catalog().load_table(spec.table)
        remember_location(context, spec.table, table.metadata_location)
        metadata_dir = Warehouse.parent(table.metadata_location)
        files = context.stack.warehouse().metadata_files(metadata_dir)
        doomed = files[: len(files) - spec.keep_newest] if spec.keep_newest else files
        aside = context.quarantine / "metadata" / spec.table
        return {
            "table": spec.table,
            "metadata_dir": metadata_dir,
            "quarantine": str(aside),
            "files": [f.name for f in doomed],
        }

    def apply(self, spec: DeleteMetadataFiles, context: DrillContext, data: RevertData) -> RevertData:
        warehouse = context.stack.warehouse()
        aside = Path(data["quarantine"])
        aside.mkdir(parents=True, exist_ok=True)
        moved = []
        for name in data["files"]:
            location = Warehouse.join(data["metadata_dir"], name)
            if not warehouse.exists(location):
                continue  # expired by a concurrent commit
            with contextlib.suppress(FileNotFoundError):  # ... or just now
                # Kept aside before it is deleted: the ledger's revert must find it.
                (aside / name).write_bytes(warehouse.read_bytes(location))
                warehouse.delete(location)
                moved.append(name)
        return {"moved": moved}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        warehouse = context.stack.warehouse()
        aside = Path(data["quarantine"])
        restored = 0
        moved: list[str] = list(data["moved"] if "moved" in data else data["files"])
        for name in moved:
            kept, original = aside / name, Warehouse.join(data["metadata_dir"], name)
            if kept.exists() and not warehouse.exists(original):
                warehouse.write_bytes(original, kept.read_bytes())
                kept.unlink()
                restored += 1
        return f"put {restored} of {len(moved)} metadata files back"

    def exclusive_key(self, spec: DeleteMetadataFiles) -> str | None:
        return f"table:{spec.table}"

    def confirm(
        self, spec: DeleteMetadataFiles, context: DrillContext, data: RevertData, within_s: float
    ) -> str:
        """Every file apply moved is gone from the warehouse (before apply: every file
        prepare picked). Nothing to move is a fault that did not land."""
        names: list[str] = list(data["moved"] if "moved" in data else data["files"])
        directory = data["metadata_dir"]

        def look() -> Seen:
            if not names:
                return Seen(False, f"no metadata file of {data['table']} to delete in {directory}")
            warehouse = context.stack.warehouse()
            left = [n for n in names if warehouse.exists(Warehouse.join(directory, n))]
            if left:
                return Seen(False, f"{len(left)} of {len(names)} still in {directory} (e.g. {left[0]})")
            return Seen(True, f"{len(names)} metadata files gone from the warehouse ({directory})")

        return await_effect(
            context, within_s, expected=f"the metadata files of {data['table']} gone", look=look
        )

    def target(self, spec: DeleteMetadataFiles, context: DrillContext) -> str:
        catalog = require_table(context, spec.table, field="DeleteMetadataFiles.table")
        metadata_dir = Warehouse.parent(catalog.load_table(spec.table).metadata_location)
        files = context.stack.warehouse().metadata_files(metadata_dir)
        doomed = len(files) - spec.keep_newest if spec.keep_newest else len(files)
        kept = f", newest {spec.keep_newest} kept" if spec.keep_newest else ""
        if doomed <= 0:
            raise ConfigError(
                "scenario",
                "DeleteMetadataFiles.keep_newest",
                spec.keep_newest,
                f"fewer than the {len(files)} metadata files {spec.table} has now, "
                "or the fault deletes nothing",
            )
        return f"{doomed} of the {len(files)} metadata files of {spec.table}{kept} ({metadata_dir})"


HIDDEN_SUFFIX = "__hidden_by_datadrill"


class HideTableFault:
    """Rename the table away with pyiceberg's ``rename_table`` (and back on revert): readers
    find no table, nothing is deleted."""

    kind = "calibration.hide_table"
    spec_type = HideTable

    def prepare(self, spec: HideTable, context: DrillContext) -> RevertData:
        return {"table": spec.table, "hidden": spec.table + HIDDEN_SUFFIX}

    def apply(self, spec: HideTable, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.catalog().rename_table(data["table"], data["hidden"])
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        catalog = context.stack.catalog()
        if has_catalog_row(catalog, data["hidden"]) and not has_catalog_row(catalog, data["table"]):
            catalog.rename_table(data["hidden"], data["table"])
            return f"renamed {data['hidden']} back to {data['table']}"
        return "nothing to do: the table is back"

    def exclusive_key(self, spec: HideTable) -> str | None:
        return f"table:{spec.table}"

    def confirm(self, spec: HideTable, context: DrillContext, data: RevertData, within_s: float) -> str:
        table, hidden = data["table"], data["hidden"]

        def look() -> Seen:
            catalog = context.stack.catalog()
            if has_catalog_row(catalog, table):
                return Seen(False, f"the catalog still lists {table}")
            if not has_catalog_row(catalog, hidden):
                return Seen(False, f"neither {table} nor {hidden} in the catalog")
            return Seen(True, f"catalog lists {hidden} instead of {table}")

        return await_effect(context, within_s, expected=f"{table} renamed to {hidden}", look=look)

    def target(self, spec: HideTable, context: DrillContext) -> str:
        require_table(context, spec.table, field="HideTable.table")
        return (
            f"the catalog entry of {spec.table}, renamed to {spec.table}{HIDDEN_SUFFIX} "
            f"({describe_context_catalog(context)})"
        )


# Locks held by this process, by token; a killed process's locks die with it.
_LOCKS: dict[str, threading.Event] = {}


class CatalogOutageFault:
    """Hold the catalog database in an exclusive transaction: every catalog read and
    commit waits for the lock (and fails after its busy timeout). The one place where
    datadrill speaks SQL to the catalog: the database *is* the fault, so it needs a SQL
    catalog (a REST or Hive catalog's outage is a network fault on its path)."""

    kind = "catalog.outage"
    spec_type = CatalogOutage

    def prepare(self, spec: CatalogOutage, context: DrillContext) -> RevertData:
        _require_sql_catalog(context)
        return {"token": uuid.uuid4().hex, "catalog_uri": context.stack.catalog_uri}

    def apply(self, spec: CatalogOutage, context: DrillContext, data: RevertData) -> RevertData:
        import sqlalchemy

        release = threading.Event()
        locked = threading.Event()
        failure: list[BaseException] = []
        uri = data["catalog_uri"]

        def hold() -> None:
            engine = sqlalchemy.create_engine(uri)
            try:
                with engine.connect() as connection:
                    if uri.startswith("sqlite"):
                        connection.exec_driver_sql("BEGIN EXCLUSIVE")
                    else:
                        connection.exec_driver_sql("BEGIN")
                        connection.exec_driver_sql("LOCK TABLE iceberg_tables IN ACCESS EXCLUSIVE MODE")
                    locked.set()
                    release.wait()
                    connection.exec_driver_sql("ROLLBACK")
            except Exception as exc:  # noqa: BLE001 - reported to apply() below
                failure.append(exc)
                locked.set()
            finally:
                engine.dispose()

        threading.Thread(target=hold, name=f"catalog-lock-{data['token']}", daemon=True).start()
        locked.wait(30)
        if failure:
            raise failure[0]
        _LOCKS[data["token"]] = release
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        release = _LOCKS.pop(data["token"], None)
        if release is None:
            return "nothing to do: the lock ended with the process that held it"
        release.set()
        return "catalog lock released"

    def exclusive_key(self, spec: CatalogOutage) -> str | None:
        return "catalog"

    def confirm(self, spec: CatalogOutage, context: DrillContext, data: RevertData, within_s: float) -> str:
        """A write transaction of our own cannot start: it waits for the lock and gives up.
        When it can, it is rolled back at once (it wrote nothing)."""
        uri = data["catalog_uri"]
        # Long enough that a platform commit holding the write lock for a moment does not
        # pass for the fault's lock.
        timeout_s = min(0.5, look_timeout(within_s))

        def look() -> Seen:
            if _write_waits(uri, timeout_s):
                return Seen(True, "catalog database locked: a write waits (ours could not take the lock)")
            return Seen(False, "a write transaction started at once (no lock held)")

        return await_effect(context, within_s, expected="the catalog database locked", look=look)

    def target(self, spec: CatalogOutage, context: DrillContext) -> str:
        from sqlalchemy.engine import make_url

        _require_sql_catalog(context)
        uri = context.stack.catalog_uri
        url = make_url(uri)
        if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
            raise ConfigError(
                "scenario", "CatalogOutage", describe_catalog(uri), "a catalog database that exists"
            )
        return f"the catalog database ({describe_catalog(uri)}), held in an exclusive lock"


def _require_sql_catalog(context: DrillContext) -> None:
    if not context.stack.config.catalog.is_sql:
        raise ConfigError(
            "scenario",
            "CatalogOutage",
            describe_context_catalog(context),
            "a sql catalog, whose database the fault locks; for another catalog type, "
            "cut its network path instead",
        )


def _write_waits(uri: str, timeout_s: float) -> bool:
    """Does a write transaction on the catalog database wait for a lock? Begins one that
    takes the write lock without writing, and rolls it back."""
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if url.get_backend_name() == "sqlite":
        # mode=rw: a look must never create a database file where there was none.
        location = Path(url.database or "").resolve().as_uri() + "?mode=rw"
        db = sqlite3.connect(location, timeout=timeout_s, isolation_level=None, uri=True)
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return True
            raise
        else:
            db.execute("ROLLBACK")
            return False
        finally:
            db.close()
    import sqlalchemy
    from sqlalchemy.exc import OperationalError

    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": max(1, round(timeout_s))})
    try:
        with engine.connect() as connection:
            try:
                # ROW EXCLUSIVE is what an INSERT or UPDATE takes; NOWAIT fails at once if
                # the fault's ACCESS EXCLUSIVE lock stands in its way.
                connection.exec_driver_sql("LOCK TABLE iceberg_tables IN ROW EXCLUSIVE MODE NOWAIT")
            except OperationalError as exc:
                if "could not obtain lock" in str(exc):
                    return True
                raise
            finally:
                connection.rollback()
            return False
    finally:
        engine.dispose()
