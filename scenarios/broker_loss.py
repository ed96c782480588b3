"""Broker loss: broker 2 goes down for 8 s; the stack moves its partition leaders after
the election delay; the broker comes back. A replicated cluster rides through it:
producers and consumers keep going and nothing is lost."""

from datadrill.model import (
    SLO,
    Automatic,
    BrokerLoss,
    CanaryLatency,
    Expectations,
    Freshness,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="broker-loss",
    description="Broker 2 down for 8 s with leader election after the stack's election delay.",
    workload=Workload(rate=1000, canary_interval_s=0.5),
    slos=(
        SLO(
            "canary latency",
            sli=CanaryLatency(max_latency_s=10),
            objective=0.99,
            alert=ThresholdAlert(for_s=2),
        ),
        SLO("mart freshness", sli=Freshness(max_age_s=15), objective=0.999, alert=ThresholdAlert(for_s=3)),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(BrokerLoss(at_s=2, duration_s=8, broker=2),),
    recovery=Automatic(),
    # Riding through is the point: no detection is expected, recovery must be quick.
    expectations=Expectations(recover_within_s=30),
    stabilisation_s=2,
    max_duration_s=90,
)
