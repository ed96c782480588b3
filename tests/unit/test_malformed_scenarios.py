"""Many malformed scenarios, generated: every one is rejected at load time with a
ConfigError naming the file — never any other exception (no traceback for the user)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadrill.engine.loader import load_scenario
from datadrill.errors import ConfigError

HEADER = "from datadrill.model import *\n"

weird_values = st.one_of(
    st.integers(min_value=-(10**6), max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not (f >= 0 and f < 1e6)),
    st.text(max_size=8),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


def _fault(kind: str, **fields: object) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"{kind}({args})"


def _scenario(schedule: list[str], **extra: str) -> str:
    rest = "".join(f"    {k}={v},\n" for k, v in extra.items())
    return (
        HEADER
        + "SCENARIO = Scenario(\n"
        + '    name="m",\n'
        + '    slos=(SLO("q", sli=QuerySuccess(), objective=0.999),),\n'
        + f"    schedule=({', '.join(schedule)},),\n"
        + rest
        + ")\n"
    )


@st.composite
def malformed(draw: st.DrawFn) -> str:
    choice = draw(st.integers(min_value=0, max_value=9))
    value = draw(weird_values)
    if choice == 0:  # an unknown fault kind
        name = draw(st.sampled_from(["DeleteEverything", "Kill", "Brokerloss", "NetworkPartition"]))
        return _scenario([_fault(name, at_s=1)])
    if choice == 1:  # a bad start time
        return _scenario([_fault("HideTable", at_s=value, duration_s=1)])
    if choice == 2:  # a bad duration
        kind = draw(
            st.sampled_from(["HideTable", "BrokerLoss", "LagSpike", "CatalogOutage", "BrokerLatency"])
        )
        return _scenario([_fault(kind, at_s=1, duration_s=draw(st.one_of(weird_values, st.just(0))))])
    if choice == 3:  # overlapping exclusive faults on one target
        a = draw(st.floats(min_value=0, max_value=10))
        b = a + draw(st.floats(min_value=0, max_value=4.9))  # starts inside the first one
        kind, extra = draw(
            st.sampled_from(
                [("HideTable", {}), ("BrokerLoss", {"broker": 2}), ("LagSpike", {}), ("CatalogOutage", {})]
            )
        )
        return _scenario(
            [
                _fault(kind, at_s=a, duration_s=abs(b - a) + 5, **extra),
                _fault(kind, at_s=b, duration_s=5, **extra),
            ]
        )
    if choice == 4:  # an unknown target
        target = draw(
            st.sampled_from(
                [
                    # Any name is a component (declared ones too): one no config can declare.
                    _fault("KillComponent", at_s=1, component="data base"),
                    _fault("BrokerLoss", at_s=1, duration_s=1, broker=draw(st.integers(10, 99))),
                    _fault("BrokerLoss", at_s=1, duration_s=1, broker=draw(st.integers(-99, 0))),
                    _fault(
                        "DeleteCatalogEntry",
                        at_s=1,
                        table=draw(st.sampled_from(["orders", "a.b.c", "", "1x.y"])),
                    ),
                    _fault("KafkaRequestErrors", at_s=1, api="produce", error="BROKEN_PIPE"),
                ]
            )
        )
        return _scenario([target])
    if choice == 5:  # an unknown field
        field = draw(st.sampled_from(["duration", "target", "when", "at"]))
        return _scenario([f"HideTable(at_s=1, duration_s=1, {field}=1)"])
    if choice == 6:  # a bad scenario-level value
        key = draw(st.sampled_from(["probe_interval_s", "stabilisation_s", "max_duration_s", "name"]))
        return _scenario([_fault("HideTable", at_s=1, duration_s=1)], **{key: repr(value)})
    if choice == 7:  # a crash loop without a period
        return _scenario([_fault("KillComponent", at_s=1, times=draw(st.integers(2, 10)), every_s=0)])
    if choice == 8:  # broken Python
        return HEADER + draw(
            st.sampled_from(["SCENARIO = Scenario(", "SCENARIO = ]", "def (:", "SCENARIO = 1/0"])
        )
    return HEADER + "SCENARIO = " + draw(st.sampled_from(["None", "42", "'metadata-loss'", "dict()"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed())
def test_every_malformed_scenario_is_a_config_error(source: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.py"
        path.write_text(source)
        try:
            load_scenario(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
        else:
            raise AssertionError(f"accepted a malformed scenario:\n{source}")
