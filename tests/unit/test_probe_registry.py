"""Probes are found by SLI kind: built-ins, ``datadrill.probes`` entry points and
``register_probe`` share one registry; every SLI states its threshold and direction; a
ProbeEnv is built from a stack without starting anything."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import pytest
from pydantic import ValidationError
from pydantic.dataclasses import dataclass as model_dataclass

from datadrill.clock import FakeClock
from datadrill.errors import ConfigError
from datadrill.faults.registry import PluginError
from datadrill.model import slo
from datadrill.model.faults import HideTable
from datadrill.model.scenario import Scenario
from datadrill.model.slo import SLO, Direction, SLISpec, spec_kind
from datadrill.paths import StatePaths
from datadrill.probes import ProbeEnv, Sample, build_probe, register_probe, registry, unregister_probe


@model_dataclass(frozen=True)
class DiskFree:
    """A third party's SLI: free disk space, good while at least ``min_gb``."""

    min_gb: float
    kind: Literal["acme.disk_free"] = "acme.disk_free"
    unit: ClassVar[str] = "GB"

    def statement(self) -> str:
        return f"at least {self.min_gb:g} GB free"

    @property
    def threshold(self) -> float:
        return self.min_gb

    @property
    def direction(self) -> Direction:
        return Direction.MIN


class DiskFreeProbe:
    def __init__(self, sli: DiskFree, env: ProbeEnv) -> None:
        self.sli = sli
        self.env = env

    def measure(self) -> Sample:
        return Sample(42.0, self.sli.min_gb <= 42.0)

    def close(self) -> None:
        return


@pytest.fixture
def disk_probe() -> Iterator[None]:
    register_probe("acme.disk_free", DiskFreeProbe)
    try:
        yield
    finally:
        unregister_probe("acme.disk_free")


def _env(tmp_path: Path) -> ProbeEnv:
    return ProbeEnv.from_stack(FakeStack(tmp_path), FakeClock())


# -- the built-ins -----------------------------------------------------------------------------

SLI_CLASSES: tuple[type[Any], ...] = get_args(slo.SLI)


@pytest.mark.parametrize("sli_class", SLI_CLASSES, ids=lambda c: c.__name__)
def test_every_sli_of_the_model_has_a_probe(sli_class: type[Any]) -> None:
    assert spec_kind(sli_class) in registry.factories()


def test_no_probe_without_an_sli() -> None:
    assert set(registry.discovered()) == {spec_kind(c) for c in SLI_CLASSES}


THRESHOLDS: dict[type[Any], tuple[SLISpec, float | None, Direction]] = {
    slo.Freshness: (slo.Freshness(max_age_s=30.0), 30.0, Direction.MAX),
    slo.CanaryLatency: (slo.CanaryLatency(max_latency_s=2.5), 2.5, Direction.MAX),
    slo.ConsumerLag: (slo.ConsumerLag(max_messages=20_000), 20_000.0, Direction.MAX),
    slo.QuerySuccess: (slo.QuerySuccess(), None, Direction.OK),
    slo.ConnectorErrorRate: (slo.ConnectorErrorRate(max_per_s=0.5), 0.5, Direction.MAX),
    slo.RestartRate: (slo.RestartRate(max_per_min=3.0), 3.0, Direction.MAX),
    slo.ConnectorHealth: (slo.ConnectorHealth(component="sink"), None, Direction.OK),
    slo.DataIntegrity: (slo.DataIntegrity(max_bad_rows=7), 7.0, Direction.MAX),
    slo.ReplicationLag: (slo.ReplicationLag(max_bytes=4_096), 4_096.0, Direction.MAX),
}


def test_every_sli_of_the_model_has_a_threshold_case() -> None:
    assert set(THRESHOLDS) == set(SLI_CLASSES)


@pytest.mark.parametrize("sli_class", SLI_CLASSES, ids=lambda c: c.__name__)
def test_threshold_and_direction(sli_class: type[Any]) -> None:
    sli, threshold, direction = THRESHOLDS[sli_class]
    assert sli.threshold == threshold
    assert sli.direction is direction
    assert isinstance(sli, SLISpec)


def test_direction_values() -> None:
    assert [d.value for d in Direction] == ["max", "min", "ok"]


def test_a_builtin_probe_is_built_by_kind(tmp_path: Path) -> None:
    from datadrill.probes.sli import ConnectorErrorRateProbe

    probe = build_probe(slo.ConnectorErrorRate(max_per_s=1.0), _env(tmp_path))
    assert isinstance(probe, ConnectorErrorRateProbe)
    assert probe.measure() == Sample(0.0, True)  # no heartbeats yet: no errors


