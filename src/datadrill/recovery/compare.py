"""Compare: several recovery paths measured on the same loss, one of them applied.

The paths not applied run first, each step in its *measurement mode*: it does the read
side of its work and changes nothing (a re-snapshot finds the gap and reads its rows from
the source in chunks but writes no outbox rows; a replay consumes and decodes the offsets
it would replay but commits nothing; a backfill reads and anti-joins the reserve but
appends nothing), and reports rows and rate. Because nothing changed, the applied path
then meets the very loss the others measured, and runs for real.

A step implementation offers its measurement mode as ``measure(step, context) ->
StepResult``: the built-ins below, a :class:`~datadrill.recovery.registry.StepPlugin`
object with a ``measure`` method, or a bare implementation function carrying a
``measure`` attribute::

    def failover_db(step, context): ...
    def measure_failover_db(step, context): ...   # reads only
    failover_db.measure = measure_failover_db

The runner runs a Compare itself so that each step is its own phase in the journal
(:meth:`datadrill.engine.runner._RecoveryThread`); :func:`run_compare` runs one without a
runner (``run_step``), as one result.

Example::

    result = measure_step(ReplayKafka(start="earliest", workers=4), context, implementations())
    result.rows, result.rate_per_s   # rows the replay would write, at the rate it read them
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from datadrill.faults.base import DrillContext
from datadrill.faults.registry import PluginError
from datadrill.model.recovery import Compare, RecoveryPath, StepSpec
from datadrill.recovery.result import StepResult

# The step registry (datadrill.recovery.registry) runs a Compare through this module, so
# this module takes the registry's implementations as an argument instead of importing it.
MeasureFn = Callable[[Any, DrillContext], StepResult]
Implementations = Mapping[str, Callable[[Any, DrillContext], StepResult]]

# Built-in measurement modes: (module, function), imported when first asked for, so a
# step module that is not there yet (or not importable here) costs only its own kind.
_BUILTIN_MEASURES: dict[str, tuple[str, str]] = {
    "resnapshot_from_source": ("datadrill.recovery.resnapshot", "measure_resnapshot_from_source"),
    "replay_kafka": ("datadrill.recovery.replay", "measure_replay_kafka"),
    "backfill_from_reserve": ("datadrill.recovery.backfill", "measure_backfill_from_reserve"),
}

# The registry's implementations by kind, handed over by datadrill.recovery.registry when
# it lists the built-ins: it imports this module, so this module cannot import it back.
_registry: Callable[[], Implementations] | None = None


def bind_registry(implementations: Callable[[], Implementations]) -> None:
    """Where :func:`run_compare` finds the steps of its paths when not given them."""
    global _registry
    _registry = implementations


# Journal keys a Compare's phases carry in their ``extra`` (datadrill.engine.measure reads them).
PATH_KEY = "compare_path"
MEASURED_KEY = "compare_measured"
SUMMARY_KEY = "compare"


def _builtin_measure(kind: str) -> MeasureFn | None:
    where = _BUILTIN_MEASURES.get(kind)
    if where is None:
        return None
    try:
        module = importlib.import_module(where[0])
    except ImportError:
        return None
    found = getattr(module, where[1], None)
    return found if callable(found) else None


def measure_for(kind: str, implementations: Implementations) -> MeasureFn | None:
    """The measurement mode of the step ``kind`` (``implementations``: the registry's, by
    kind), or None when its implementation has none."""
    builtin = _builtin_measure(kind)
    if builtin is not None:
        return builtin
    implementation = implementations.get(kind)
    if implementation is None:
        return None
    # A StepPlugin registers its bound ``run``: the object behind it may offer ``measure``.
    owner = getattr(implementation, "__self__", None)
    for holder in (owner, implementation):
        measure = getattr(holder, "measure", None) if holder is not None else None
        if callable(measure):
            found: MeasureFn = measure
            return found
    return None


def check_compare(step: Compare, implementations: Implementations) -> None:
    """Raise :class:`PluginError` (one line) when a step of a measured path has no
    measurement mode or a step of the applied path no implementation. The model refuses
    built-in kinds without one when the scenario loads; a plugin's kind is known only here."""
    for path in step.paths:
        for index, inner in enumerate(path.steps):
            if path.name == step.apply:
                if inner.kind not in implementations:
                    raise PluginError(
                        f"Compare: path {path.name!r} steps[{index}]: no implementation for the step kind "
                        f"{inner.kind!r}; known kinds: {', '.join(sorted(implementations))}"
                    )
                continue
            if measure_for(inner.kind, implementations) is None:
                raise PluginError(
                    f"Compare: path {path.name!r} steps[{index}] ({inner.kind}) is measured, not applied, "
                    "and its implementation offers no measure(step, context); apply this path or use "
                    "steps with a measurement mode"
                )


def measure_step(step: StepSpec, context: DrillContext, implementations: Implementations) -> StepResult:
    """Run ``step`` in its measurement mode: the read side of its work, nothing changed."""
    measure = measure_for(step.kind, implementations)
    if measure is None:
        raise PluginError(f"step kind {step.kind!r} has no measurement mode (measure(step, context))")
    return measure(step, context)


def path_steps(step: Compare) -> list[tuple[RecoveryPath, StepSpec, bool]]:
    """Every step of every path in the order a Compare runs them, with whether it is only
    measured: the measured paths first (they must see the loss untouched), then the applied one."""
    ordered = [*step.measured, step.applied]
    return [(path, inner, path.name != step.apply) for path in ordered for inner in path.steps]


def phase_name(path: RecoveryPath, inner: StepSpec, measured: bool) -> str:
    """The journal phase of one step of a path: unique within a Compare (paths' names are)."""
    how = " (measured, not applied)" if measured else ""
    return f"{path.name}{how}: {inner.describe()}"


def summary_extra(step: Compare) -> dict[str, object]:
    """What the Compare's own phase records: which paths, which one applied."""
    return {
        SUMMARY_KEY: {
            "apply": step.apply,
            "paths": [
                {"name": path.name, "applied": path.name == step.apply, "steps": [s.kind for s in path.steps]}
                for path in step.paths
            ],
        }
    }


def run_compare(
    step: Compare, context: DrillContext, implementations: Implementations | None = None
) -> StepResult:
    """A Compare run as one step (``run_step``), without a runner to journal each of its
    steps: the measured paths' results and the applied path's, in one result.
    ``implementations``: the steps by kind (default: the registry's)."""
    if implementations is None:
        if _registry is None:
            raise PluginError("Compare runs its paths' steps through the step registry: use run_step")
        implementations = _registry()
    check_compare(step, implementations)
    lines: list[str] = []
    ok = True
    applied_rows: int | None = None
    for path, inner, measured in path_steps(step):
        if measured:
            result = measure_step(inner, context, implementations)
        else:
            result = implementations[inner.kind](inner, context)
        ok = ok and result.ok
        if not measured and result.rows is not None:
            applied_rows = (applied_rows or 0) + result.rows
        lines.append(f"{phase_name(path, inner, measured)}: {result.detail}")
    return StepResult("; ".join(lines), rows=applied_rows, ok=ok, extra=summary_extra(step))
