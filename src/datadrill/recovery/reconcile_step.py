"""Reconcile source against sink on a live pipeline, and optionally repair.

Rows still in flight must not count as omissions: the comparison covers keys up to the
source's newest key when the step starts, after the sink has had time to catch up to it.
Omissions that persist across a re-check are real.

While it works, the step reports the rows compared so far, both sides and every re-check
together (``DrillContext.report_progress``): the count moves as each side's scan ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from datadrill.faults.base import DrillContext
from datadrill.integrity.reconcile import EngineSide, ReconcileResult, SqliteSide, reconcile
from datadrill.model.recovery import Reconcile
from datadrill.recovery.result import StepResult

CATCH_UP_S = 30.0
RECHECKS = 3


def live_reconcile(context: DrillContext, *, buckets: int = 64) -> ReconcileResult:
    stack = context.stack
    # Rows compared by the passes before this one: re-checks compare the range again, and
    # the count goes on rising so that the rate the live view shows stays true.
    earlier = 0

    def compared(rows: int) -> None:
        context.report_progress(earlier + rows)

    with contextlib.closing(stack.source()) as db:
        (cutoff,) = db.execute("SELECT COALESCE(MAX(order_id), 0) FROM orders").fetchone()
        engine = stack.query_engine()
        try:
            deadline = time.monotonic() + CATCH_UP_S
            while time.monotonic() < deadline:
                (newest,) = engine.rows(f"SELECT COALESCE(max(order_id), 0) FROM {stack.table}")[0]
                if newest >= cutoff:
                    break
                time.sleep(0.2)
            result = reconcile(
                SqliteSide(db),
                EngineSide(engine, table=stack.table),
                key_range=(0, int(cutoff)),
                buckets=buckets,
                progress=compared,
            )
            for _ in range(RECHECKS):
                if not result.omissions:
                    break
                time.sleep(1.0)  # late rows of the last batches, not lost ones
                earlier += result.compared_rows
                result = reconcile(
                    SqliteSide(db),
                    EngineSide(engine, table=stack.table),
                    key_range=(0, int(cutoff)),
                    buckets=buckets,
                    progress=compared,
                )
        finally:
            engine.close()
    return result


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


def reconcile_and_repair(context: DrillContext, *, repair: bool, buckets: int) -> StepResult:
    result = live_reconcile(context, buckets=buckets)
    extra: dict[str, object] = {
        "compared_rows": result.compared_rows,
        "source_rows": result.source_rows,
        "duplicates": len(result.duplicates),
        "omissions": len(result.omissions),
        "discrepancies": len(result.discrepancies),
        "unexpected": len(result.unexpected),
        "repaired_rows": 0,
    }
    detail = result.describe()
    if repair and not result.exact:
        from datadrill.integrity.repair import repair as repair_table

        stack = context.stack
        with _sink_held(context), contextlib.closing(stack.source()) as db:
            repaired = repair_table(stack.catalog(), stack.table, result, db)
        extra["repaired_rows"] = repaired.deleted_rows + repaired.inserted_rows
        detail += f"; repaired: {repaired.deleted_rows:,} rows deleted, {repaired.inserted_rows:,} inserted"
    return StepResult(detail, rows=result.compared_rows, rate_per_s=result.rows_per_s, extra=extra)


def run_reconcile(step: Reconcile, context: DrillContext) -> StepResult:
    return reconcile_and_repair(context, repair=step.repair, buckets=step.buckets)
