"""A Hypothesis state machine over a running stack: rules inject and revert faults and
let the workload run; every recovery must find each order exactly once, settled within
the suite's SLO. When a run fails, Hypothesis shrinks it to the smallest failing
schedule, and the last schedule run (the shrunk one) is saved as a replayable journal.

Example (a test module)::

    from hypothesis import settings
    from datadrill.search.machine import platform_machine

    Machine = platform_machine(stack, journal_dir=Path("drill-reports/search"))
    Machine.TestCase.settings = settings(max_examples=10, stateful_step_count=6, deadline=None)
    test_platform = Machine.TestCase
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import assume
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from datadrill.model import LagSpike
from datadrill.search.steps import StepRunner
from datadrill.search.strategies import single_faults

if TYPE_CHECKING:
    from datadrill.stack.port import Stack

FAILING_JOURNAL = "failing-schedule.jsonl"


def platform_machine(
    stack: Stack,
    *,
    journal_dir: Path,
    faults: st.SearchStrategy[Any] | None = None,
    max_active: int = 2,
    max_advance_s: float = 2.0,
    rate: float = 400.0,
    max_recovery_s: float | None = 30.0,
    seed: int = 0,
) -> type[RuleBasedStateMachine]:
    """A state machine class bound to ``stack``. ``faults`` draws single faults (default:
    :func:`~datadrill.search.strategies.single_faults`); at most ``max_active`` are in
    effect at once. A failing schedule is saved to ``journal_dir/failing-schedule.jsonl``."""
    fault_strategy = faults if faults is not None else single_faults()
    advances = st.sampled_from([round(max_advance_s * f, 2) for f in (0.25, 0.5, 1.0)])
    example_counter = [0]

    class PlatformMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            example_counter[0] += 1
            self.runner = StepRunner(
                stack,
                journal_dir / "runs" / f"example-{example_counter[0]}",
                seed=seed,
                rate=rate,
                max_recovery_s=max_recovery_s,
            )
            self.active: list[int] = []
            self.specs: dict[int, Any] = {}

        def _check(self) -> None:
            outcome = self.runner.recover()
            self.active.clear()
            self.specs.clear()
            if not outcome.ok:
                # Hypothesis runs the shrunk schedule last, so the file ends up holding it.
                path = self.runner.save(journal_dir / FAILING_JOURNAL, note=outcome.detail)
                raise AssertionError(f"{outcome.detail}\nschedule saved: {path} (datadrill replay {path})")

        @precondition(lambda self: len(self.active) < max_active)
        @rule(fault=fault_strategy)
        def inject(self, fault: Any) -> None:
            # A mid-commit kill waits for the connector's next commit, which a paused sink
            # never makes: such a combination is not a schedule, so Hypothesis drops it.
            paused = any(isinstance(spec, LagSpike) and spec.mode == "pause" for spec in self.specs.values())
            assume(not (paused and getattr(fault, "moment", "") == "mid_commit"))
            index = self.runner.inject(fault)
            self.active.append(index)
            self.specs[index] = fault

        @precondition(lambda self: bool(self.active))
        @rule(data=st.data())
        def revert(self, data: st.DataObject) -> None:
            index = data.draw(st.sampled_from(self.active), label="fault")
            self.active.remove(index)
            self.specs.pop(index, None)
            self.runner.revert(index)

        @rule(seconds=advances)
        def advance(self, seconds: float) -> None:
            self.runner.advance(seconds)

        @precondition(lambda self: self.runner.faults_injected() > 0)
        @rule()
        def recover(self) -> None:
            self._check()

        def teardown(self) -> None:
            # Every schedule ends with a recovery: faults come back out, then the check.
            try:
                if self.runner.steps and self.runner.steps[-1]["step"] != "recover":
                    self._check()
            finally:
                self.runner.revert_all()
                # Every schedule tried is kept, to read what the search did.
                self.runner.save(self.runner.run_dir / "schedule.jsonl")

    PlatformMachine.__name__ = "PlatformMachine"
    # The same seed gives the same schedules (Hypothesis copies this to the test it builds).
    return hypothesis_seed(seed)(PlatformMachine)
