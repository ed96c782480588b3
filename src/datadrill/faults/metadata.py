"""Metadata faults: the catalog forgets a table, or the table's metadata files vanish.

Deleted things are kept aside (the catalog row's metadata location, the files in the run's
quarantine), so reverting always works, even when no recovery step ran.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import uuid
from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError

from datadrill.faults.base import DrillContext, RevertData
from datadrill.model.faults import CatalogOutage, DeleteCatalogEntry, DeleteMetadataFiles, HideTable


def _local(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def has_catalog_row(catalog: Catalog, identifier: str) -> bool:
    """Does the catalog list the table? Unlike ``table_exists`` this never reads the
    metadata file, which may be the very thing that is missing."""
    namespace, name = identifier.split(".", 1)
    try:
        return any(t == (namespace, name) for t in catalog.list_tables(namespace))
    except NoSuchNamespaceError:
        return False


def metadata_files(metadata_dir: Path) -> list[Path]:
    """``*.metadata.json`` files, oldest first (their names start with a version number)."""

    def version(path: Path) -> int:
        head = path.name.split("-", 1)[0]
        return int(head) if head.isdigit() else -1

    return sorted(metadata_dir.glob("*.metadata.json"), key=lambda p: (version(p), p.stat().st_mtime))


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
    """Move the table's ``*.metadata.json`` files into the run's quarantine: to readers
    they are gone; to a revert they are one rename away."""

    kind = "metadata.files"
    spec_type = DeleteMetadataFiles

    def prepare(self, spec: DeleteMetadataFiles, context: DrillContext) -> RevertData:
        table = context.stack.catalog().load_table(spec.table)
        metadata_dir = _local(table.metadata_location).parent
        files = metadata_files(metadata_dir)
        doomed = files[: len(files) - spec.keep_newest] if spec.keep_newest else files
        aside = context.quarantine / "metadata" / spec.table
        return {
            "table": spec.table,
            "metadata_dir": str(metadata_dir),
            "quarantine": str(aside),
            "files": [p.name for p in doomed],
        }

    def apply(self, spec: DeleteMetadataFiles, context: DrillContext, data: RevertData) -> RevertData:
        aside = Path(data["quarantine"])
        aside.mkdir(parents=True, exist_ok=True)
        moved = []
        for name in data["files"]:
            with contextlib.suppress(FileNotFoundError):  # expired by a concurrent commit
                shutil.move(Path(data["metadata_dir"]) / name, aside / name)
                moved.append(name)
        return {"moved": moved}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        aside, home = Path(data["quarantine"]), Path(data["metadata_dir"])
        restored = 0
        moved: list[str] = list(data["moved"] if "moved" in data else data["files"])
        for name in moved:
            kept, original = aside / name, home / name
            if kept.exists() and not original.exists():
                home.mkdir(parents=True, exist_ok=True)
                shutil.move(kept, original)
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
