"""Metadata faults: the catalog forgets a table, or the table's metadata files vanish.

Deleted things are kept aside (the catalog row's metadata location, the files in the run's
quarantine), so reverting always works, even when no recovery step ran.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from datadrill.faults.base import DrillContext
from datadrill.model.faults import DeleteCatalogEntry, DeleteMetadataFiles, HideTable


def _local(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def table_exists(context: DrillContext, identifier: str) -> bool:
    """True when the catalog has the table and its metadata can be read."""
    try:
        context.stack.catalog().load_table(identifier)
    except (NoSuchTableError, FileNotFoundError):
        return False
    return True


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


@dataclass
class CatalogEntryDeleted:
    context: DrillContext
    identifier: str
    metadata_location: str
    description: str
    reverted: bool = False

    def revert(self) -> str:
        if self.reverted:
            return "already reverted"
        self.reverted = True
        catalog = self.context.stack.catalog()
        if has_catalog_row(catalog, self.identifier):
            return "nothing to do: the recovery restored the table"
        catalog.register_table(self.identifier, self.metadata_location)
        return f"re-registered {self.identifier} from the metadata location saved at injection"


def delete_catalog_entry(spec: DeleteCatalogEntry, context: DrillContext) -> CatalogEntryDeleted:
    catalog = context.stack.catalog()
    table = catalog.load_table(spec.table)
    location = table.metadata_location
    # SqlCatalog.drop_table removes the catalog row only; data and metadata files stay.
    catalog.drop_table(spec.table)
    return CatalogEntryDeleted(context, spec.table, location, spec.describe())


@dataclass
class MetadataFilesDeleted:
    context: DrillContext
    identifier: str
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    description: str = ""
    reverted: bool = False

    def revert(self) -> str:
        if self.reverted:
            return "already reverted"
        self.reverted = True
        restored = 0
        for original, kept in self.moved:
            if kept.exists() and not original.exists():
                original.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(kept, original)
                restored += 1
        return f"put {restored} of {len(self.moved)} metadata files back"


def delete_metadata_files(spec: DeleteMetadataFiles, context: DrillContext) -> MetadataFilesDeleted:
    table = context.stack.catalog().load_table(spec.table)
    metadata_dir = _local(table.metadata_location).parent
    files = metadata_files(metadata_dir)
    doomed = files[: len(files) - spec.keep_newest] if spec.keep_newest else files
    handle = MetadataFilesDeleted(context, spec.table, description=spec.describe())
    aside = context.quarantine / "metadata" / spec.table
    aside.mkdir(parents=True, exist_ok=True)
    for path in doomed:
        kept = aside / path.name
        try:
            shutil.move(path, kept)
        except FileNotFoundError:
            continue  # expired by a concurrent commit meanwhile
        handle.moved.append((path, kept))
    return handle


HIDDEN_SUFFIX = "__hidden_by_datadrill"


@dataclass
class TableHidden:
    context: DrillContext
    identifier: str
    description: str
    reverted: bool = False

    @property
    def hidden(self) -> str:
        return self.identifier + HIDDEN_SUFFIX

    def revert(self) -> str:
        if self.reverted:
            return "already reverted"
        self.reverted = True
        catalog = self.context.stack.catalog()
        if has_catalog_row(catalog, self.hidden) and not has_catalog_row(catalog, self.identifier):
            catalog.rename_table(self.hidden, self.identifier)
            return f"renamed {self.hidden} back to {self.identifier}"
        return "nothing to do: the table is back"


def hide_table(spec: HideTable, context: DrillContext) -> TableHidden:
    handle = TableHidden(context, spec.table, spec.describe())
    context.stack.catalog().rename_table(spec.table, handle.hidden)
    return handle
