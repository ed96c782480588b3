"""Catalog database outage: the catalog is held in an exclusive lock for 8 s. Every table
resolution waits for it and fails after the database's busy timeout: mart queries fail,
the sink cannot commit. When the lock goes, both recover on their own."""

from datadrill.model import (
    SLO,
    Automatic,
    CatalogOutage,
    Expectations,
    QuerySuccess,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

SCENARIO = Scenario(
    name="catalog-outage",
    description="The catalog database is locked for 8 s.",
    workload=Workload(rate=500, canary_interval_s=0.5),
    slos=(SLO("mart queries succeed", sli=QuerySuccess(), objective=0.999, alert=ThresholdAlert(for_s=2)),),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(CatalogOutage(at_s=2, duration_s=8),),
    recovery=Automatic(),
    expectations=Expectations(detect_within_s=12, recover_within_s=30),
    stabilisation_s=2,
    max_duration_s=90,
)
