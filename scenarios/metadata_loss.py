"""The incident, rehearsed: the metastore forgets dwh.orders.

Steady state → the catalog entry of dwh.orders is deleted → mart queries fail → the alert
fires → the on-call engineer pauses the sink → the only catalog backup predates the last
commits ("no backup at the required point"), so restoring it gives a stale table → Kafka is
replayed, partitions in parallel, from the offsets the restored snapshot records → the sink
resumes → source and sink are reconciled and repaired → verified.
"""

from datadrill.model import (
    SLO,
    BurnRateAlert,
    CanaryLatency,
    ConsumerLag,
    DeleteCatalogEntry,
    Expectations,
    Freshness,
    PauseComponent,
    ProductionVolume,
    QuerySuccess,
    Reconcile,
    ReplayKafka,
    RestoreCatalogBackup,
    ResumeComponent,
    Runbook,
    Scenario,
    SteadyState,
    TakeCatalogBackup,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="metadata-loss",
    description=(
        "The catalog entry of dwh.orders is deleted. The only catalog backup was taken 15 s "
        "before, so it is restored stale and Kafka is replayed from the offsets its snapshot "
        "records; then source and sink are reconciled and repaired."
    ),
    workload=Workload(rate=1000, canary_interval_s=0.5),
    slos=(
        SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999, alert=ThresholdAlert(for_s=2)),
        SLO("mart freshness", sli=Freshness(max_age_s=10), objective=0.999, alert=ThresholdAlert(for_s=5)),
        SLO(
            "canary latency",
            sli=CanaryLatency(max_latency_s=5),
            objective=0.99,
            alert=ThresholdAlert(for_s=5),
        ),
        SLO(
            "consumer lag",
            sli=ConsumerLag(max_messages=20_000),
            objective=0.99,
            alert=BurnRateAlert(long_window_s=30, short_window_s=5, factor=10),
        ),
    ),
    steady_state=SteadyState(warmup_s=3, timeout_s=60),
    schedule=(
        TakeCatalogBackup(at_s=0, name="nightly"),
        DeleteCatalogEntry(at_s=15, table="dwh.orders"),
    ),
    recovery=Runbook(
        steps=(
            PauseComponent(component="sink"),
            RestoreCatalogBackup(backup="nightly"),
            ReplayKafka(workers=4),
            ResumeComponent(component="sink"),
            Reconcile(repair=True),
        ),
        response_delay_s=2,
    ),
    expectations=Expectations(detect_within_s=10, recover_within_s=90),
    # One probe a second resolves detection to a second, at a few percent of harness cost.
    probe_interval_s=1.0,
    stabilisation_s=5,
    max_duration_s=180,
    production=ProductionVolume(events_per_s=50_000, table_rows=5_000_000_000),
)
