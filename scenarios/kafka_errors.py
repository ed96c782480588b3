"""Kafka request errors and latency: 200 Produce requests answered NOT_LEADER_OR_FOLLOWER,
then every broker answers 300 ms late for 5 s. Retries absorb both; nothing is lost."""

from datadrill.model import (
    SLO,
    Automatic,
    BrokerLatency,
    CanaryLatency,
    Expectations,
    KafkaRequestErrors,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="kafka-errors-and-latency",
    description="Pushed Produce errors, then 300 ms broker round trips for 5 s.",
    workload=Workload(rate=1000, canary_interval_s=0.5),
    slos=(
        SLO(
            "canary latency",
            sli=CanaryLatency(max_latency_s=10),
            objective=0.99,
            alert=ThresholdAlert(for_s=2),
        ),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(
        KafkaRequestErrors(at_s=1, api="produce", error="NOT_LEADER_OR_FOLLOWER", count=200),
        BrokerLatency(at_s=3, duration_s=5, rtt_ms=300),
    ),
    recovery=Automatic(),
    expectations=Expectations(recover_within_s=30),
    stabilisation_s=2,
    max_duration_s=90,
)
