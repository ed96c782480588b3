"""What a fault needs and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from datadrill.engine.clock import Clock

if TYPE_CHECKING:
    from datadrill.model.faults import FaultSpec
    from datadrill.stacks.embedded.client import EmbeddedStack


@dataclass(frozen=True)
class DrillContext:
    """The stack under test and where this run keeps its files."""

    stack: EmbeddedStack
    run_dir: Path
    clock: Clock

    @property
    def quarantine(self) -> Path:
        """Where deleted files wait, so a fault can always be reverted."""
        path = self.run_dir / "quarantine"
        path.mkdir(parents=True, exist_ok=True)
        return path


class FaultHandle(Protocol):
    description: str

    def revert(self) -> str:
        """Undo the fault if it is still in effect; idempotent. Returns what it did."""
        ...


def inject(spec: FaultSpec, context: DrillContext) -> FaultHandle:
    """Inject the fault a spec describes. Every spec kind has exactly one implementation."""
    from datadrill.faults import connector, metadata
    from datadrill.model import faults as specs

    if isinstance(spec, specs.DeleteCatalogEntry):
        return metadata.delete_catalog_entry(spec, context)
    elif isinstance(spec, specs.DeleteMetadataFiles):
        return metadata.delete_metadata_files(spec, context)
    elif isinstance(spec, specs.HideTable):
        return metadata.hide_table(spec, context)
    elif isinstance(spec, specs.KillComponent):
        return connector.kill_component(spec, context)
    else:
        raise TypeError(f"no fault implementation for {spec!r}")
