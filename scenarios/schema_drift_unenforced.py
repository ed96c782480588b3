"""Schema drift with no contract enforcement: the producer starts writing the amount as a
decimal string in major units. The records flow on, the table stays fresh, and every new
row is wrong by a factor of 100 — only reconciliation sees it. Recovery rolls the producer
back and repairs the rows from the source. Compare with schema_drift_enforced.py."""

from datadrill.model import (
    SLO,
    DataIntegrity,
    Expectations,
    Freshness,
    Reconcile,
    RollbackProducer,
    Runbook,
    Scenario,
    SchemaDrift,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="schema-drift-unenforced",
    description="The producer retypes amount_cents; with no enforcement the wrong values reach the table.",
    workload=Workload(rate=500, canary_interval_s=0.5),
    slos=(
        SLO("mart freshness", sli=Freshness(max_age_s=5), objective=0.999, alert=ThresholdAlert(for_s=2)),
        SLO(
            "rows match the source",
            sli=DataIntegrity(every_s=3),
            objective=0.999,
            alert=ThresholdAlert(for_s=0),
        ),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(SchemaDrift(at_s=2, change="retype", enforcement=False),),
    recovery=Runbook(steps=(RollbackProducer(), Reconcile(repair=True)), response_delay_s=1),
    # Recovery includes a reconciliation of the whole table and the repair: ~8 s on a fresh
    # stack; the time grows with the table's files (no compaction on the embedded stack).
    expectations=Expectations(detect_within_s=15, recover_within_s=60),
    stabilisation_s=2,
    max_duration_s=120,
)
