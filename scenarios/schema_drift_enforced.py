"""Schema drift with the data contract enforced: the producer starts writing records whose
amount field is renamed. The relay checks every record against the contract and routes the
offenders to the dead-letter topic, so nothing wrong reaches the table — but nothing new
does either: freshness and canaries alert. Recovery rolls the producer back and reprocesses
the dead letters. Compare with schema_drift_unenforced.py."""

from datadrill.model import (
    SLO,
    CanaryLatency,
    DataIntegrity,
    Expectations,
    Freshness,
    Reconcile,
    ReprocessDeadLetters,
    RollbackProducer,
    Runbook,
    Scenario,
    SchemaDrift,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="schema-drift-enforced",
    description="The producer renames amount_cents; the enforced contract dead-letters every drifted record.",
    workload=Workload(rate=500, canary_interval_s=0.5),
    slos=(
        SLO("mart freshness", sli=Freshness(max_age_s=5), objective=0.999, alert=ThresholdAlert(for_s=2)),
        SLO(
            "canary latency",
            sli=CanaryLatency(max_latency_s=5),
            objective=0.99,
            alert=ThresholdAlert(for_s=2),
        ),
        SLO(
            "rows match the source",
            # Wrong rows only: the dead-lettered stretch is missing from the table until
            # reprocessed, which holes would count; freshness and canaries show it here.
            sli=DataIntegrity(every_s=3, holes=False),
            objective=0.999,
            alert=ThresholdAlert(for_s=0),
        ),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(SchemaDrift(at_s=2, change="rename", enforcement=True),),
    recovery=Runbook(
        steps=(RollbackProducer(), ReprocessDeadLetters(), Reconcile(repair=True)),
        response_delay_s=1,
    ),
    expectations=Expectations(detect_within_s=15, recover_within_s=60),
    stabilisation_s=2,
    max_duration_s=120,
)
