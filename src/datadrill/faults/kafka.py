"""Kafka faults on the mock cluster, through the stack's control interface."""

from __future__ import annotations

from datadrill.faults.base import DrillContext, RevertData
from datadrill.model.faults import KAFKA_APIS, KAFKA_ERRORS, BrokerLatency, BrokerLoss, KafkaRequestErrors


class BrokerLossFault:
    """A broker goes down; the stack's controller moves its leaders after the election
    delay; reverting brings the broker back."""

    kind = "kafka.broker_loss"
    spec_type = BrokerLoss

    def prepare(self, spec: BrokerLoss, context: DrillContext) -> RevertData:
        return {"broker": spec.broker}

    def apply(self, spec: BrokerLoss, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.control.post(f"/kafka/brokers/{spec.broker}/down")
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.control.post(f"/kafka/brokers/{data['broker']}/up")
        return f"broker {data['broker']} up"

    def exclusive_key(self, spec: BrokerLoss) -> str | None:
        return f"broker:{spec.broker}"


class RequestErrorsFault:
    kind = "kafka.request_errors"
    spec_type = KafkaRequestErrors

    def prepare(self, spec: KafkaRequestErrors, context: DrillContext) -> RevertData:
        return {"api_key": KAFKA_APIS[spec.api]}

    def apply(self, spec: KafkaRequestErrors, context: DrillContext, data: RevertData) -> RevertData:
        errors = [KAFKA_ERRORS[spec.error]] * spec.count
        context.stack.control.post("/kafka/request-errors", {"api_key": data["api_key"], "errors": errors})
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.control.delete(f"/kafka/request-errors/{data['api_key']}")
        return "pending request errors cleared"

    def exclusive_key(self, spec: KafkaRequestErrors) -> str | None:
        return f"api:{spec.api}"


class BrokerLatencyFault:
    kind = "kafka.broker_latency"
    spec_type = BrokerLatency

    def prepare(self, spec: BrokerLatency, context: DrillContext) -> RevertData:
        return {"broker": spec.broker}

    def apply(self, spec: BrokerLatency, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.control.post(f"/kafka/brokers/{spec.broker}/rtt", {"rtt_ms": spec.rtt_ms})
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.control.post(f"/kafka/brokers/{data['broker']}/rtt", {"rtt_ms": 0})
        return "broker RTT back to 0 ms"

    def exclusive_key(self, spec: BrokerLatency) -> str | None:
        return "kafka:rtt"
