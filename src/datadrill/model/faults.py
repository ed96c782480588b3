"""Fault specs: plain data. Implementations live in :mod:`datadrill.faults`.

``at_s`` counts from the end of the steady state. A fault with ``duration_s`` is reverted
when it elapses; without one it stays until the recovery fixes it (and is reverted, if
still needed, when the run ends, whatever happens).

Example::

    DeleteCatalogEntry(at_s=10, table="dwh.orders")
    KillComponent(at_s=5, component="sink")
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from datadrill.model._base import MODEL_CONFIG

TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"


@dataclass(frozen=True, config=MODEL_CONFIG)
class DeleteCatalogEntry:
    """Delete the table's row from the catalog (the metastore forgets the table)."""

    at_s: Annotated[float, Field(ge=0)]
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    duration_s: Annotated[float | None, Field(gt=0)] = None
    kind: Literal["metadata.catalog_entry"] = "metadata.catalog_entry"

    def describe(self) -> str:
        return f"catalog entry of {self.table} deleted"


@dataclass(frozen=True, config=MODEL_CONFIG)
class DeleteMetadataFiles:
    """Delete every ``*.metadata.json`` of the table (the catalog row now dangles)."""

    at_s: Annotated[float, Field(ge=0)]
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    keep_newest: Annotated[int, Field(ge=0, description="metadata files that survive, newest first")] = 0
    duration_s: Annotated[float | None, Field(gt=0)] = None
    kind: Literal["metadata.files"] = "metadata.files"

    def describe(self) -> str:
        kept = f", newest {self.keep_newest} kept" if self.keep_newest else ""
        return f"metadata files of {self.table} deleted{kept}"


@dataclass(frozen=True, config=MODEL_CONFIG)
class HideTable:
    """Rename the table away in the catalog for ``duration_s``, then back: readers fail
    for an exactly known time. Used to calibrate detection and recovery measurements."""

    at_s: Annotated[float, Field(ge=0)]
    duration_s: Annotated[float, Field(gt=0)]
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    kind: Literal["calibration.hide_table"] = "calibration.hide_table"

    def describe(self) -> str:
        return f"{self.table} hidden from the catalog for {self.duration_s:g} s"


@dataclass(frozen=True, config=MODEL_CONFIG)
class KillComponent:
    """SIGKILL a connector process; the supervisor restarts it."""

    at_s: Annotated[float, Field(ge=0)]
    component: Literal["relay", "sink", "workload"] = "sink"
    duration_s: Annotated[float | None, Field(gt=0)] = None
    kind: Literal["connector.crash"] = "connector.crash"

    def describe(self) -> str:
        return f"{self.component} killed (SIGKILL)"


@dataclass(frozen=True, config=MODEL_CONFIG)
class TakeCatalogBackup:
    """Not a fault: back up the catalog entry (and the metadata file it points at) at
    ``at_s``, as a nightly metastore backup would. Restores name it."""

    at_s: Annotated[float, Field(ge=0)]
    name: Annotated[str, Field(min_length=1)] = "nightly"
    table: Annotated[str, Field(pattern=TABLE_PATTERN)] = "dwh.orders"
    kind: Literal["backup.catalog"] = "backup.catalog"

    def describe(self) -> str:
        return f"catalog backup '{self.name}' of {self.table}"


FaultSpec = DeleteCatalogEntry | DeleteMetadataFiles | HideTable | KillComponent
ScheduleItem = FaultSpec | TakeCatalogBackup
