"""Alert rules over SLI samples: threshold held for a duration, or multi-window burn rate.

Example::

    evaluator = AlertEvaluator(slos)
    fired = evaluator.observe("mart freshness", t=12.5, good=False)   # True once it fires
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from datadrill.model.slo import SLO, BurnRateAlert, ThresholdAlert


@dataclass
class _State:
    slo: SLO
    bad_since: float | None = None
    fired: bool = False
    firing: bool = False  # the rule's condition holds at the latest sample
    history: deque[tuple[float, bool]] = field(default_factory=deque)


class AlertEvaluator:
    """Evaluates each SLO's alert rule on every sample; each alert fires at most once."""

    def __init__(self, slos: tuple[SLO, ...]) -> None:
        self._states = {slo.name: _State(slo) for slo in slos}

    def fired(self, name: str) -> bool:
        return self._states[name].fired

    def firing(self, name: str) -> bool:
        """Whether the rule's condition holds now (an alert that fired may have cleared)."""
        return self._states[name].firing

    def any_fired(self) -> bool:
        return any(s.fired for s in self._states.values())

    def observe(self, name: str, *, t: float, good: bool) -> bool:
        """Record a sample; True when this sample makes the alert fire."""
        state = self._states[name]
        state.bad_since = None if good else (state.bad_since if state.bad_since is not None else t)
        rule = state.slo.alert
        if isinstance(rule, ThresholdAlert):
            firing = state.bad_since is not None and t - state.bad_since >= rule.for_s
        elif isinstance(rule, BurnRateAlert):
            state.history.append((t, good))
            while state.history and t - state.history[0][0] > rule.long_window_s:
                state.history.popleft()
            allowed = 1.0 - state.slo.objective
            firing = (
                _bad_fraction(state.history, t, rule.long_window_s) / allowed > rule.factor
                and _bad_fraction(state.history, t, rule.short_window_s) / allowed > rule.factor
            )
        else:
            raise TypeError(f"unknown alert rule {rule!r}")
        state.firing = firing
        if firing and not state.fired:
            state.fired = True
            return True
        return False


def _bad_fraction(history: deque[tuple[float, bool]], now: float, window_s: float) -> float:
    """Fraction of samples in the window that were bad (samples are evenly spaced)."""
    in_window = [good for t, good in history if now - t <= window_s]
    if not in_window:
        return 0.0
    return sum(1 for good in in_window if not good) / len(in_window)
