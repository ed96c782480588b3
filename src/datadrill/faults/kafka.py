"""Kafka faults, through the stack's Kafka capabilities. Each plugin names the capability it
needs (``requires``), so a backend without it refuses the fault before a run starts."""

from __future__ import annotations

from datadrill.faults.base import DrillContext, RevertData
from datadrill.model.faults import KAFKA_APIS, KAFKA_ERRORS, BrokerLatency, BrokerLoss, KafkaRequestErrors
from datadrill.stack.port import KafkaCapability


class BrokerLossFault:
    """A broker goes down; the stack's controller moves its leaders after the election
    delay; reverting brings the broker back."""

    kind = "kafka.broker_loss"
    spec_type = BrokerLoss
    requires = frozenset({KafkaCapability.BROKER_LOSS})

    def prepare(self, spec: BrokerLoss, context: DrillContext) -> RevertData:
        return {"broker": spec.broker}

    def apply(self, spec: BrokerLoss, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.kafka.broker_down(spec.broker)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.kafka.broker_up(data["broker"])
        return f"broker {data['broker']} up"

    def exclusive_key(self, spec: BrokerLoss) -> str | None:
        return f"broker:{spec.broker}"


class RequestErrorsFault:
    kind = "kafka.request_errors"
    spec_type = KafkaRequestErrors
    requires = frozenset({KafkaCapability.REQUEST_ERRORS})

    def prepare(self, spec: KafkaRequestErrors, context: DrillContext) -> RevertData:
        return {"api_key": KAFKA_APIS[spec.api]}

    def apply(self, spec: KafkaRequestErrors, context: DrillContext, data: RevertData) -> RevertData:
        errors = [KAFKA_ERRORS[spec.error]] * spec.count
        context.stack.kafka.push_request_errors(data["api_key"], errors)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.kafka.clear_request_errors(data["api_key"])
        return "pending request errors cleared"

    def exclusive_key(self, spec: KafkaRequestErrors) -> str | None:
        return f"api:{spec.api}"


class BrokerLatencyFault:
    kind = "kafka.broker_latency"
    spec_type = BrokerLatency
    requires = frozenset({KafkaCapability.BROKER_RTT})

    def prepare(self, spec: BrokerLatency, context: DrillContext) -> RevertData:
        return {"broker": spec.broker}

    def apply(self, spec: BrokerLatency, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.kafka.set_rtt(spec.broker, spec.rtt_ms)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.kafka.set_rtt(data["broker"], 0)
        return "broker RTT back to 0 ms"

    def exclusive_key(self, spec: BrokerLatency) -> str | None:
        return "kafka:rtt"
