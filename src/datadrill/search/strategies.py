"""Hypothesis strategies for faults and fault schedules, within declared bounds.

Example::

    from hypothesis import given
    from datadrill.search.strategies import fault_schedules

    @given(fault_schedules(max_faults=3, horizon_s=30))
    def test_schedule(schedule): ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from datadrill.model import BrokerLatency, BrokerLoss, KillComponent, LagSpike

COMPONENTS = ("sink", "relay")


def single_faults(
    *,
    components: Sequence[str] = COMPONENTS,
    brokers: Sequence[int] = (1, 2, 3),
    include: Sequence[str] = ("crash", "crash_mid_commit", "broker_loss", "broker_latency", "lag_spike"),
    max_duration_s: float = 10.0,
) -> st.SearchStrategy[Any]:
    """One fault, injected now (``at_s=0``); durations up to ``max_duration_s``."""
    if not include:
        raise ValueError("include at least one fault family")
    durations = st.floats(min_value=0.5, max_value=max_duration_s, allow_nan=False).map(lambda d: round(d, 1))
    families: dict[str, st.SearchStrategy[Any]] = {
        "crash": st.builds(KillComponent, at_s=st.just(0.0), component=st.sampled_from(components)),
        "crash_mid_commit": st.builds(
            KillComponent,
            at_s=st.just(0.0),
            component=st.sampled_from(components),
            moment=st.just("mid_commit"),
        ),
        "broker_loss": st.builds(
            BrokerLoss, at_s=st.just(0.0), duration_s=durations, broker=st.sampled_from(brokers)
        ),
        "broker_latency": st.builds(
            BrokerLatency,
            at_s=st.just(0.0),
            duration_s=durations,
            rtt_ms=st.sampled_from([50, 200, 1000]),
        ),
        "lag_spike": st.builds(
            LagSpike, at_s=st.just(0.0), duration_s=durations, burst_factor=st.sampled_from([2.0, 5.0])
        ),
    }
    unknown = sorted(set(include) - set(families))
    if unknown:
        raise ValueError(f"unknown fault families {unknown}; known: {', '.join(sorted(families))}")
    return st.one_of(*(families[name] for name in include))


def _exclusive_key(spec: Any) -> str | None:
    from datadrill.faults.registry import plugin_for

    return plugin_for(spec.kind).exclusive_key(spec)


def _end(spec: Any) -> float:
    return float(spec.at_s) + float(
        getattr(spec, "duration_s", None) or getattr(spec, "effect_s", 0.0) or 0.0
    )


def _overlaps(a: Any, b: Any) -> bool:
    return float(a.at_s) <= _end(b) and float(b.at_s) <= _end(a)


@st.composite
def fault_schedules(
    draw: st.DrawFn,
    *,
    max_faults: int = 3,
    horizon_s: float = 30.0,
    allow_overlap: bool = False,
    faults: st.SearchStrategy[Any] | None = None,
) -> tuple[Any, ...]:
    """A schedule of 1..``max_faults`` faults starting within ``horizon_s``, sorted by start.

    Without ``allow_overlap`` no two faults overlap in time; with it, only faults on one
    exclusive target (the same broker, component, table) are kept apart, as scenarios require.
    """
    from dataclasses import replace

    if max_faults < 1 or horizon_s <= 0:
        raise ValueError("max_faults must be >= 1 and horizon_s > 0")
    base = faults if faults is not None else single_faults()
    count = draw(st.integers(min_value=1, max_value=max_faults))
    chosen: list[Any] = []
    for _ in range(count):
        spec = draw(base)
        at_s = draw(st.floats(min_value=0.0, max_value=horizon_s, allow_nan=False).map(lambda t: round(t, 1)))
        spec = replace(spec, at_s=at_s)
        clash = [
            other
            for other in chosen
            if _overlaps(spec, other)
            and (
                not allow_overlap
                or (_exclusive_key(spec) is not None and _exclusive_key(spec) == _exclusive_key(other))
            )
        ]
        if not clash:
            chosen.append(spec)
    return tuple(sorted(chosen, key=lambda s: float(s.at_s)))
