"""The enricher hangs for 15 s (SIGSTOP, then SIGCONT): a consumer that keeps its partitions
and makes no progress. No restart happens, so a crash-only alert never fires; the group's
lag does, and the backlog drains once it continues."""

from datadrill.model import (
    SLO,
    Automatic,
    ConsumerLag,
    DataIntegrity,
    Expectations,
    Freshness,
    HangComponent,
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
    name="enricher-hang",
    description="The enricher stops making progress for 15 s without dying.",
    workload=Workload(rate=100, canary_interval_s=1),
    slos=(
        SLO(
            "enricher lag",
            sli=ConsumerLag(max_messages=1_000, target=ENRICHED),
            objective=0.99,
            alert=ThresholdAlert(for_s=1),
        ),
        SLO("enriched freshness", sli=Freshness(max_age_s=10, target=ENRICHED), objective=0.99),
        SLO("enriched rows exact", sli=DataIntegrity(target=ENRICHED), objective=0.999),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(HangComponent(component="enricher", at_s=2, duration_s=15),),
    expectations=Expectations(detect_within_s=15, recover_within_s=60),
    recovery=Automatic(),
    target=ENRICHED,
    stabilisation_s=3,
    max_duration_s=150,
)
