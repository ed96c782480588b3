"""The dry run on an in-memory stack: it probes each SLI once, resolves every schedule
item's target, lists recovery, expectations and stop conditions, names each problem in
one line, and changes nothing (no fault, no workload change, no ledger line, no run
directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_stack import FakeStack
from rich.console import Console

from datadrill.cli.dry_run import render, run_dry, schedule_line
from datadrill.clock import FakeClock
from datadrill.engine.dry_run import plan
from datadrill.faults.metadata import has_catalog_row
from datadrill.model import (
    SLO,
    Automatic,
    DeleteCatalogEntry,
    Expectations,
    KafkaRequestErrors,
    KillComponent,
    PauseComponent,
    QuerySuccess,
    Reconcile,
    RestoreCatalogBackup,
    ResumeComponent,
    RollbackProducer,
    Runbook,
    Scenario,
    SchemaDrift,
    SteadyState,
    TakeCatalogBackup,
    ThresholdAlert,
)
from datadrill.model.stop import SLILimit, StackUnhealthy
from datadrill.stack.port import KafkaCapability, ProducerContract


def _scenario(**changes: Any) -> Scenario:
    fields: dict[str, Any] = {
        "name": "dry",
        "description": "the table forgotten, then a drifted producer",
        "slos": (SLO("mart queries succeed", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=1)),),
        "steady_state": SteadyState(warmup_s=2, timeout_s=30),
        "schedule": (
            TakeCatalogBackup(at_s=0, name="nightly"),
            DeleteCatalogEntry(at_s=15),
            SchemaDrift(at_s=20, change="rename", duration_s=5),
        ),
        "recovery": Runbook(
            steps=(
                PauseComponent(component="sink"),
                RestoreCatalogBackup(backup="nightly"),
                ResumeComponent(component="sink"),
                RollbackProducer(),
                Reconcile(repair=True),
            ),
            response_delay_s=2,
        ),
        "expectations": Expectations(detect_within_s=10, recover_within_s=90),
    }
    fields.update(changes)
    return Scenario(**fields)


@pytest.fixture
def stack(tmp_path: Path) -> FakeStack:
    return FakeStack(tmp_path / "stack").with_catalog(commits=1)


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def test_a_dry_run_plans_everything_and_changes_nothing(stack: FakeStack, tmp_path: Path) -> None:
    before = _tree(tmp_path)
    contract_before = stack.platform.producer_contract()
    result = plan(_scenario(), stack, FakeClock())

    assert result.ok, result.problems
    (reading,) = result.slis
    assert (reading.slo, reading.good, reading.shown, reading.bound) == (
        "mart queries succeed", True, "ok", "succeeds"
    )
    backup, delete, drift = result.schedule
    assert schedule_line(backup) == (
        f"t+0 s: take catalog backup 'nightly' of dwh.orders (no snapshot yet; "
        f"SQLite catalog at {stack.paths.catalog_db})"
    )
    assert schedule_line(delete) == (
        f"t+15 s: catalog entry of dwh.orders deleted → the catalog entry of dwh.orders "
        f"(SQLite catalog at {stack.paths.catalog_db})"
    )
    assert schedule_line(drift) == (
        "t+20 s (until t+25 s): producer writer schema renames amount_cents (contract enforced) → "
        "the producer (component relay, pid 102), writing the contract's own schema with enforcement on now"
    )
    assert result.recovery.kind == "runbook" and result.recovery.response_delay_s == 2
    assert result.recovery.steps[1] == "restore the catalog from backup 'nightly'"
    assert result.expectations[:2] == ("detected within 10 s", "recovered within 90 s")

    # Nothing changed: no call on the stack, the table still there, the producer as it was,
    # no fault ledger, no run directory, no file anywhere.
    assert stack.calls == []
    assert has_catalog_row(stack.catalog(), "dwh.orders")
    assert stack.platform.producer_contract() == contract_before
    assert not stack.paths.fault_ledger.exists()
    assert _tree(tmp_path) == before


def test_a_missing_table_is_a_problem_that_names_it(stack: FakeStack) -> None:
    scenario = _scenario(schedule=(DeleteCatalogEntry(at_s=15, table="dwh.nope"),), recovery=Automatic())
    result = plan(scenario, stack, FakeClock(), source="scenarios/nope.py")
    assert not result.ok
    (problem,) = result.problems
    assert problem.startswith("schedule[0] (catalog entry of dwh.nope deleted): scenario: ")
    assert "DeleteCatalogEntry.table = 'dwh.nope'" in problem and "lists dwh.orders" in problem
    assert result.schedule[0].target is None
    assert "cannot:" in schedule_line(result.schedule[0])


def test_a_capability_the_backend_lacks_is_a_problem(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack", capabilities=frozenset({KafkaCapability.BROKER_LOSS}))
    scenario = _scenario(schedule=(KafkaRequestErrors(at_s=1),), recovery=Automatic())
    result = plan(scenario, stack, FakeClock(), source="scenarios/errors.py")
    (problem,) = result.problems
    assert problem.startswith("scenarios/errors.py: schedule[0] = 'kafka.request_errors' is invalid")
    assert "request_errors: the fake stack was built without it" in problem
    assert stack.calls == []


def test_an_sli_already_outside_its_slo_is_a_problem(stack: FakeStack) -> None:
    # The fake's mart fails while a drifted producer's records reach the table.
    stack.platform.contract = ProducerContract(writer="retype", enforce=False)
    result = plan(_scenario(), stack, FakeClock())
    assert not result.ok
    (problem,) = result.problems
    assert problem.startswith("SLI 'mart queries succeed' is outside its SLO now: failing: ")
    assert problem.endswith("(good when succeeds)")


def test_an_unknown_component_is_a_problem(stack: FakeStack) -> None:
    del stack.components.procs["relay"]
    scenario = _scenario(schedule=(KillComponent(at_s=3, component="relay"),), recovery=Automatic())
    (problem,) = plan(scenario, stack, FakeClock()).problems
    assert "KillComponent.component = 'relay'" in problem and "workload, sink" in problem


def test_stop_conditions_are_listed_with_the_value_now(stack: FakeStack) -> None:
    scenario = _scenario(
        stop_when=(SLILimit(slo="mart queries succeed", below=1), StackUnhealthy(for_s=5))
    )
    result = plan(scenario, stack, FakeClock())
    assert result.stop_conditions == ("mart queries succeed below 1 (now ok)", "the stack unhealthy for 5 s")
    assert result.ok  # 1 is not below 1

    crossed = _scenario(stop_when=(SLILimit(slo="mart queries succeed", above=0.5),))
    (problem,) = plan(crossed, stack, FakeClock()).problems
    assert problem == "stop condition 'mart queries succeed above 0.5' holds already: the run would stop at once"


def test_the_cli_prints_the_plan_and_exits_1_on_a_problem(stack: FakeStack, tmp_path: Path) -> None:
    console = Console(record=True, width=100, color_system=None)
    good, bad = Path("scenarios/dry.py"), Path("scenarios/nope.py")
    missing = _scenario(name="nope", schedule=(DeleteCatalogEntry(at_s=1, table="dwh.nope"),),
                        recovery=Automatic())
    assert run_dry([(good, _scenario())], stack, console) == 0
    assert run_dry([(good, _scenario()), (bad, missing)], stack, console) == 1
    text = console.export_text()
    lines = [line.strip() for line in text.splitlines()]
    assert "dry run of dry (scenarios/dry.py) on the fake stack: nothing is changed" in lines
    assert "✓ mart queries succeed: ok (good when succeeds)" in lines
    assert "recovery: runbook, 2 s after the first alert" in lines
    assert "2. restore the catalog from backup 'nightly'" in lines
    assert "expectations: detected within 10 s; recovered within 90 s; integrity verified at the end " \
        "(source reconciled against sink)" in lines
    assert "would run: yes" in lines
    assert "would run: NO, 1 problem:" in lines
    # Whole lines, however long: a problem is one line to grep.
    assert any(line.startswith("✗ schedule[0] (catalog entry of dwh.nope deleted): ") for line in lines)
    assert stack.calls == []


def test_render_survives_markup_in_user_text(stack: FakeStack) -> None:
    console = Console(record=True, width=100, color_system=None)
    render(plan(_scenario(description="[bold] not markup [/]"), stack, FakeClock()), Path("x.py"), console)
    assert "[bold] not markup [/]" in console.export_text()



def test_a_dry_run_says_when_a_drill_holds_the_stack_and_does_not_take_it(stack: FakeStack) -> None:
    console = Console(record=True, width=200, color_system=None)
    assert run_dry([(Path("scenarios/dry.py"), _scenario())], stack, console) == 0
    assert "a drill holds this stack" not in console.export_text()
    stack.runs.acquire(run_id="r1", scenario="calibration", pid=4242, run_dir="", lease_s=60)
    assert run_dry([(Path("scenarios/dry.py"), _scenario())], stack, console) == 0
    text = console.export_text()
    assert "note: a drill holds this stack now (calibration, run r1, pid 4242)" in text
    holder = stack.runs.holder()
    assert holder is not None and holder.run_id == "r1"  # the dry run took nothing
