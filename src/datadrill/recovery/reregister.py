"""Re-register a table from the newest metadata file that survived.

Through pyiceberg's Catalog API only (``drop_table`` without purge, ``register_table``), so
it works on every catalog pyiceberg loads; the result is confirmed through a fresh client.
"""

from __future__ import annotations

import contextlib

from pyiceberg.exceptions import NoSuchTableError

from datadrill.errors import DrillError
from datadrill.faults.base import DrillContext
from datadrill.faults.metadata import remember_location, remembered_locations, require_registrable
from datadrill.model.recovery import ReregisterFromMetadata
from datadrill.platform.warehouse import Warehouse
from datadrill.recovery.result import StepResult


class NoSurvivingMetadata(DrillError):
    """No metadata file of the table is left to register it from."""


class ReregisterNotVisible(DrillError):
    """The catalog took the registration, but a fresh client loads something else."""


def metadata_dir_candidates(context: DrillContext, identifier: str) -> list[str]:
    """Where the table's metadata may live, most likely first: beside the metadata location
    seen earlier in this run (a REST, Hive or Glue catalog picks table locations itself),
    then <warehouse>/<namespace>/<table>/metadata (pyiceberg's SQL catalog) and
    <warehouse>/<namespace>.db/<table>/metadata (Hive-style layouts)."""
    namespace, name = identifier.split(".", 1)
    warehouse = context.stack.warehouse()
    candidates = []
    remembered = remembered_locations(context).get(identifier)
    if remembered is not None:
        candidates.append(Warehouse.parent(remembered))
    candidates += [
        f"{warehouse.location}/{namespace}/{name}/metadata",
        f"{warehouse.location}/{namespace}.db/{name}/metadata",
    ]
    return list(dict.fromkeys(candidates))


def table_metadata_dir(context: DrillContext, identifier: str) -> str:
    """The first candidate directory that holds metadata files (the first one if none does)."""
    warehouse = context.stack.warehouse()
    candidates = metadata_dir_candidates(context, identifier)
    return next((c for c in candidates if warehouse.metadata_files(c)), candidates[0])


def reregister(context: DrillContext, identifier: str) -> str:
    """Register ``identifier`` from its newest surviving metadata file; returns its location."""
    require_registrable(context, "ReregisterFromMetadata")
    metadata_dir = table_metadata_dir(context, identifier)
    files = context.stack.warehouse().metadata_files(metadata_dir)
    if not files:
        looked = ", ".join(metadata_dir_candidates(context, identifier))
        raise NoSurvivingMetadata(f"no *.metadata.json left to register {identifier} from (looked in {looked})")
    newest = files[-1].location
    catalog = context.stack.catalog()
    namespace = identifier.split(".", 1)[0]
    if not catalog.namespace_exists(namespace):
        catalog.create_namespace(namespace)
    with contextlib.suppress(NoSuchTableError):
        catalog.drop_table(identifier)  # the entry only, never purged: files stay
    catalog.register_table(identifier, newest)
    seen = context.stack.catalog().load_table(identifier).metadata_location
    if seen != newest:
        raise ReregisterNotVisible(
            f"{identifier} registered from {newest}, but a fresh catalog client loads {seen}"
        )
    remember_location(context, identifier, newest)
    return newest


def run_reregister_from_metadata(step: ReregisterFromMetadata, context: DrillContext) -> StepResult:
    location = reregister(context, step.table)
    return StepResult(f"{step.table} registered from {location.rsplit('/', 1)[-1]}")
