"""Roll the producer back to the contract's own writer schema, enforcement on."""

from __future__ import annotations

from datadrill.faults.base import DrillContext
from datadrill.model.recovery import RollbackProducer
from datadrill.recovery.result import StepResult
from datadrill.stack.port import ProducerContract


def run_rollback_producer(step: RollbackProducer, context: DrillContext) -> StepResult:
    context.stack.platform.set_producer_contract(ProducerContract())
    return StepResult("the relay writes with the contract's own schema again, enforcement on")
