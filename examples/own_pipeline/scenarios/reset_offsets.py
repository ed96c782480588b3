"""Reprocess from the beginning, as a runbook would after a bad deploy: the enricher hangs,
its lag alerts, and the runbook moves its consumer group back to the earliest offset. The
enricher re-reads all of orders.v1; the drill proves that reprocessing doubles nothing
(its table stays exactly the source's orders) and measures how long the catch-up takes."""

from datadrill.model import (
    SLO,
    ConsumerLag,
    DataIntegrity,
    Expectations,
    HangComponent,
    Reconcile,
    ResetOffsets,
    Runbook,
    Scenario,
    SteadyState,
    Target,
    ThresholdAlert,
    Workload,
)

ENRICHED = Target(
    group="enricher",
    table="dwh.orders_enriched",
    key_column="order_id",
    columns=("customer_id", "amount_cents", "currency"),
    source_query="SELECT order_id, customer_id, amount_cents, currency FROM orders",
)

SCENARIO = Scenario(
    name="enricher-reset-offsets",
    description="The enricher hangs; the runbook resets its group to the earliest offset and it reprocesses everything.",
    workload=Workload(rate=100, canary_interval_s=1),
    slos=(
        SLO(
            "enricher lag",
            # 100 orders/s and an 8 s hang: the lag climbs to about 900; a threshold at
            # 1,000 fired on some runs only. Outside the hang it stays under 200.
            sli=ConsumerLag(max_messages=500, target=ENRICHED),
            objective=0.99,
            alert=ThresholdAlert(for_s=1),
        ),
        SLO("enriched rows exact", sli=DataIntegrity(target=ENRICHED), objective=0.999),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(HangComponent(component="enricher", at_s=2, duration_s=8),),
    # The runbook starts at the alert, in the hang's last seconds: the reset stops the hung
    # enricher (SIGTERM, then SIGCONT) and starts it again; the hang's revert then finds a new
    # process and leaves it alone.
    recovery=Runbook(
        steps=(
            # The group's consumers' session timeout (datadrill.toml): the reset joins the
            # group to commit on a cluster that takes no commit from outside it.
            ResetOffsets(component="enricher", to="earliest", session_timeout_ms=6000),
            Reconcile(target=ENRICHED, repair=False),
        )
    ),
    expectations=Expectations(detect_within_s=15, recover_within_s=90),
    target=ENRICHED,
    stabilisation_s=3,
    max_duration_s=180,
)
