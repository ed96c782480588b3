"""The incident, whole: the catalog entry is lost, the only backup is older than what
Kafka still holds, and the team recovers the way it did.

1. **Loss.** The catalog entry of dwh.orders is deleted: mart queries fail (Trino's
   ``TABLE_NOT_FOUND`` through the Trino protocol) and the alert fires.
2. **No backup at the needed point.** The only catalog backup ("nightly", taken at t+0)
   is older than Kafka's retention: at t+18 s records older than 6 s were deleted, so a
   replay from the backup's offsets cannot close its gap. The CDC way back (re-snapshot
   from the source) is measured on this same loss and projected to production volume, and
   not applied.
3. **Recovery as the team did it.** The sink is paused, the stale backup restored, Kafka
   replayed with 4 workers from the earliest offset retention left, and history backfilled
   from the reserve copy taken at t+6 s; the sink resumes.
4. **Reconciliation.** Source and sink are reconciled: the rows in neither Kafka nor the
   reserve (written between the reserve copy and the retention boundary) are repaired from
   the source; integrity is verified.

The report reads as the postmortem: the stages, both paths side by side at production
volume, which rows came back from where, and the action items (backup frequency against
retention, reserve freshness, which path meets the recovery objective).
"""

from datadrill.model import (
    SLO,
    BackfillFromReserve,
    Compare,
    DeleteCatalogEntry,
    Expectations,
    Freshness,
    KafkaRetention,
    PauseComponent,
    ProductionVolume,
    QuerySuccess,
    Reconcile,
    RecoveryPath,
    ReplayKafka,
    ResnapshotFromSource,
    RestoreCatalogBackup,
    ResumeComponent,
    Runbook,
    Scenario,
    SteadyState,
    TakeCatalogBackup,
    TakeReserveCopy,
    ThresholdAlert,
    Workload,
)

CDC = RecoveryPath("CDC re-snapshot", steps=(ResnapshotFromSource(workers=4),))
KAFKA_AND_RESERVE = RecoveryPath(
    "Kafka replay + reserve backfill",
    steps=(ReplayKafka(start="earliest", workers=4), BackfillFromReserve(reserve="reserve", workers=4)),
)

SCENARIO = Scenario(
    name="incident-replay",
    description=(
        "The catalog entry of dwh.orders is deleted; the only catalog backup is older than Kafka's "
        "retention, so the restore is stale and a replay cannot close the gap. The CDC re-snapshot is "
        "measured on the same loss; the team restores the backup, replays what Kafka kept, backfills "
        "history from the reserve copy and repairs the rest from the source."
    ),
    workload=Workload(rate=500, canary_interval_s=0.5),
    slos=(
        SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999, alert=ThresholdAlert(for_s=2)),
        SLO("mart freshness", sli=Freshness(max_age_s=10), objective=0.999, alert=ThresholdAlert(for_s=5)),
    ),
    steady_state=SteadyState(warmup_s=3, timeout_s=60),
    schedule=(
        TakeCatalogBackup(at_s=0, name="nightly"),
        TakeReserveCopy(at_s=6, name="reserve"),
        KafkaRetention(at_s=18, keep_newest_s=6),
        DeleteCatalogEntry(at_s=20, table="dwh.orders"),
    ),
    recovery=Runbook(
        steps=(
            PauseComponent(component="sink"),
            RestoreCatalogBackup(backup="nightly"),
            Compare(paths=(CDC, KAFKA_AND_RESERVE), apply=KAFKA_AND_RESERVE.name),
            ResumeComponent(component="sink"),
            Reconcile(repair=True),
        ),
        response_delay_s=2,
    ),
    expectations=Expectations(detect_within_s=10, recover_within_s=120),
    probe_interval_s=1.0,
    stabilisation_s=5,
    max_duration_s=240,
    production=ProductionVolume(events_per_s=50_000, table_rows=5_000_000_000),
)
