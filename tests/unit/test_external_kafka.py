"""How the stack process addresses the brokers of a real cluster (no cluster needed)."""

from __future__ import annotations

import pytest

from datadrill.backends.kafka.external import ExternalKafka
from datadrill.errors import ControlError


def test_broker_n_is_the_nth_bootstrap_address() -> None:
    kafka = ExternalKafka("127.0.0.1:19091,127.0.0.1:19092,127.0.0.1:19093")
    assert kafka.broker_addresses == {1: "127.0.0.1:19091", 2: "127.0.0.1:19092", 3: "127.0.0.1:19093"}
    assert kafka.broker_ids == [1, 2, 3]


def test_a_short_bootstrap_list_still_names_every_broker() -> None:
    kafka = ExternalKafka("kafka.staging:9092", brokers=3)
    assert kafka.broker_ids == [1, 2, 3]
    assert kafka.broker_addresses[1] == "kafka.staging:9092"
    assert kafka.broker_addresses[3] == "(proxy kafka-3)"
    with pytest.raises(ControlError, match=r"no broker 4: this cluster has brokers 1\.\.3"):
        kafka.broker_down(4)


def test_broker_faults_without_a_way_to_inject_them_say_what_is_missing() -> None:
    kafka = ExternalKafka("127.0.0.1:19091")
    assert kafka.how_brokers_fail().startswith("not possible")
    with pytest.raises(ControlError, match=r"external\.toxiproxy_url"):
        kafka.broker_down(1)
    with pytest.raises(ControlError, match=r"external\.toxiproxy_url"):
        kafka.set_broker_rtt(1, 100)
    assert kafka.is_up(1)  # nothing was done, nothing is recorded as down


def test_mock_only_faults_are_refused_with_the_reason() -> None:
    error = ExternalKafka("127.0.0.1:19091").unsupported("queued Kafka request errors")
    assert "mock cluster" in str(error) and "not available on this stack" in str(error)
