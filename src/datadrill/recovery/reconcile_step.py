"""Reconcile source against sink on a live pipeline, and optionally repair.

What is compared is the step's :class:`~datadrill.model.slo.Target`: by default the
reference platform's orders source against the stack's table; any source query against
any table on its key and the columns it names (:mod:`datadrill.integrity.targets`). The
sink's counts and hashes run where the table lives: Trino on a stack whose queries go to
Trino, DuckDB in this process on the embedded stack; the result says which.

Rows still in flight must not count as omissions: the comparison covers keys up to the
source's newest key when the step starts, after the pipeline has carried every change up
to it into the table (:mod:`datadrill.recovery.catch_up`: the outbox published, the
table's offsets at Kafka's high watermarks; at most ``catch_up.CATCH_UP_S``). Omissions
found then are real; when the wait fell back on the table's newest key or timed out,
omissions are re-checked and those that persist are real.

While it works, the step reports the rows compared so far, both sides and every re-check
together (``DrillContext.report_progress``): the count moves as each side's scan ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.integrity.reconcile import ReconcileResult, reconcile
from datadrill.integrity.targets import is_reference, open_sink, source_max_key, target_sides
from datadrill.model.recovery import Reconcile
from datadrill.model.slo import Target
from datadrill.recovery.catch_up import wait_caught_up
from datadrill.recovery.result import StepResult

RECHECKS = 3


def live_reconcile(
    context: DrillContext, *, buckets: int = 64, target: Target | None = None
) -> ReconcileResult:
    stack = context.stack
    target = target or Target()
    # The reference target reads the stack's own table (a stack may name another one).
    table = stack.table if is_reference(target) else target.table
    # Rows compared by the passes before this one: re-checks compare the range again, and
    # the count goes on rising so that the rate the live view shows stays true.
    earlier = 0

    def compared(rows: int) -> None:
        context.report_progress(earlier + rows)

    with contextlib.closing(stack.source()) as db, open_sink(stack) as sink:
        cutoff = source_max_key(db, target)
        waited = wait_caught_up(
            stack,
            db,
            lambda: sink.max_key(table, target.key_column) >= cutoff,
            cutoff=cutoff,
            reference=is_reference(target),
        )

        def once() -> ReconcileResult:
            source, sink_side = target_sides(target, db, sink, table=table)
            return reconcile(source, sink_side, key_range=(0, cutoff), buckets=buckets, progress=compared)

        result = once()
        # Re-checked only when the pipeline may still carry what is missing: after a wait
        # that settled (outbox published, table at the high watermarks) it is lost.
        for _ in range(0 if waited.settled else RECHECKS):
            if not result.omissions:
                break
            time.sleep(1.0)  # late rows of the last batches, not lost ones
            earlier += result.compared_rows
            result = once()
        behind = "" if waited.caught_up else f"after {waited.waited_s:.0f} s, {waited.detail}"
        return dataclasses.replace(result, engine=sink.where, table=table, behind=behind)


@contextlib.contextmanager
def _sink_held(context: DrillContext) -> Iterator[None]:
    """Pause a running sink for the repair's commit. On an unpartitioned table every
    concurrent append conflicts with the repair's delete, and the sink appends several
    times a second; the pause goes through the fault ledger, so it always comes back."""
    from datadrill.faults.ledger import FaultLedger, inject
    from datadrill.faults.stack_state import pause_spec

    stack = context.stack
    if stack.components.get("sink").paused:
        yield  # the runbook paused it already
        return
    handle = inject(pause_spec("sink"), context, ledger=FaultLedger.for_stack(stack.paths.root))
    try:
        yield
    finally:
        handle.revert()


def reconcile_and_repair(
    context: DrillContext, *, repair: bool, buckets: int, target: Target | None = None
) -> StepResult:
    result = live_reconcile(context, buckets=buckets, target=target)
    extra: dict[str, object] = {
        "compared_rows": result.compared_rows,
        "source_rows": result.source_rows,
        "duplicates": len(result.duplicates),
        "omissions": len(result.omissions),
        "discrepancies": len(result.discrepancies),
        "unexpected": len(result.unexpected),
        "repaired_rows": 0,
        "inserted_rows": 0,  # of repaired_rows: rows the table lacked, fetched from the source
        "engine": result.engine,
    }
    detail = result.describe()
    if repair and not result.exact:
        from datadrill.integrity.repair import repair as repair_table

        if target is not None and not is_reference(target):
            # Reconcile refuses this at load; a step built another way must not get here.
            raise ConfigError(
                "Reconcile", "repair", True, f"False for {target.table}: only the reference table is repaired"
            )

        stack = context.stack
        with _sink_held(context), contextlib.closing(stack.source()) as db:
            repaired = repair_table(stack.catalog(), stack.table, result, db)
        extra["repaired_rows"] = repaired.deleted_rows + repaired.inserted_rows
        extra["inserted_rows"] = repaired.inserted_rows
        detail += f"; repaired: {repaired.deleted_rows:,} rows deleted, {repaired.inserted_rows:,} inserted"
    return StepResult(detail, rows=result.compared_rows, rate_per_s=result.rows_per_s, extra=extra)


def run_reconcile(step: Reconcile, context: DrillContext) -> StepResult:
    return reconcile_and_repair(context, repair=step.repair, buckets=step.buckets, target=step.target)
