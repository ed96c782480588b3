"""Schema drift: the producer (the outbox relay) writes with a drifted writer schema."""

from __future__ import annotations

from pathlib import Path

from datadrill.faults.base import DrillContext, RevertData
from datadrill.model.faults import SchemaDrift


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _restore(path: Path, content: str | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(content, encoding="utf-8")


class SchemaDriftFault:
    kind = "contract.schema_drift"
    spec_type = SchemaDrift

    def prepare(self, spec: SchemaDrift, context: DrillContext) -> RevertData:
        run = context.stack.paths.run
        writer, enforce = run / "relay.writer", run / "relay.enforce"
        return {
            "writer_file": str(writer),
            "enforce_file": str(enforce),
            "writer_before": _read(writer),
            "enforce_before": _read(enforce),
        }

    def apply(self, spec: SchemaDrift, context: DrillContext, data: RevertData) -> RevertData:
        Path(data["enforce_file"]).write_text("on" if spec.enforcement else "off", encoding="utf-8")
        Path(data["writer_file"]).write_text(spec.change, encoding="utf-8")
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        _restore(Path(data["writer_file"]), data["writer_before"])
        _restore(Path(data["enforce_file"]), data["enforce_before"])
        return "producer back on its previous writer schema and enforcement"

    def exclusive_key(self, spec: SchemaDrift) -> str | None:
        return "producer:writer"
