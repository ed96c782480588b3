"""A real Kafka cluster, as the stack process sees it: topics through the admin API,
broker faults through the broker's container or its Toxiproxy proxy.

Broker N (1-based) is the Nth address of ``bootstrap_servers``; on the compose stack that
is the proxy ``kafka-N`` its broker advertises. Real brokers elect leaders themselves, so
the faults librdkafka's mock cluster offers beyond loss and latency (queued request
errors, moving a leader by hand) are refused with a reason.

Example::

    kafka = ExternalKafka("127.0.0.1:19091,127.0.0.1:19092", toxiproxy_url="http://127.0.0.1:8474")
    kafka.create_topic("orders", partitions=6, replication_factor=2)
    kafka.broker_down(2)      # proxy kafka-2 disabled (or its container killed)
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datadrill.backends.kafka.base import BrokerState, Emit
from datadrill.errors import ControlError
from datadrill.stack.port import KafkaCapability

RTT_TOXIC = "datadrill-broker-rtt"
# How long one admin request (DeleteRecords, DeleteTopics, CreateTopics) may take.
ADMIN_TIMEOUT_S = 10.0


@dataclass
class ContainerControl:
    """The containers of one compose project, by service name (docker SDK)."""

    project: str
    _client: Any = field(default=None, repr=False)

    def _container(self, service: str) -> Any:
        import docker

        if self._client is None:
            self._client = docker.from_env(timeout=30, version="auto")
        labels = [f"com.docker.compose.project={self.project}", f"com.docker.compose.service={service}"]
        found = self._client.containers.list(all=True, filters={"label": labels})
        if not found:
            raise ControlError(f"no container of service {service!r} in compose project {self.project!r}")
        return found[0]

    def kill(self, service: str) -> None:
        self._container(service).kill()

    def start(self, service: str) -> None:
        self._container(service).start()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class ExternalKafka:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        brokers: int | None = None,
        toxiproxy_url: str = "",
        containers: ContainerControl | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._addresses = [a.strip() for a in bootstrap_servers.split(",") if a.strip()]
        # Broker N is the Nth bootstrap address (its proxy kafka-N) when every broker is
        # listed; a shorter list still names a cluster of ``brokers`` brokers.
        self._brokers = brokers if brokers is not None else len(self._addresses)
        self._toxiproxy_url = toxiproxy_url
        self._containers = containers
        self._down: set[int] = set()
        # Topics the stack asked for, with (partitions, replication factor).
        self._created: dict[str, tuple[int, int]] = {}

    @property
    def broker_addresses(self) -> dict[int, str]:
        listed = dict(enumerate(self._addresses, start=1))
        return {n: listed.get(n, f"(proxy kafka-{n})") for n in range(1, self._brokers + 1)}

    @property
    def broker_ids(self) -> list[int]:
        return list(self.broker_addresses)

    def is_up(self, broker: int) -> bool:
        return broker not in self._down

    def how_brokers_fail(self) -> str:
        if self._containers is not None:
            return f"container kill (compose project {self._containers.project})"
        if self._toxiproxy_url:
            return "Toxiproxy proxy kafka-N disabled"
        return "not possible (no compose project, no Toxiproxy)"

    def _check_broker(self, broker: int) -> None:
        if broker not in self.broker_addresses:
            raise ControlError(f"no broker {broker}: this cluster has brokers 1..{self._brokers}")

    def _admin_proxy(self) -> Any:
        from datadrill.netfaults import ToxiproxyAdmin

        if not self._toxiproxy_url:
            raise ControlError(
                "this fault needs Toxiproxy in front of the brokers: set external.toxiproxy_url"
            )
        return ToxiproxyAdmin(self._toxiproxy_url)

    # -- topics ----------------------------------------------------------------------------
    def create_topic(self, name: str, *, partitions: int, replication_factor: int) -> None:
        """Create ``name`` unless it exists (a re-used cluster keeps its topics)."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        self._created[name] = (partitions, min(replication_factor, self._brokers))
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        try:
            existing = admin.list_topics(timeout=30).topics
        except KafkaException as exc:
            raise ControlError(f"cannot read the cluster's metadata: {exc.args[0].str()}") from None
        if name in existing and existing[name].error is None:
            return
        rf = min(replication_factor, self._brokers)
        future = admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=30)[name]
        try:
            future.result(timeout=60)
        except TimeoutError:
            raise ControlError(f"the cluster did not create topic {name} within 60 s") from None
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ControlError(f"cannot create topic {name}: {exc.args[0].str()}") from None

    def _admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap_servers})

    def delete_records(self, topic: str, before: Mapping[int, int]) -> dict[int, int]:
        """The admin API's DeleteRecords (KIP-107): each partition's log start moves to its
        offset; returns the low watermarks the brokers report."""
        from confluent_kafka import KafkaException, TopicPartition

        if not before:
            return {}
        futures = self._admin().delete_records(
            [TopicPartition(topic, p, o) for p, o in sorted(before.items())],
            request_timeout=ADMIN_TIMEOUT_S,
            operation_timeout=ADMIN_TIMEOUT_S,
        )
        low: dict[int, int] = {}
        for tp, future in futures.items():
            try:
                low[tp.partition] = int(future.result(timeout=ADMIN_TIMEOUT_S * 2).low_watermark)
            except KafkaException as exc:
                raise ControlError(
                    f"DeleteRecords on {topic}[{tp.partition}] below offset {tp.offset} failed: {exc.args[0].str()}"
                ) from None
        return low

    def recreate_topic(self, topic: str) -> dict[str, int]:
        """DeleteTopics, then CreateTopics with the same partitions and replication factor.
        Brokers delete asynchronously, so the create is retried while the cluster still
        answers TOPIC_ALREADY_EXISTS (marked for deletion), for up to ``ADMIN_TIMEOUT_S``."""
        import time

        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.cimpl import NewTopic

        admin = self._admin()
        try:
            # Every topic's metadata: a request naming the topic could auto-create it.
            listed = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics.get(topic)
        except KafkaException as exc:
            raise ControlError(f"cannot read the cluster's metadata: {exc.args[0].str()}") from None
        if listed is not None and listed.error is None and listed.partitions:
            partitions = len(listed.partitions)
            replication_factor = len(listed.partitions[0].replicas) or 1
            try:
                admin.delete_topics([topic], operation_timeout=ADMIN_TIMEOUT_S)[topic].result(
                    timeout=ADMIN_TIMEOUT_S * 2
                )
            except (KafkaException, TimeoutError) as exc:
                raise ControlError(f"cannot delete topic {topic}: {exc}") from None
        elif topic in self._created:
            # Gone already (a run killed between the delete and the create): as it was made.
            partitions, replication_factor = self._created[topic]
        else:
            raise ControlError(f"topic {topic!r} does not exist on the cluster at {self.bootstrap_servers}")
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while True:
            future = admin.create_topics(
                [NewTopic(topic, partitions, replication_factor)], operation_timeout=ADMIN_TIMEOUT_S
            )[topic]
            try:
                future.result(timeout=ADMIN_TIMEOUT_S * 2)
            except TimeoutError:
                raise ControlError(f"the cluster did not create topic {topic} again in time") from None
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS and time.monotonic() < deadline:
                    time.sleep(0.5)  # still being deleted
                    continue
                raise ControlError(
                    f"topic {topic} was deleted and cannot be created again: {error.str()}"
                ) from None
            return {"partitions": partitions, "replication_factor": replication_factor}

    # -- broker faults ---------------------------------------------------------------------
    def capabilities(self) -> dict[KafkaCapability, str]:
        mock_only = (
            "a fault of librdkafka's mock cluster; a real cluster elects its own leaders and "
            "answers requests itself"
        )
        no_proxy = "needs Toxiproxy in front of the brokers: set external.toxiproxy_url"
        reasons = {
            KafkaCapability.BROKER_LOSS: (
                "" if self._containers is not None or self._toxiproxy_url else
                "needs the brokers' containers (compose) or Toxiproxy proxies kafka-N"
            ),
            KafkaCapability.BROKER_RTT: "" if self._toxiproxy_url else no_proxy,
            KafkaCapability.LEADER_MOVE: mock_only,
            KafkaCapability.REQUEST_ERRORS: mock_only,
            KafkaCapability.DELETE_RECORDS: "",  # the admin API's DeleteRecords
            KafkaCapability.TOPIC_RECREATE: "",  # DeleteTopics, then CreateTopics
        }
        return reasons

    def broker_down(self, broker: int) -> dict[str, Any]:
        self._set_up(broker, up=False)
        return {"how": self.how_brokers_fail()}

    def broker_up(self, broker: int) -> dict[str, Any]:
        self._set_up(broker, up=True)
        return {}

    def set_rtt(self, broker: int, rtt_ms: int) -> None:
        self.set_broker_rtt(broker, rtt_ms)

    def push_request_errors(
        self, api_key: int, errors: Sequence[int], *, broker: int | None = None, rtts_ms: Sequence[int] = ()
    ) -> None:
        raise self.unsupported("queued Kafka request errors")

    def clear_request_errors(self, api_key: int) -> None:
        raise self.unsupported("queued Kafka request errors")

    def move_leader(self, topic: str, partition: int, broker: int) -> None:
        raise self.unsupported("moving a partition leader by hand")

    def leaders(self) -> dict[str, Any]:
        raise ControlError("leaders are tracked for the mock cluster only; ask the real cluster")

    def tick(self, emit: Emit) -> None:
        pass  # real brokers elect their own leaders

    def brokers(self) -> list[BrokerState]:
        how = self.how_brokers_fail()
        return [
            BrokerState(n, address, self.is_up(n), f"{'up' if self.is_up(n) else 'DOWN'}; broker loss: {how}")
            for n, address in self.broker_addresses.items()
        ]

    def _set_up(self, broker: int, *, up: bool) -> None:
        """Start or kill the broker's container; without containers, its proxy."""
        self._check_broker(broker)
        name = f"kafka-{broker}"
        if self._containers is not None and up:
            self._containers.start(name)
        elif self._containers is not None:
            self._containers.kill(name)
        elif up:
            self._admin_proxy().enable(name)
        else:
            self._admin_proxy().disable(name)
        if up:
            self._down.discard(broker)
        else:
            self._down.add(broker)

    def set_broker_rtt(self, broker: int, rtt_ms: int) -> None:
        """Latency on the broker's proxy (``-1``: every broker); 0 removes it."""
        from datadrill.netfaults import ToxicNotFound

        admin = self._admin_proxy()
        targets = self.broker_ids if broker == -1 else [broker]
        for target in targets:
            self._check_broker(target)
            proxy = f"kafka-{target}"
            with contextlib.suppress(ToxicNotFound):
                admin.remove_toxic(proxy, RTT_TOXIC)
            if rtt_ms > 0:
                admin.add_toxic(proxy, "latency", "downstream", name=RTT_TOXIC, latency=rtt_ms)

    def unsupported(self, what: str) -> ControlError:
        return ControlError(
            f"{what} is a fault of librdkafka's mock cluster; a real cluster elects its own "
            "leaders and answers requests itself, so it is not available on this stack"
        )

    def close(self) -> None:
        if self._containers is not None:
            self._containers.close()
