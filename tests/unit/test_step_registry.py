"""Runbook steps are found by kind: built-ins, ``datadrill.recovery`` entry points and
``register_step`` share one registry, and a runbook may hold a plugin's step."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
from pydantic import ValidationError
from pydantic.dataclasses import dataclass as model_dataclass

from datadrill.clock import FakeClock
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.faults.registry import PluginError
from datadrill.model import recovery as steps
from datadrill.model.recovery import Runbook
from datadrill.model.slo import spec_kind
from datadrill.recovery import StepResult, register_step, registry, run_step, unregister_step
from datadrill.stack.port import ProducerContract


@model_dataclass(frozen=True)
class FailoverDb:
    """A third party's step."""

    region: str = "eu-west-1"
    kind: Literal["acme.failover_db"] = "acme.failover_db"

    def describe(self) -> str:
        return f"fail the database over to {self.region}"


def failover_db(step: FailoverDb, context: DrillContext) -> StepResult:
    return StepResult(f"failed over to {step.region}", extra={"run_dir": str(context.run_dir)})


@pytest.fixture
def failover() -> Iterator[None]:
    register_step("acme.failover_db", failover_db)
    try:
        yield
    finally:
        unregister_step("acme.failover_db")


@dataclass
class FakeComponents:
    calls: list[tuple[str, str]] = field(default_factory=list)

    def pause(self, name: str) -> None:
        self.calls.append(("pause", name))

    def resume(self, name: str) -> int:
        self.calls.append(("resume", name))
        return 4242


@dataclass
class FakePlatform:
    contracts: list[ProducerContract] = field(default_factory=list)

    def set_producer_contract(self, contract: ProducerContract) -> None:
        self.contracts.append(contract)


@dataclass
class FakeStack:
    """The parts of a stack the small built-in steps reach, in memory."""

    components: FakeComponents = field(default_factory=FakeComponents)
    platform: FakePlatform = field(default_factory=FakePlatform)


def _context(tmp_path: Path, stack: FakeStack | None = None) -> DrillContext:
    return DrillContext(stack=stack or FakeStack(), run_dir=tmp_path, clock=FakeClock())  # type: ignore[arg-type]


# -- the built-ins -----------------------------------------------------------------------------

STEP_CLASSES: tuple[type[Any], ...] = get_args(steps.Step)


@pytest.mark.parametrize("step_class", STEP_CLASSES, ids=lambda c: c.__name__)
def test_every_step_of_the_model_has_an_implementation(step_class: type[Any]) -> None:
    assert spec_kind(step_class) in registry.implementations()


def test_no_implementation_without_a_step() -> None:
    assert set(registry.discovered()) == {spec_kind(c) for c in STEP_CLASSES}


def test_each_builtin_lives_in_the_module_of_its_logic() -> None:
    modules = {kind: run.__module__ for kind, run in registry.discovered().items()}
    assert modules == {
        "pause_component": "datadrill.recovery.components",
        "resume_component": "datadrill.recovery.components",
        "restart_connector": "datadrill.recovery.components",
        "restore_catalog_backup": "datadrill.recovery.backup",
        "reregister_from_metadata": "datadrill.recovery.reregister",
        "replay_kafka": "datadrill.recovery.replay",
        "rollback_producer": "datadrill.recovery.producer",
        "reprocess_dead_letters": "datadrill.recovery.dead_letters",
        "reconcile": "datadrill.recovery.reconcile_step",
        "reset_offsets": "datadrill.recovery.offsets",
        "resnapshot_from_source": "datadrill.recovery.resnapshot",
        "backfill_from_reserve": "datadrill.recovery.backfill",
        "compare": "datadrill.recovery.compare",
    }


def test_pause_and_resume_dispatch_to_the_stacks_components(tmp_path: Path) -> None:
    stack = FakeStack()
    context = _context(tmp_path, stack)
    assert run_step(steps.PauseComponent(component="relay"), context) == StepResult("relay stopped")
    resumed = run_step(steps.ResumeComponent(component="relay"), context)
    assert resumed.detail == "relay started again (pid 4242)"
    assert stack.components.calls == [("pause", "relay"), ("resume", "relay")]


def test_rollback_producer_restores_the_contract(tmp_path: Path) -> None:
    stack = FakeStack()
    result = run_step(steps.RollbackProducer(), _context(tmp_path, stack))
    assert stack.platform.contracts == [ProducerContract()]
    assert "enforcement on" in result.detail


# -- registering ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("failover")
def test_a_registered_step_is_used(tmp_path: Path) -> None:
    result = run_step(FailoverDb(region="us-east-1"), _context(tmp_path))
    assert result == StepResult("failed over to us-east-1", extra={"run_dir": str(tmp_path)})
    assert "acme.failover_db" in registry.kinds()


def test_an_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        PluginError,
        match=r"no implementation for recovery step kind 'acme\.failover_db'; known kinds: .*reconcile",
    ):
        run_step(FailoverDb(), _context(tmp_path))


def test_a_builtin_kind_cannot_be_registered_again() -> None:
    with pytest.raises(PluginError, match="'reconcile' already has an implementation"):
        register_step("reconcile", failover_db)


@pytest.mark.usefixtures("failover")
def test_a_kind_cannot_be_registered_twice() -> None:
    with pytest.raises(PluginError, match="already has an implementation"):
        register_step("acme.failover_db", failover_db)


