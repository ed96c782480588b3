"""Schema drift: the producer (the outbox relay) writes with a drifted writer schema."""

from __future__ import annotations

from datadrill.faults.base import DrillContext, RevertData, Seen, await_effect
from datadrill.faults.connector import component_status
from datadrill.model.faults import SchemaDrift
from datadrill.stack.port import ProducerContract


def _contract_text(contract: ProducerContract) -> str:
    writer = "the contract's own schema" if contract.writer is None else f"schema {contract.writer!r}"
    return f"{writer} with enforcement {'on' if contract.enforce else 'off'}"


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

    def confirm(self, spec: SchemaDrift, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The producer's contract setting is the drifted one. It is the setting the relay
        reads before each batch; whether a batch has gone out with it since is not checked
        (nothing may be flowing), nor is it visible on the port."""
        expected = ProducerContract(writer=spec.change, enforce=spec.enforcement)

        def look() -> Seen:
            now = context.stack.platform.producer_contract()
            if now != expected:
                return Seen(False, f"producer writes {_contract_text(now)}")
            return Seen(True, f"producer writes {_contract_text(now)}")

        return await_effect(
            context, within_s, expected=f"producer writing {_contract_text(expected)}", look=look
        )

    def target(self, spec: SchemaDrift, context: DrillContext) -> str:
        relay = component_status(context, "relay", field="SchemaDrift (the relay)")
        now = context.stack.platform.producer_contract()
        running = f"pid {relay.pid}" if relay.pid is not None else "not running now"
        return f"the producer (component relay, {running}), writing {_contract_text(now)} now"