# -- registering ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("disk_probe")
def test_a_registered_probe_is_used(tmp_path: Path) -> None:
    probe = build_probe(DiskFree(min_gb=10), _env(tmp_path))
    assert isinstance(probe, DiskFreeProbe)
    assert probe.measure() == Sample(42.0, True)
    assert "acme.disk_free" in registry.kinds()


def test_unregistering_forgets_the_kind(tmp_path: Path) -> None:
    register_probe("acme.disk_free", DiskFreeProbe)
    unregister_probe("acme.disk_free")
    unregister_probe("acme.disk_free")  # idempotent
    assert "acme.disk_free" not in registry.kinds()


def test_an_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        PluginError, match=r"no probe for SLI kind 'acme\.disk_free'; known kinds: .*freshness"
    ):
        build_probe(DiskFree(min_gb=10), _env(tmp_path))


def test_a_builtin_kind_cannot_be_registered_again() -> None:
    with pytest.raises(PluginError, match="'freshness' already has a probe"):
        register_probe("freshness", DiskFreeProbe)


@pytest.mark.usefixtures("disk_probe")
def test_a_kind_cannot_be_registered_twice() -> None:
    with pytest.raises(PluginError, match="already has a probe"):
        register_probe("acme.disk_free", DiskFreeProbe)


def test_a_probe_must_be_callable() -> None:
    with pytest.raises(PluginError, match="must be a factory"):
        register_probe("acme.disk_free", "DiskFreeProbe")  # type: ignore[arg-type]


# -- entry points ------------------------------------------------------------------------------

PLUGIN_MODULE = textwrap.dedent(
    """
    from datadrill.probes import Sample

    class ReplicasProbe:
        def __init__(self, sli, env):
            self.sli = sli

        def measure(self):
            return Sample(3.0, True)

        def close(self):
            pass

    class ReplicasProbes:
        kind = "acme.replicas"

        def build(self, sli, env):
            return ReplicasProbe(sli, env)

    class NoKind:
        kind = ""

        def build(self, sli, env):
            return None

    NOT_CALLABLE = 42
    """
)


@model_dataclass(frozen=True)
class _Replicas:
    kind: Literal["acme.replicas"] = "acme.replicas"
    unit: ClassVar[str] = "replicas"
    threshold: ClassVar[float] = 2.0
    direction: ClassVar[Direction] = Direction.MIN

    def statement(self) -> str:
        return "at least 2 replicas"


def _install(tmp_path: Path, *entries: str) -> None:
    (tmp_path / "acme_probes.py").write_text(PLUGIN_MODULE)
    dist = tmp_path / "acme_probes-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-probes\nVersion: 1.0\n")
    lines = "\n".join(entries)
    (dist / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    registry.discovered.cache_clear()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_probes", None)
        registry.discovered.cache_clear()


def test_entry_point_group_name() -> None:
    assert registry.ENTRY_POINT_GROUP == "datadrill.probes"


def test_an_entry_point_factory_registers_under_its_name(isolated: Path) -> None:
    _install(isolated, "acme.replicas = acme_probes:ReplicasProbe")
    probe = build_probe(_Replicas(), _env(isolated))
    assert type(probe).__name__ == "ReplicasProbe"
    assert probe.measure() == Sample(3.0, True)


def test_an_entry_point_plugin_registers_under_its_kind(isolated: Path) -> None:
    _install(isolated, "replicas = acme_probes:ReplicasProbes")
    assert "acme.replicas" in registry.kinds()
    assert "replicas" not in registry.kinds()
    assert type(build_probe(_Replicas(), _env(isolated))).__name__ == "ReplicasProbe"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("gone = acme_probes:Missing", r"'gone' \(acme_probes:Missing\) failed to load"),
        ("nothing = acme_probes:NOT_CALLABLE", r"'nothing' \(acme_probes:NOT_CALLABLE\) is neither a probe"),
        ("nokind = acme_probes:NoKind", r"'nokind' \(acme_probes:NoKind\) does not implement ProbePlugin"),
    ],
)
def test_a_broken_plugin_is_named(isolated: Path, entry: str, message: str) -> None:
    _install(isolated, entry)
    with pytest.raises(PluginError, match=message):
        registry.factories()


def test_a_plugin_reusing_a_kind_is_refused(isolated: Path) -> None:
    _install(isolated, "freshness = acme_probes:ReplicasProbe")
    with pytest.raises(PluginError, match=r"'freshness' .* reuses the SLI kind 'freshness'"):
        registry.factories()


def test_a_registered_kind_clashing_with_a_new_plugin_is_refused(isolated: Path) -> None:
    register_probe("acme.replicas", DiskFreeProbe)
    try:
        _install(isolated, "replicas = acme_probes:ReplicasProbes")
        registry.discovered.cache_clear()
        with pytest.raises(PluginError, match=r"'acme\.replicas' clashes"):
            registry.factories()
    finally:
        unregister_probe("acme.replicas")


