"""Kafka faults, through the stack's Kafka capabilities. Each plugin names the capability it
needs (``requires``), so a backend without it refuses the fault before a run starts.

They are confirmed as a client sees the cluster: the brokers the cluster metadata lists
(librdkafka's admin client on the stack's bootstrap servers, which the blast-radius guard
keeps on loopback), a broker's listener refusing connections, the time a broker takes to
answer an ApiVersions request. Queued request errors are not visible from outside without
spending one; see :meth:`RequestErrorsFault.confirm` for what is checked instead.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path
from typing import Any

from datadrill.errors import ConfigError, StackError
from datadrill.faults.base import (
    DrillContext,
    RevertData,
    Seen,
    await_effect,
    look_timeout,
    refuses_connections,
)
from datadrill.model.faults import KAFKA_APIS, KAFKA_ERRORS, BrokerLatency, BrokerLoss, KafkaRequestErrors
from datadrill.stack.port import KafkaCapability

# How long target() waits for the cluster metadata.
METADATA_TIMEOUT_S = 5.0
# A broker answering at least this share of the RTT set counts as delayed: the mock cluster
# delays each response by exactly the RTT; a proxy's latency toxic may come in a little
# under it.
RTT_SHARE = 0.8


def cluster_brokers(bootstrap_servers: str, *, timeout_s: float) -> dict[int, str]:
    """The brokers the cluster metadata lists now, by id: ``{1: "127.0.0.1:40411", ...}``.
    Raises StackError when no broker answers in time."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # log_level 0: a down broker's refused connections are the point, not news for stderr.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise StackError(
            f"no Kafka broker at {bootstrap_servers} answered a metadata request within {timeout_s:g} s: {exc}"
        ) from None
    return {int(b.id): f"{b.host}:{b.port}" for b in metadata.brokers.values()}


# ApiVersions v0 (api key 18): the one request every broker answers, before any other.
_API_VERSIONS = struct.pack(">hhih", 18, 0, 0x00DD, len(b"datadrill")) + b"datadrill"


