"""Metadata faults: the catalog forgets a table, or the table's metadata files vanish.

Deleted things are kept aside (the catalog row's metadata location, the files in the run's
quarantine), so reverting always works, even when no recovery step ran.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError

from datadrill.faults.base import DrillContext, RevertData
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


class CatalogEntryFault:
    """Delete the table's catalog row. SqlCatalog.drop_table removes the row only; the
    metadata and data files stay, so the saved metadata location brings it back."""

    kind = "metadata.catalog_entry"
    spec_type = DeleteCatalogEntry

    def prepare(self, spec: DeleteCatalogEntry, context: DrillContext) -> RevertData:
        table = context.stack.catalog().load_table(spec.table)
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


class MetadataFilesFault:
    """Move the table's ``*.metadata.json`` files (local or in object storage) into the
    run's quarantine: to readers they are gone; a revert writes them back."""

    kind = "metadata.files"
    spec_type = DeleteMetadataFiles

    def prepare(self, spec: DeleteMetadataFiles, context: DrillContext) -> RevertData:
        table = context.stack.catalog().load_table(spec.table)
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


HIDDEN_SUFFIX = "__hidden_by_datadrill"


class HideTableFault:
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


# Locks held by this process, by token; a killed process's locks die with it.
_LOCKS: dict[str, threading.Event] = {}


class CatalogOutageFault:
    """Hold the catalog database in an exclusive transaction: every catalog read and
    commit waits for the lock (and fails after its busy timeout)."""

    kind = "catalog.outage"
    spec_type = CatalogOutage

    def prepare(self, spec: CatalogOutage, context: DrillContext) -> RevertData:
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
