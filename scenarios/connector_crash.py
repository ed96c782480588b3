"""Connector crash loop: the sink is SIGKILLed three times, 3 s apart, and the relay once.
The restart-rate SLI sees it; the supervisor brings both back; nothing is lost or doubled."""

from datadrill.model import (
    SLO,
    Automatic,
    Expectations,
    Freshness,
    KillComponent,
    RestartRate,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="connector-crash-loop",
    description="The sink crashes three times in a row and the relay once; the supervisor restarts them.",
    workload=Workload(rate=1000, canary_interval_s=0.5),
    slos=(
        SLO(
            "connector restarts",
            sli=RestartRate(max_per_min=3, window_s=20),
            objective=0.99,
            alert=ThresholdAlert(for_s=0),
        ),
        SLO("mart freshness", sli=Freshness(max_age_s=15), objective=0.999, alert=ThresholdAlert(for_s=3)),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(
        KillComponent(at_s=2, component="sink", times=3, every_s=3),
        KillComponent(at_s=4, component="relay"),
    ),
    expectations=Expectations(detect_within_s=10, recover_within_s=60),
    recovery=Automatic(),
    stabilisation_s=2,
    max_duration_s=90,
)