def answer_time(address: str, *, timeout_s: float) -> float | None:
    """Seconds the broker at ``host:port`` takes to answer an ApiVersions request (None: no
    answer within ``timeout_s``). Measured on the machine's monotonic clock: this is the
    network's own delay, not the drill's timeline."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
        conn.settimeout(timeout_s)
        began = time.monotonic()
        conn.sendall(struct.pack(">i", len(_API_VERSIONS)) + _API_VERSIONS)
        try:
            head = conn.recv(4)
        except TimeoutError:
            return None
        if len(head) < 4:
            raise ConnectionResetError(f"broker at {address} closed the connection without answering")
        return time.monotonic() - began


def _broker_target(context: DrillContext, broker: int, *, field: str) -> tuple[dict[int, str], str]:
    brokers = cluster_brokers(context.stack.bootstrap_servers, timeout_s=METADATA_TIMEOUT_S)
    if broker not in brokers:
        listed = ", ".join(str(b) for b in sorted(brokers)) or "none"
        raise ConfigError(
            "scenario",
            field,
            broker,
            f"a broker id of the cluster at {context.stack.bootstrap_servers}; its metadata lists {listed} "
            "(a broker already down is not listed)",
        )
    return brokers, f"broker {broker} of {len(brokers)} ({brokers[broker]})"


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

    def confirm(self, spec: BrokerLoss, context: DrillContext, data: RevertData, within_s: float) -> str:
        """The broker is missing from the cluster metadata (the mock cluster drops a down
        broker), or the metadata still lists it and its listener refuses connections (a
        broker behind a disabled proxy, a killed container not yet timed out)."""
        broker = int(data["broker"])
        bootstrap = context.stack.bootstrap_servers
        timeout_s = look_timeout(within_s)

        def look() -> Seen:
            brokers = cluster_brokers(bootstrap, timeout_s=timeout_s)
            if broker not in brokers:
                listed = ", ".join(str(b) for b in sorted(brokers))
                return Seen(True, f"broker {broker} missing from the cluster metadata (lists {listed})")
            if refuses_connections(brokers[broker], timeout_s=timeout_s):
                return Seen(True, f"broker {broker} ({brokers[broker]}) refuses connections")
            return Seen(False, f"broker {broker} listed at {brokers[broker]} and accepting connections")

        return await_effect(context, within_s, expected=f"broker {broker} down", look=look)

    def target(self, spec: BrokerLoss, context: DrillContext) -> str:
        return _broker_target(context, spec.broker, field="BrokerLoss.broker")[1]


class RequestErrorsFault:
    kind = "kafka.request_errors"
    spec_type = KafkaRequestErrors
    requires = frozenset({KafkaCapability.REQUEST_ERRORS})

    def prepare(self, spec: KafkaRequestErrors, context: DrillContext) -> RevertData:
        events = context.stack.paths.events_file
        # Where the stack's event log ends now: confirm reads the events written after it.
        offset = events.stat().st_size if events.exists() else 0
        return {"api_key": KAFKA_APIS[spec.api], "events_offset": offset}

    def apply(self, spec: KafkaRequestErrors, context: DrillContext, data: RevertData) -> RevertData:
        errors = [KAFKA_ERRORS[spec.error]] * spec.count
        context.stack.kafka.push_request_errors(data["api_key"], errors)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.kafka.clear_request_errors(data["api_key"])
        return "pending request errors cleared"

    def exclusive_key(self, spec: KafkaRequestErrors) -> str | None:
        return f"api:{spec.api}"

    def confirm(
        self, spec: KafkaRequestErrors, context: DrillContext, data: RevertData, within_s: float
    ) -> str:
        """What the stack process reports: its event log records each push it accepted
        (API, errors). The queue inside the cluster has no read on the stack's port, and
        probing it with a request of our own would spend an error the scenario counted
        (or write to the platform's topic); whether clients then hit the errors is left
        to the SLIs. Only events written after prepare count."""
        api_key = int(data["api_key"])
        offset = int(data.get("events_offset", 0))
        path = context.stack.paths.events_file

        def look() -> Seen:
            for event in _events_after(path, offset):
                if event.get("event") == "request_errors_pushed" and event.get("api_key") == api_key:
                    errors = event.get("errors") or []
                    return Seen(
                        True,
                        f"the stack queued {len(errors)} {spec.api} request errors "
                        f"({spec.error}) on the cluster (its event log)",
                    )
            return Seen(False, f"no request_errors_pushed event for api key {api_key} in {path.name}")

        return await_effect(
            context, within_s, expected=f"{spec.count} {spec.api} request errors queued", look=look
        )

    def target(self, spec: KafkaRequestErrors, context: DrillContext) -> str:
        return (
            f"the next {spec.count} {spec.api} requests to the Kafka cluster at "
            f"{context.stack.bootstrap_servers}, failing with {spec.error}"
        )


class BrokerLatencyFault:
    kind = "kafka.broker_latency"
    spec_type = BrokerLatency
    requires = frozenset({KafkaCapability.BROKER_RTT})

    def prepare(self, spec: BrokerLatency, context: DrillContext) -> RevertData:
        # The brokers' addresses, learned while they still answer quickly: once delayed, a
        # metadata request waits out the RTT too, and confirm would see only a timeout.
        try:
            brokers = cluster_brokers(context.stack.bootstrap_servers, timeout_s=METADATA_TIMEOUT_S)
        except StackError:
            brokers = {}
        return {"broker": spec.broker, "addresses": {str(n): a for n, a in brokers.items()}}

    def apply(self, spec: BrokerLatency, context: DrillContext, data: RevertData) -> RevertData:
        context.stack.kafka.set_rtt(spec.broker, spec.rtt_ms)
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        context.stack.kafka.set_rtt(data["broker"], 0)
        return "broker RTT back to 0 ms"

    def exclusive_key(self, spec: BrokerLatency) -> str | None:
        return "kafka:rtt"

    def confirm(self, spec: BrokerLatency, context: DrillContext, data: RevertData, within_s: float) -> str:
        """Each delayed broker takes at least ~the RTT to answer an ApiVersions request (or
        does not answer before the look gives up, when the RTT is longer than that)."""
        broker = int(data["broker"])
        bootstrap = context.stack.bootstrap_servers
        timeout_s = look_timeout(within_s)

        known = {int(n): str(a) for n, a in dict(data.get("addresses") or {}).items()}

        def look() -> Seen:
            brokers = known or cluster_brokers(bootstrap, timeout_s=timeout_s)
            chosen = brokers if broker == -1 else {n: a for n, a in brokers.items() if n == broker}
            if not chosen:
                return Seen(False, f"broker {broker} not in the cluster metadata")
            seen = []
            for number, address in sorted(chosen.items()):
                took = answer_time(address, timeout_s=max(timeout_s, spec.rtt_ms / 1000 * 1.5))
                if took is not None and took < spec.rtt_ms / 1000 * RTT_SHARE:
                    return Seen(False, f"broker {number} answered in {took * 1000:.0f} ms")
                seen.append(f"{number}: {'no answer' if took is None else f'{took * 1000:.0f} ms'}")
            which = "every broker" if broker == -1 else f"broker {broker}"
            return Seen(True, f"{which} answers late ({', '.join(seen)}; RTT {spec.rtt_ms} ms set)")

        which = "every broker" if broker == -1 else f"broker {broker}"
        return await_effect(
            context, within_s, expected=f"{which} answering ≥ {spec.rtt_ms} ms late", look=look
        )

    def target(self, spec: BrokerLatency, context: DrillContext) -> str:
        if spec.broker != -1:
            return _broker_target(context, spec.broker, field="BrokerLatency.broker")[1]
        brokers = cluster_brokers(context.stack.bootstrap_servers, timeout_s=METADATA_TIMEOUT_S)
        listed = ", ".join(f"{b}: {a}" for b, a in sorted(brokers.items()))
        return f"every broker of {len(brokers)} ({listed})"


def _events_after(path: Path, offset: int) -> list[dict[str, Any]]:
    """The stack's events written after byte ``offset`` of its event log (JSON lines; a
    torn last line is one still being written, skipped)."""
    try:
        with path.open("rb") as stream:
            stream.seek(offset)
            tail = stream.read()
    except FileNotFoundError:
        return []
    events = []
    for line in tail.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # torn: its writer is mid-line
        if isinstance(record, dict):
            events.append(record)
    return events
