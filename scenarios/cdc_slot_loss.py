"""CDC slot loss: the relay's replication slot is dropped under load.

Steady state on a PostgreSQL source read by the CDC relay (``[relay] mode = "cdc"``) → the
slot is dropped, as an operator cleaning up or a failover to a replica without the slot
would → the relay recreates it and goes on from *now*: the orders written in between never
reach Kafka → data integrity counts the hole once it is older than its grace window and
alerts → the on-call engineer re-snapshots the missing rows from the source through the
outbox (the CDC way back, like Debezium's incremental snapshot) → source and sink are
reconciled → verified. The report shows the re-snapshot's rate and its projection at
production volume.

Needs a stack with a PostgreSQL source and the CDC relay::

    datadrill stack up --source postgresql --relay cdc
"""

from datadrill.model import (
    SLO,
    DataIntegrity,
    DropReplicationSlot,
    Expectations,
    Freshness,
    ProductionVolume,
    Reconcile,
    ResnapshotFromSource,
    Runbook,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="cdc-slot-loss",
    description=(
        "The CDC relay's replication slot is dropped under load; the relay starts a new one from "
        "now and the orders written in between never reach Kafka. Data integrity counts the hole; "
        "the missing rows are re-snapshotted from the source through the outbox, then source and "
        "sink are reconciled."
    ),
    workload=Workload(rate=500, canary_interval_s=0.5),
    slos=(
        SLO(
            "no holes, rows match the source",
            sli=DataIntegrity(every_s=2, hole_grace_s=3),
            objective=0.999,
            alert=ThresholdAlert(for_s=0),
        ),
        # The relay goes on at once on its new slot: freshness should hold through it all.
        SLO("mart freshness", sli=Freshness(max_age_s=10), objective=0.999, alert=ThresholdAlert(for_s=5)),
    ),
    steady_state=SteadyState(warmup_s=3, timeout_s=60),
    schedule=(DropReplicationSlot(at_s=5),),
    recovery=Runbook(
        steps=(ResnapshotFromSource(workers=4, chunk_rows=5000), Reconcile(repair=True)),
        response_delay_s=2,
    ),
    expectations=Expectations(detect_within_s=20, recover_within_s=90),
    probe_interval_s=1.0,
    stabilisation_s=3,
    max_duration_s=180,
    production=ProductionVolume(events_per_s=50_000, table_rows=5_000_000_000),
)
