"""Dispatch of runbook steps to their implementations, with uniform results."""

from __future__ import annotations

from dataclasses import dataclass

from datadrill.faults.base import DrillContext
from datadrill.model import recovery as steps


@dataclass(frozen=True)
class StepResult:
    detail: str
    rows: int | None = None
    rate_per_s: float | None = None
    ok: bool = True
    extra: dict[str, object] | None = None


def run_step(step: steps.Step, context: DrillContext) -> StepResult:
    """Run one runbook step. Every step kind has exactly one implementation."""
    stack = context.stack
    if isinstance(step, steps.PauseComponent):
        stack.pause(step.component)
        return StepResult(f"{step.component} stopped")
    elif isinstance(step, steps.ResumeComponent):
        pid = stack.resume(step.component)
        return StepResult(f"{step.component} started again (pid {pid})")
    elif isinstance(step, steps.RestoreCatalogBackup):
        from datadrill.recovery.backup import restore_backup

        backup = restore_backup(context, step.backup)
        age = context.clock.monotonic() - backup.taken_mono
        rows = f"{backup.rows:,} rows" if backup.rows is not None else "row count unknown"
        return StepResult(
            f"{backup.identifier} restored to snapshot {backup.snapshot_id} ({rows}), "
            f"a backup taken {age:.1f} s earlier",
            rows=backup.rows,
            extra={"backup": backup.name, "snapshot_id": backup.snapshot_id},
        )
    elif isinstance(step, steps.ReregisterFromMetadata):
        from datadrill.recovery.reregister import reregister

        location = reregister(context, step.table)
        return StepResult(f"{step.table} registered from {location.rsplit('/', 1)[-1]}")
    elif isinstance(step, steps.ReplayKafka):
        from datadrill.recovery.replay import replay_kafka

        result = replay_kafka(step, context)
        return StepResult(
            f"{result.rows:,} rows replayed from {result.messages:,} messages on {result.partitions} "
            f"partitions with {result.workers} workers ({result.duplicates:,} duplicates dropped, "
            f"{result.commits} commits)",
            rows=result.rows,
            rate_per_s=result.rate_per_s,
            extra={
                "replay_rows": result.rows,
                "replay_rate_per_s": result.rate_per_s,
                "workers": result.workers,
            },
        )
    elif isinstance(step, steps.RollbackProducer):
        run = stack.paths.run
        (run / "relay.writer").unlink(missing_ok=True)
        (run / "relay.enforce").unlink(missing_ok=True)
        return StepResult("the relay writes with the contract's own schema again, enforcement on")
    elif isinstance(step, steps.ReprocessDeadLetters):
        from datadrill.recovery.dead_letters import reprocess_dead_letters

        count, elapsed = reprocess_dead_letters(context)
        return StepResult(
            f"{count:,} dead-lettered orders re-emitted through the outbox",
            rows=count,
            rate_per_s=count / elapsed if elapsed > 0 else None,
        )
    elif isinstance(step, steps.Reconcile):
        from datadrill.recovery.reconcile_step import reconcile_and_repair

        return reconcile_and_repair(context, repair=step.repair, buckets=step.buckets)
    else:
        raise TypeError(f"no implementation for recovery step {step!r}")
