"""Consumer-lag spike: the producer bursts to 10× while the sink is paused for 6 s. Lag and
freshness see it; recovery time is how long the backlog takes to drain."""

from datadrill.model import (
    SLO,
    Automatic,
    ConsumerLag,
    Expectations,
    Freshness,
    LagSpike,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="consumer-lag-spike",
    description="Producer burst ×10 with the sink paused for 6 s, then the backlog drains.",
    workload=Workload(rate=1000, canary_interval_s=0.5),
    slos=(
        SLO(
            "consumer lag", sli=ConsumerLag(max_messages=5_000), objective=0.99, alert=ThresholdAlert(for_s=1)
        ),
        SLO("mart freshness", sli=Freshness(max_age_s=5), objective=0.999, alert=ThresholdAlert(for_s=2)),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(LagSpike(at_s=2, duration_s=6, burst_factor=10, mode="pause"),),
    recovery=Automatic(),
    expectations=Expectations(detect_within_s=6, recover_within_s=30),
    stabilisation_s=2,
    max_duration_s=90,
)
