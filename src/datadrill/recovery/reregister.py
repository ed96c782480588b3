"""Re-register a table from the newest metadata file that survived."""

from __future__ import annotations

import contextlib
from pathlib import Path

from pyiceberg.exceptions import NoSuchTableError

from datadrill.errors import DrillError
from datadrill.faults.base import DrillContext
from datadrill.faults.metadata import metadata_files


class NoSurvivingMetadata(DrillError):
    """No metadata file of the table is left to register it from."""


def table_metadata_dir(context: DrillContext, identifier: str) -> Path:
    """Where the table's metadata lives: <warehouse>/<namespace>/<table>/metadata for
    pyiceberg's SQL catalog (<namespace>.db/ for Hive-style layouts)."""
    namespace, name = identifier.split(".", 1)
    warehouse = context.stack.paths.warehouse.resolve()
    candidates = [
        warehouse / namespace / name / "metadata",
        warehouse / f"{namespace}.db" / name / "metadata",
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def reregister(context: DrillContext, identifier: str) -> Path:
    metadata_dir = table_metadata_dir(context, identifier)
    files = metadata_files(metadata_dir) if metadata_dir.is_dir() else []
    if not files:
        raise NoSurvivingMetadata(f"no *.metadata.json left in {metadata_dir} to register {identifier} from")
    newest = files[-1]
    catalog = context.stack.catalog()
    namespace = identifier.split(".", 1)[0]
    if not catalog.namespace_exists(namespace):
        catalog.create_namespace(namespace)
    with contextlib.suppress(NoSuchTableError):
        catalog.drop_table(identifier)  # the row only: files stay
    catalog.register_table(identifier, f"file://{newest}")
    return newest
