"""CDC replication lag: the relay stops reading and confirming its replication slot for
15 s. The server keeps the WAL from the slot's confirmed position on, so the slot's lag in
bytes grows; the table stops moving and freshness goes stale. Both alert. After the stall
the relay reads the backlog and the lag drains: recovery is automatic, nothing is lost.

Needs a stack with a PostgreSQL source and the CDC relay::

    datadrill stack up --source postgresql --relay cdc
"""

from datadrill.model import (
    SLO,
    Automatic,
    Expectations,
    Freshness,
    ReplicationLag,
    ReplicationSlotStall,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="cdc-replication-lag",
    description=(
        "The CDC relay stops reading and confirming its replication slot for 15 s: WAL piles up on "
        "the server and the table goes stale; then the backlog drains."
    ),
    workload=Workload(rate=1000, canary_interval_s=0.5),
    slos=(
        SLO(
            "replication lag",
            sli=ReplicationLag(max_bytes=2_000_000),
            objective=0.99,
            alert=ThresholdAlert(for_s=1),
        ),
        SLO("mart freshness", sli=Freshness(max_age_s=5), objective=0.999, alert=ThresholdAlert(for_s=2)),
    ),
    steady_state=SteadyState(warmup_s=3, timeout_s=60),
    schedule=(ReplicationSlotStall(at_s=3, duration_s=15),),
    recovery=Automatic(),
    # In steady state the slot's lag swings up to ~0.8 MB (what the relay has read but not
    # yet confirmed); stalled at 1,000 orders/s it grows ~0.3 MB/s once the stall shows
    # (~3 s: the slot's confirmed LSN still for 2 s).
    expectations=Expectations(detect_within_s=15, recover_within_s=60),
    probe_interval_s=0.5,
    stabilisation_s=3,
    max_duration_s=150,
)