# -- the scenario model ------------------------------------------------------------------------


def _scenario(sli: Any) -> Scenario:
    return Scenario(
        name="plugin-sli",
        slos=(SLO("plugin", sli=sli, objective=0.99),),
        schedule=(HideTable(at_s=1, duration_s=2),),
    )


def test_a_scenario_accepts_a_plugins_sli() -> None:
    sli = DiskFree(min_gb=10)
    assert _scenario(sli).slos[0].sli is sli


def test_an_slo_refuses_what_is_not_an_sli() -> None:
    with pytest.raises(ValidationError, match="'freshness' is not an SLI: expected one of CanaryLatency"):
        SLO("x", sli="freshness", objective=0.99)  # type: ignore[arg-type]


def test_an_slo_refuses_a_plugin_sli_with_a_builtin_kind() -> None:
    @model_dataclass(frozen=True)
    class Impostor:
        kind: str = "freshness"
        unit: ClassVar[str] = "s"
        threshold: ClassVar[float] = 1.0
        direction: ClassVar[Direction] = Direction.MAX

        def statement(self) -> str:
            return "fresh"

    with pytest.raises(ValidationError, match="claims the kind 'freshness' of the built-in Freshness"):
        SLO("x", sli=Impostor(), objective=0.99)


SCENARIO_FILE = textwrap.dedent(
    """
    from typing import ClassVar, Literal
    from pydantic.dataclasses import dataclass
    from datadrill.model import SLO, HideTable, Scenario
    from datadrill.model.slo import Direction

    @dataclass(frozen=True)
    class DiskFree:
        min_gb: float
        kind: Literal["acme.disk_free"] = "acme.disk_free"
        unit: ClassVar[str] = "GB"
        threshold: ClassVar[float] = 10.0
        direction: ClassVar[Direction] = Direction.MIN

        def statement(self) -> str:
            return "disk free"

    SCENARIO = Scenario(
        name="disk",
        slos=(SLO("disk", sli=DiskFree(min_gb=10), objective=0.99),),
        schedule=(HideTable(at_s=1, duration_s=2),),
    )
    """
)


def test_loading_a_scenario_needs_a_probe_for_a_plugins_sli(tmp_path: Path) -> None:
    from datadrill.engine.loader import load_scenario

    path = tmp_path / "disk.py"
    path.write_text(SCENARIO_FILE)
    with pytest.raises(ConfigError, match=r"slos\[0\]\.sli\.kind = 'acme\.disk_free' .*datadrill\.probes"):
        load_scenario(path)
    register_probe("acme.disk_free", DiskFreeProbe)
    try:
        assert load_scenario(path).slos[0].sli.kind == "acme.disk_free"
    finally:
        unregister_probe("acme.disk_free")


# -- ProbeEnv from a stack -----------------------------------------------------------------------


class FakeEngine:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@dataclass
class FakeMart:
    timeout_s: float
    dialect: str = "duckdb"


@dataclass
class FakeStack:
    """The part of a stack a ProbeEnv reaches, in memory."""

    root: Path
    engines: list[FakeEngine] = field(default_factory=list)
    sources: int = 0

    @property
    def bootstrap_servers(self) -> str:
        return "127.0.0.1:9092"

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.root)

    def query_engine(self) -> Any:
        self.engines.append(FakeEngine())
        return self.engines[-1]

    def mart_queries(self, *, timeout_s: float = 2.0) -> Any:
        return FakeMart(timeout_s)

    def source(self) -> Any:
        self.sources += 1
        return None


def test_a_probe_env_is_built_from_a_stack_without_opening_anything(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path)
    clock = FakeClock()
    env = ProbeEnv.from_stack(stack, clock)
    assert env.clock is clock
    assert env.bootstrap_servers == "127.0.0.1:9092"
    assert env.heartbeat_dir == tmp_path / "run"
    assert env.events_file == tmp_path / "events.jsonl"
    assert stack.engines == [] and stack.sources == 0
    mart = env.mart_queries(3.5)
    assert isinstance(mart, FakeMart) and mart.timeout_s == 3.5
    env.source_db()
    assert stack.sources == 1


def test_query_probes_share_one_engine_made_on_first_use_and_closed_with_the_env(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path)
    env = ProbeEnv.from_stack(stack, FakeClock())
    first: Any = env.query_engine()
    assert env.query_engine() is first
    assert len(stack.engines) == 1 and stack.engines[0] is first
    env.close()
    env.close()  # idempotent
    assert stack.engines[0].closed == 1
    with pytest.raises(RuntimeError, match="closed"):
        env.query_engine()


def test_closing_an_unused_env_opens_nothing(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path)
    ProbeEnv.from_stack(stack, FakeClock()).close()
    assert stack.engines == []