def test_unregistering_forgets_the_kind() -> None:
    register_step("acme.failover_db", failover_db)
    unregister_step("acme.failover_db")
    unregister_step("acme.failover_db")  # idempotent
    assert "acme.failover_db" not in registry.kinds()


# -- entry points ------------------------------------------------------------------------------

PLUGIN_MODULE = textwrap.dedent(
    """
    from datadrill.recovery import StepResult

    def flush_dns(step, context):
        return StepResult("dns flushed")

    class FlushDns:
        kind = "acme.flush_dns"

        def run(self, step, context):
            return StepResult("dns flushed by the plugin")

    class NeedsArguments:
        kind = "acme.needs"

        def __init__(self, required):
            pass

        def run(self, step, context):
            return StepResult("never")

    NOT_CALLABLE = "flush"
    """
)


@model_dataclass(frozen=True)
class _FlushDns:
    kind: Literal["acme.flush_dns"] = "acme.flush_dns"

    def describe(self) -> str:
        return "flush DNS caches"


def _install(tmp_path: Path, *entries: str) -> None:
    (tmp_path / "acme_steps.py").write_text(PLUGIN_MODULE)
    dist = tmp_path / "acme_steps-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-steps\nVersion: 1.0\n")
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
        sys.modules.pop("acme_steps", None)
        registry.discovered.cache_clear()


def test_entry_point_group_name() -> None:
    assert registry.ENTRY_POINT_GROUP == "datadrill.recovery"


def test_an_entry_point_function_registers_under_its_name(isolated: Path) -> None:
    _install(isolated, "acme.flush_dns = acme_steps:flush_dns")
    assert run_step(_FlushDns(), _context(isolated)) == StepResult("dns flushed")


def test_an_entry_point_plugin_registers_under_its_kind(isolated: Path) -> None:
    _install(isolated, "dns = acme_steps:FlushDns")
    assert "dns" not in registry.kinds()
    assert run_step(_FlushDns(), _context(isolated)) == StepResult("dns flushed by the plugin")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("gone = acme_steps:Missing", r"'gone' \(acme_steps:Missing\) failed to load"),
        ("nothing = acme_steps:NOT_CALLABLE", r"'nothing' \(acme_steps:NOT_CALLABLE\) is neither a step"),
        ("needs = acme_steps:NeedsArguments", r"'needs' \(acme_steps:NeedsArguments\) could not be made"),
    ],
)
def test_a_broken_plugin_is_named(isolated: Path, entry: str, message: str) -> None:
    _install(isolated, entry)
    with pytest.raises(PluginError, match=message):
        registry.implementations()


def test_a_plugin_reusing_a_kind_is_refused(isolated: Path) -> None:
    _install(isolated, "reconcile = acme_steps:flush_dns")
    with pytest.raises(PluginError, match=r"'reconcile' .* reuses the step kind 'reconcile'"):
        registry.implementations()


# -- the scenario model ------------------------------------------------------------------------


def test_a_runbook_accepts_a_plugins_step() -> None:
    step = FailoverDb()
    runbook = Runbook(steps=(steps.PauseComponent(), step, steps.ResumeComponent()))
    assert runbook.steps[1] is step


def test_a_runbook_refuses_what_is_not_a_step() -> None:
    with pytest.raises(ValidationError, match=r"steps\[1\]: 'reconcile' is not a runbook step"):
        Runbook(steps=(steps.Reconcile(), "reconcile"))  # type: ignore[arg-type]


def test_a_runbook_refuses_a_plugin_step_with_a_builtin_kind() -> None:
    @model_dataclass(frozen=True)
    class Impostor:
        kind: str = "reconcile"

        def describe(self) -> str:
            return "not the real one"

    with pytest.raises(ValidationError, match="claims the kind 'reconcile' of the built-in Reconcile"):
        Runbook(steps=(Impostor(),))


def test_a_runbook_needs_a_step() -> None:
    with pytest.raises(ValidationError, match="non-empty tuple of steps"):
        Runbook(steps=())


SCENARIO_FILE = textwrap.dedent(
    """
    from typing import Literal
    from pydantic.dataclasses import dataclass
    from datadrill.model import SLO, HideTable, QuerySuccess, Runbook, Scenario

    @dataclass(frozen=True)
    class FailoverDb:
        kind: Literal["acme.failover_db"] = "acme.failover_db"

        def describe(self) -> str:
            return "fail the database over"

    SCENARIO = Scenario(
        name="failover",
        slos=(SLO("q", sli=QuerySuccess(), objective=0.99),),
        schedule=(HideTable(at_s=1, duration_s=2),),
        recovery=Runbook(steps=(FailoverDb(),)),
    )
    """
)


def test_loading_a_scenario_needs_an_implementation_for_a_plugins_step(tmp_path: Path) -> None:
    from datadrill.engine.loader import load_scenario

    path = tmp_path / "failover.py"
    path.write_text(SCENARIO_FILE)
    with pytest.raises(
        ConfigError, match=r"recovery\.steps\[0\]\.kind = 'acme\.failover_db' .*datadrill\.recovery"
    ):
        load_scenario(path)
    register_step("acme.failover_db", failover_db)
    try:
        runbook = load_scenario(path).recovery
        assert isinstance(runbook, Runbook)
        assert runbook.steps[0].kind == "acme.failover_db"
    finally:
        unregister_step("acme.failover_db")
