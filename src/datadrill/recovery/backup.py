"""Catalog backups: the catalog entry of a table plus the metadata file it points at.

A metastore backup that holds only the pointer is useless once metadata files are
cleaned up, so the backup keeps a copy of the file; data files are never deleted by the
platform, so the snapshot it describes stays readable.

Backups read the catalog and restores write it through pyiceberg's Catalog API only
(``load_table``; ``drop_table`` without purge, then ``register_table``), so they work on
every catalog pyiceberg loads. A restore is confirmed through a fresh catalog client.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from pyiceberg.exceptions import NoSuchTableError

from datadrill.errors import DrillError
from datadrill.faults.base import DrillContext
from datadrill.faults.metadata import remember_location, require_registrable
from datadrill.model.recovery import RestoreCatalogBackup
from datadrill.recovery.result import StepResult


class BackupMissing(DrillError):
    """A restore named a backup that was never taken."""


class RestoreNotVisible(DrillError):
    """The catalog took the restore, but a fresh client does not see the backup's snapshot."""


@dataclass(frozen=True)
class CatalogBackup:
    name: str
    identifier: str
    metadata_location: str
    snapshot_id: int | None
    rows: int | None
    taken_mono: float

    @property
    def metadata_copy_name(self) -> str:
        return self.metadata_location.rsplit("/", 1)[-1]


def backup_dir(context: DrillContext, name: str) -> Path:
    return context.run_dir / "backups" / name


def take_backup(context: DrillContext, name: str, identifier: str) -> CatalogBackup:
    table = context.stack.catalog().load_table(identifier)
    remember_location(context, identifier, table.metadata_location)
    snapshot = table.current_snapshot()
    rows = None
    if snapshot is not None and snapshot.summary is not None:
        total = snapshot.summary.additional_properties.get("total-records")
        rows = int(total) if total is not None else None
    backup = CatalogBackup(
        name=name,
        identifier=identifier,
        metadata_location=table.metadata_location,
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        rows=rows,
        taken_mono=context.clock.monotonic(),
    )
    target = backup_dir(context, name)
    target.mkdir(parents=True, exist_ok=True)
    # The file may be local or in object storage; the copy is kept with the run.
    data = context.stack.warehouse().read_bytes(backup.metadata_location)
    (target / backup.metadata_copy_name).write_bytes(data)
    (target / "backup.json").write_text(json.dumps(backup.__dict__, indent=2), encoding="utf-8")
    return backup


def load_backup(context: DrillContext, name: str) -> CatalogBackup:
    path = backup_dir(context, name) / "backup.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupMissing(f"no catalog backup named {name!r} was taken in this run") from None
    return CatalogBackup(**data)


def restore_backup(context: DrillContext, name: str) -> CatalogBackup:
    """Point the catalog at the backup's metadata file (putting the file back if it was
    deleted). Whatever the catalog held for the table before is replaced; its files stay."""
    backup = load_backup(context, name)
    require_registrable(context, "RestoreCatalogBackup")
    warehouse = context.stack.warehouse()
    if not warehouse.exists(backup.metadata_location):
        copy = backup_dir(context, name) / backup.metadata_copy_name
        warehouse.write_bytes(backup.metadata_location, copy.read_bytes())
    catalog = context.stack.catalog()
    namespace = backup.identifier.split(".", 1)[0]
    if not catalog.namespace_exists(namespace):
        catalog.create_namespace(namespace)
    with contextlib.suppress(NoSuchTableError):
        catalog.drop_table(backup.identifier)  # the row only: files stay
    catalog.register_table(backup.identifier, backup.metadata_location)
    # As a reader finds it: a fresh client loads the table at the backup's snapshot.
    snapshot = context.stack.catalog().load_table(backup.identifier).current_snapshot()
    seen = snapshot.snapshot_id if snapshot is not None else None
    if seen != backup.snapshot_id:
        raise RestoreNotVisible(
            f"{backup.identifier} registered from backup {name!r}, but a fresh catalog client "
            f"loads snapshot {seen}, not the backup's {backup.snapshot_id}"
        )
    return backup


def run_restore_catalog_backup(step: RestoreCatalogBackup, context: DrillContext) -> StepResult:
    backup = restore_backup(context, step.backup)
    age = context.clock.monotonic() - backup.taken_mono
    rows = f"{backup.rows:,} rows" if backup.rows is not None else "row count unknown"
    return StepResult(
        f"{backup.identifier} restored to snapshot {backup.snapshot_id} ({rows}), "
        f"a backup taken {age:.1f} s earlier",
        rows=backup.rows,
        extra={"backup": backup.name, "snapshot_id": backup.snapshot_id},
    )
