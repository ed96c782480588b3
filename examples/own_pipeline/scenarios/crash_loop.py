"""The enricher crash-loops: SIGKILLed three times, 3 s apart. It resumes from its committed
offsets and upserts, so its table ends up exactly the source's orders: nothing lost, nothing
doubled."""

from datadrill.model import (
    SLO,
    Automatic,
    ConsumerLag,
    DataIntegrity,
    Expectations,
    KillComponent,
    RestartRate,
    Scenario,
    SteadyState,
    Target,
    ThresholdAlert,
    Workload,
)

# The enricher's data: its group's lag on orders.v1, and its table against the source's orders.
ENRICHED = Target(
    group="enricher",
    table="dwh.orders_enriched",
    key_column="order_id",
    columns=("customer_id", "amount_cents", "currency"),
    source_query="SELECT order_id, customer_id, amount_cents, currency FROM orders",
)

SCENARIO = Scenario(
    name="enricher-crash-loop",
    description="The enricher is killed three times in a row; the supervisor restarts it with backoff.",
    workload=Workload(rate=100, canary_interval_s=1),
    slos=(
        SLO(
            "enricher restarts",
            sli=RestartRate(max_per_min=2, window_s=20, component="enricher"),
            objective=0.99,
            alert=ThresholdAlert(for_s=0),
        ),
        SLO("enricher lag", sli=ConsumerLag(max_messages=2_000, target=ENRICHED), objective=0.99),
        SLO("enriched rows exact", sli=DataIntegrity(target=ENRICHED), objective=0.999),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(KillComponent(at_s=2, component="enricher", times=3, every_s=3),),
    # Each restarted consumer waits for the killed member's session to expire (6 s in
    # datadrill.toml; 45 s by librdkafka's default) before the group rebalances.
    expectations=Expectations(detect_within_s=15, recover_within_s=120),
    recovery=Automatic(),
    target=ENRICHED,
    stabilisation_s=3,
    max_duration_s=240,
)
