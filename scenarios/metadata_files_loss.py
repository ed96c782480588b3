"""Variant: the table's metadata files are deleted (a storage clean-up gone wrong) while
the sink restarts, so no writer holds the metadata in memory to write it back. The catalog
row now dangles; the backup's copy of its metadata file brings the table back, stale, and
Kafka replay catches it up."""

from datadrill.model import (
    SLO,
    DeleteMetadataFiles,
    Expectations,
    Freshness,
    KillComponent,
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
    name="metadata-files-loss",
    description=(
        "The sink crashes and every *.metadata.json of dwh.orders is deleted at the same moment. "
        "The catalog backup (with its copy of the metadata file) is restored and Kafka replayed."
    ),
    workload=Workload(rate=1000, canary_interval_s=0.5),
    slos=(
        SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999, alert=ThresholdAlert(for_s=2)),
        SLO("mart freshness", sli=Freshness(max_age_s=10), objective=0.999, alert=ThresholdAlert(for_s=5)),
    ),
    steady_state=SteadyState(warmup_s=3, timeout_s=60),
    schedule=(
        TakeCatalogBackup(at_s=0, name="nightly"),
        # The sink dies first: a live writer holds the metadata in memory and its next
        # commit would write it back, healing the table before anyone noticed.
        KillComponent(at_s=6, component="sink"),
        DeleteMetadataFiles(at_s=6, table="dwh.orders"),
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
    max_duration_s=180,
    production=ProductionVolume(events_per_s=50_000, table_rows=5_000_000_000),
)
