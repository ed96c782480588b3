"""Variant: the catalog entry is deleted, but the metadata files survive; the table is
re-registered from its newest surviving metadata file. No backup, no replay, no data loss:
the recovery the team wished it had."""

from datadrill.model import (
    SLO,
    DeleteCatalogEntry,
    Expectations,
    Freshness,
    PauseComponent,
    QuerySuccess,
    Reconcile,
    ReregisterFromMetadata,
    ResumeComponent,
    Runbook,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="metadata-loss-reregister",
    description=(
        "The catalog entry of dwh.orders is deleted; the table is re-registered from its newest "
        "surviving metadata file and the sink resumes from the offsets that file's snapshot records."
    ),
    workload=Workload(rate=1000, canary_interval_s=0.5),
    slos=(
        SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999, alert=ThresholdAlert(for_s=2)),
        SLO("mart freshness", sli=Freshness(max_age_s=10), objective=0.999, alert=ThresholdAlert(for_s=5)),
    ),
    steady_state=SteadyState(warmup_s=3, timeout_s=60),
    schedule=(DeleteCatalogEntry(at_s=4, table="dwh.orders"),),
    recovery=Runbook(
        steps=(
            PauseComponent(component="sink"),
            ReregisterFromMetadata(table="dwh.orders"),
            ResumeComponent(component="sink"),
            Reconcile(repair=True),
        ),
        response_delay_s=2,
    ),
    expectations=Expectations(detect_within_s=10, recover_within_s=60),
    max_duration_s=120,
)
