"""The ``KafkaCluster`` protocol: what the stack process does to a Kafka cluster, whatever
it is (librdkafka's mock cluster in-process, or a real cluster reached over the network).

Each cluster says which fault capabilities it has and, for those it lacks, why; the stack
process publishes that in its state file so faults are refused before a run starts.

Example::

    cluster: KafkaCluster = EmbeddedKafka.start(config.kafka, clock=clock)
    cluster.capabilities()[KafkaCapability.LEADER_MOVE]   # "" (it can)
    cluster.broker_down(2)
    cluster.tick()   # leader moves that fell due, as event fields
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from datadrill.stack.port import KafkaCapability


@dataclass(frozen=True)
class BrokerState:
    broker: int
    address: str
    up: bool
    detail: str


Emit = Callable[..., None]  # (event name, **fields)


class KafkaCluster(Protocol):
    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def broker_addresses(self) -> dict[int, str]: ...

    def capabilities(self) -> dict[KafkaCapability, str]:
        """Every capability, with the reason it is missing ("" when the cluster has it)."""
        ...

    def create_topic(self, name: str, *, partitions: int, replication_factor: int) -> None: ...

    def broker_down(self, broker: int) -> dict[str, Any]:
        """Take ``broker`` down; returns what happened, for the stack's event log."""
        ...

    def broker_up(self, broker: int) -> dict[str, Any]: ...

    def set_rtt(self, broker: int, rtt_ms: int) -> None: ...

    def push_request_errors(
        self, api_key: int, errors: Sequence[int], *, broker: int | None = None, rtts_ms: Sequence[int] = ()
    ) -> None: ...

    def clear_request_errors(self, api_key: int) -> None: ...

    def move_leader(self, topic: str, partition: int, broker: int) -> None: ...

    def delete_records(self, topic: str, before: Mapping[int, int]) -> dict[int, int]:
        """Delete each partition's records below its offset in ``before``; returns the low
        watermarks afterwards, by partition."""
        ...

    def recreate_topic(self, topic: str) -> dict[str, int]:
        """Delete ``topic`` and create it again, empty, with its partitions and replication
        factor (returned as ``partitions``, ``replication_factor``)."""
        ...

    def leaders(self) -> dict[str, Any]:
        """Partition leaders and brokers down, as the control API returns them."""
        ...

    def tick(self, emit: Emit) -> None:
        """Periodic work (a mock cluster's leader elections). Each thing that happens is
        passed to ``emit(event, **fields)`` before anyone can see its effect: a client that
        finds a leader moved also finds the election in the event log."""
        ...

    def brokers(self) -> list[BrokerState]:
        """Each broker's state for ``stack status``."""
        ...

    def close(self) -> None: ...
