"""Calibration: a fault whose effect is known exactly, to check the measurements.

dwh.orders is hidden from the catalog for exactly 6 s (renamed away, then back), so mart
queries fail from the injection until the revert. The alert fires once queries have failed
for 2 s. Truth: time to detect 2 s, time to recover 6 s. The measured times must be within
one probe interval of that.
"""

from datadrill.model import (
    SLO,
    Automatic,
    Expectations,
    HideTable,
    QuerySuccess,
    Scenario,
    SteadyState,
    ThresholdAlert,
    Workload,
)

HIDDEN_FOR_S = 6.0
ALERT_AFTER_S = 2.0

SCENARIO = Scenario(
    name="calibration",
    description=f"dwh.orders hidden for exactly {HIDDEN_FOR_S:g} s; the alert needs {ALERT_AFTER_S:g} s of failures.",
    workload=Workload(rate=200, canary_interval_s=1.0),
    slos=(
        SLO(
            "mart queries succeed",
            sli=QuerySuccess(),
            objective=0.999,
            alert=ThresholdAlert(for_s=ALERT_AFTER_S),
        ),
    ),
    steady_state=SteadyState(warmup_s=2, timeout_s=60),
    schedule=(HideTable(at_s=2, duration_s=HIDDEN_FOR_S, table="dwh.orders"),),
    recovery=Automatic(),
    expectations=Expectations(detect_within_s=ALERT_AFTER_S + 1, recover_within_s=HIDDEN_FOR_S + 1),
    probe_interval_s=0.25,
    stabilisation_s=2,
    max_duration_s=60,
    verify_integrity=True,
)
