"""Re-register a table from the newest metadata file that survived."""

from __future__ import annotations

import contextlib

from pyiceberg.exceptions import NoSuchTableError

from datadrill.errors import DrillError
from datadrill.faults.base import DrillContext
from datadrill.model.recovery import ReregisterFromMetadata
from datadrill.recovery.result import StepResult


class NoSurvivingMetadata(DrillError):
    """No metadata file of the table is left to register it from."""


def table_metadata_dir(context: DrillContext, identifier: str) -> str:
    """Where the table's metadata lives: <warehouse>/<namespace>/<table>/metadata for
    pyiceberg's SQL catalog (<namespace>.db/ for Hive-style layouts)."""
    namespace, name = identifier.split(".", 1)
    warehouse = context.stack.warehouse()
    candidates = [
        f"{warehouse.location}/{namespace}/{name}/metadata",
        f"{warehouse.location}/{namespace}.db/{name}/metadata",
    ]
    return next((c for c in candidates if warehouse.metadata_files(c)), candidates[0])


def reregister(context: DrillContext, identifier: str) -> str:
    """Register ``identifier`` from its newest surviving metadata file; returns its location."""
    metadata_dir = table_metadata_dir(context, identifier)
    files = context.stack.warehouse().metadata_files(metadata_dir)
    if not files:
        raise NoSurvivingMetadata(f"no *.metadata.json left in {metadata_dir} to register {identifier} from")
    newest = files[-1].location
    catalog = context.stack.catalog()
    namespace = identifier.split(".", 1)[0]
    if not catalog.namespace_exists(namespace):
        catalog.create_namespace(namespace)
    with contextlib.suppress(NoSuchTableError):
        catalog.drop_table(identifier)  # the row only: files stay
    catalog.register_table(identifier, newest)
    return newest


def run_reregister_from_metadata(step: ReregisterFromMetadata, context: DrillContext) -> StepResult:
    location = reregister(context, step.table)
    return StepResult(f"{step.table} registered from {location.rsplit('/', 1)[-1]}")
