"""Schema drift: the producer (the outbox relay) writes with a drifted writer schema."""

from __future__ import annotations

from datadrill.faults.base import DrillContext, RevertData
from datadrill.model.faults import SchemaDrift
from datadrill.stack.port import ProducerContract


class SchemaDriftFault:
    kind = "contract.schema_drift"
    spec_type = SchemaDrift

    def prepare(self, spec: SchemaDrift, context: DrillContext) -> RevertData:
        before = context.stack.platform.producer_contract()
        return {"writer_before": before.writer, "enforce_before": before.enforce}

    def apply(self, spec: SchemaDrift, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.platform.set_producer_contract(
            ProducerContract(writer=spec.change, enforce=spec.enforcement)
        )
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.platform.set_producer_contract(
            ProducerContract(writer=data["writer_before"], enforce=data["enforce_before"])
        )
        return "producer back on its previous writer schema and enforcement"

    def exclusive_key(self, spec: SchemaDrift) -> str | None:
        return "producer:writer"
