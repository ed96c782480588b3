"""Network faults on the query path: clients reach the query engine through the stack's
fault proxy (Toxiproxy's API). First every answer comes back 1.5 s late, past the 1 s a
dashboard waits; then the path goes down and connections are refused. Queries fail while
either lasts and recover on their own once the proxy is clean. The pipeline underneath
is untouched: the sink keeps up with Kafka and no row is lost or duplicated."""

from datadrill.model import (
    SLO,
    Automatic,
    ConsumerLag,
    Expectations,
    NetworkFault,
    QuerySuccess,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="network-query-path",
    description="1.5 s of latency on the query path for 4 s, then the path down for 3 s.",
    workload=Workload(rate=300, canary_interval_s=0.5),
    slos=(
        SLO(
            "dashboard queries answer within 1 s",
            sli=QuerySuccess(timeout_s=1.0),
            objective=0.999,
            alert=ThresholdAlert(for_s=2),
        ),
        # Not a query: read from Kafka, so it sees the pipeline, not the query path.
        SLO("sink keeps up", sli=ConsumerLag(max_messages=5_000), objective=0.99),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(
        NetworkFault(at_s=2, duration_s=4, toxic="latency", attributes={"latency": 1500, "jitter": 100}),
        NetworkFault(at_s=8, duration_s=3, toxic="down"),
    ),
    recovery=Automatic(),
    expectations=Expectations(detect_within_s=6, recover_within_s=15),
    probe_interval_s=0.5,
    stabilisation_s=2,
    max_duration_s=60,
    verify_integrity=True,
)
