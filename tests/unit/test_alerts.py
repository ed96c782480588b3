"""Alert rules: threshold held for a duration, and multi-window burn rate."""

from __future__ import annotations

from datadrill.engine.alerts import AlertEvaluator
from datadrill.model import SLO, BurnRateAlert, QuerySuccess, ThresholdAlert


def _evaluator(alert: ThresholdAlert | BurnRateAlert, objective: float = 0.99) -> AlertEvaluator:
    return AlertEvaluator((SLO("q", sli=QuerySuccess(), objective=objective, alert=alert),))


def test_threshold_fires_once_bad_for_the_duration() -> None:
    evaluator = _evaluator(ThresholdAlert(for_s=2))
    assert not evaluator.observe("q", t=0.0, good=True)
    assert not evaluator.observe("q", t=1.0, good=False)  # bad since 1.0
    assert not evaluator.observe("q", t=2.5, good=False)
    assert evaluator.observe("q", t=3.0, good=False)  # 2 s bad
    assert not evaluator.observe("q", t=3.5, good=False)  # fires once
    assert evaluator.fired("q")


def test_threshold_resets_on_a_good_sample() -> None:
    evaluator = _evaluator(ThresholdAlert(for_s=2))
    evaluator.observe("q", t=0.0, good=False)
    evaluator.observe("q", t=1.5, good=True)
    assert not evaluator.observe("q", t=2.0, good=False)
    assert not evaluator.observe("q", t=3.9, good=False)
    assert evaluator.observe("q", t=4.0, good=False)


def test_zero_duration_fires_on_first_bad_sample() -> None:
    evaluator = _evaluator(ThresholdAlert(for_s=0))
    assert evaluator.observe("q", t=5.0, good=False)


def test_burn_rate_needs_both_windows() -> None:
    # objective 0.99: 1% may be bad; factor 10 means > 10% bad in both windows.
    evaluator = _evaluator(BurnRateAlert(long_window_s=10, short_window_s=2, factor=10))
    for i in range(20):
        assert not evaluator.observe("q", t=i * 0.5, good=True)
    # One bad sample: the short window (5 samples) is 20% bad but the long one only ~5%.
    assert not evaluator.observe("q", t=10.0, good=False)
    fired_at = None
    t = 10.5
    while fired_at is None and t < 30:
        if evaluator.observe("q", t=t, good=False):
            fired_at = t
        t += 0.5
    assert fired_at is not None
    assert fired_at <= 11.5  # long window passes 10% bad after a couple of bad samples


def test_burn_rate_ignores_a_single_blip() -> None:
    evaluator = _evaluator(BurnRateAlert(long_window_s=60, short_window_s=5, factor=14.4), objective=0.999)
    fired = [evaluator.observe("q", t=i * 0.5, good=(i % 200 != 7)) for i in range(400)]
    # 1 bad sample in 120: long-window bad fraction 0.8% → burn 8.3 < 14.4 once the window fills.
    assert not any(fired[130:])
