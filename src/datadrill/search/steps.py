"""Schedule steps executed on a stack, recorded as a replayable journal.

A schedule is a sequence of steps: ``inject`` a fault, ``revert`` one, ``advance`` (let
the workload run), ``recover`` (revert everything, let the pipeline settle, reconcile the
orders written since the schedule began). The search's state machine and ``datadrill
replay`` both run steps through :class:`StepRunner`, so a saved journal re-runs exactly
the schedule that failed.

Journal (JSON lines): a ``schedule`` header (format version, seed, the stack's sink
guarantee), one line per step, and an ``outcome`` line per recovery.

Example::

    runner = StepRunner(stack, run_dir)
    runner.inject(KillComponent(at_s=0, component="sink", moment="mid_commit"))
    runner.advance(1.0)
    outcome = runner.recover()     # Outcome(ok=False, detail="12 orders lost ...")
    runner.save(Path("failing.jsonl"))
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from datadrill import jsonl
from datadrill.clock import MonotonicClock
from datadrill.errors import ConfigError
from datadrill.faults.base import DrillContext
from datadrill.faults.ledger import FaultLedger, LedgeredHandle, inject

if TYPE_CHECKING:
    from datadrill.stack.port import Stack

JOURNAL_VERSION = 1
STEP_KINDS = ("inject", "revert", "advance", "recover")
# Orders still in flight when a schedule begins are the schedule's to lose (a sink killed
# mid-commit drops the batch it was writing, and that batch is older than the schedule).
# They are looked for among the newest orders, but never before the last order an
# earlier recovery on this stack already checked (its file is in the stack's run dir).
IN_FLIGHT_LOOKBACK = 5_000


def spec_to_json(spec: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = TypeAdapter(type(spec)).dump_python(spec, mode="json")
    return dumped


def spec_from_json(data: dict[str, Any], *, source: str) -> Any:
    from pydantic import ValidationError

    from datadrill.faults.registry import PluginError, plugin_for

    kind = data.get("kind")
    try:
        spec_type = plugin_for(str(kind)).spec_type
    except PluginError as exc:
        raise ConfigError(source, "fault.kind", kind, str(exc)) from None
    try:
        return TypeAdapter(spec_type).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "fault"
        raise ConfigError(source, f"fault.{where}", first.get("input"), first["msg"]) from None


@dataclass(frozen=True)
class Outcome:
    """What a recovery found for the orders written since the schedule began."""

    ok: bool
    detail: str
    settle_s: float
    lost: int = 0
    duplicated: int = 0


@dataclass
class StepRunner:
    """Runs schedule steps on a stack, through the fault ledger, and records them."""

    stack: Stack
    run_dir: Path
    seed: int = 0
    rate: float = 400.0
    settle_timeout_s: float = 60.0
    max_recovery_s: float | None = None  # the suite's SLO on time to settle after a recovery
    steps: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    _active: dict[int, LedgeredHandle] = field(default_factory=dict)
    _injected: int = 0
    _first_key: int | None = None

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.context = DrillContext(self.stack, self.run_dir, MonotonicClock())
        self.ledger = FaultLedger.for_stack(self.stack.paths.root)
        self.stack.workload.set(rate=self.rate)
        self._first_key = self._window_start()

    # -- steps -------------------------------------------------------------------------
    def inject(self, spec: Any) -> int:
        """Inject ``spec`` now; returns its index for :meth:`revert`."""
        index = self._injected
        self._injected += 1
        self.steps.append({"step": "inject", "index": index, "fault": spec_to_json(spec)})
        self._active[index] = inject(spec, self.context, ledger=self.ledger)
        return index

    def revert(self, index: int) -> str:
        self.steps.append({"step": "revert", "index": index})
        handle = self._active.pop(index, None)
        return handle.revert() if handle is not None else "nothing to do: not active"

    def advance(self, seconds: float) -> None:
        self.steps.append({"step": "advance", "seconds": seconds})
        time.sleep(seconds)

    def recover(self) -> Outcome:
        """Revert every active fault, let the pipeline settle, reconcile this schedule's orders."""
        self.steps.append({"step": "recover"})
        self.revert_all()
        outcome = self._settle_and_check()
        self.outcomes.append(outcome)
        return outcome

    def revert_all(self) -> None:
        for index in sorted(self._active, reverse=True):
            self._active.pop(index).revert()

    # -- replay ------------------------------------------------------------------------
    def run_step(self, step: dict[str, Any], *, source: str) -> Outcome | None:
        kind = step.get("step")
        if kind == "inject":
            self.inject(spec_from_json(dict(step.get("fault", {})), source=source))
        elif kind == "revert":
            self.revert(int(step["index"]))
        elif kind == "advance":
            self.advance(float(step["seconds"]))
        elif kind == "recover":
            return self.recover()
        else:
            raise ConfigError(source, "step", kind, f"one of {', '.join(STEP_KINDS)}")
        return None

    # -- journal -----------------------------------------------------------------------
    def save(self, path: Path, *, note: str = "") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "type": "schedule",
            "version": JOURNAL_VERSION,
            "seed": self.seed,
            "rate": self.rate,
            "sink_guarantee": self.stack.config.sink.guarantee,
            "note": note,
        }
        lines = [header, *self.steps]
        lines += [{"type": "outcome", **o.__dict__} for o in self.outcomes]
        return jsonl.write_atomically(path, lines)

    def faults_injected(self) -> int:
        return self._injected

    # -- settling ----------------------------------------------------------------------
    def _newest_source_key(self) -> int:
        from datadrill.platform import source_db

        with contextlib.closing(self.stack.source()) as db:
            return source_db.next_order_id(db) - 1

    @property
    def _checked_file(self) -> Path:
        return self.stack.paths.schedule_checked

    def _window_start(self) -> int:
        """The first order this schedule answers for: the oldest order not yet in the
        table (still in flight), or the next order when nothing is in flight."""
        from datadrill.errors import QueryFailed

        newest = self._newest_source_key()
        floor = newest - IN_FLIGHT_LOOKBACK
        with contextlib.suppress(OSError, ValueError):
            floor = max(floor, int(self._checked_file.read_text(encoding="utf-8")))
        if floor >= newest:
            return newest + 1
        engine = self.stack.query_engine()
        try:
            result = self._reconcile(engine, (max(floor + 1, 1), newest))
        except QueryFailed:
            return newest + 1
        finally:
            engine.close()
        return min(result.omissions, default=newest + 1)

    def _reconcile(self, engine: Any, key_range: tuple[int, int]) -> Any:
        """Source orders in ``key_range`` against the table."""
        from datadrill.integrity.reconcile import EngineSide, reconcile
        from datadrill.integrity.sides import SourceSide

        # SQLite or PostgreSQL: the source's counts and hashes run in its own engine.
        with contextlib.closing(self.stack.source()) as db:
            return reconcile(
                SourceSide(db),
                EngineSide(engine, table=self.stack.table, key="order_id"),
                key_range=key_range,
            )

    def _outbox_depth(self) -> int:
        from datadrill.platform import source_db

        with contextlib.closing(self.stack.source()) as db:
            return source_db.outbox_depth(db)

    def _offsets(self, consumer: Any) -> dict[int, tuple[int, int]]:
        """partition -> (the sink group's committed offset, the high watermark); a partition
        the group never committed counts from its low watermark."""
        from confluent_kafka import TopicPartition

        topic = self.stack.topic
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
        out = {}
        for tp in consumer.committed(partitions, timeout=10):
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            out[tp.partition] = (tp.offset if tp.offset >= 0 else low, high)
        return out

    def _settle_and_check(self) -> Outcome:
        from confluent_kafka import Consumer

        began = time.monotonic()
        self.stack.workload.set(rate=0)
        last_key = self._newest_source_key()
        consumer = Consumer(
            {
                "bootstrap.servers": self.stack.bootstrap_servers,
                "group.id": self.stack.config.sink.group_id,
                "enable.auto.commit": False,
            }
        )
        try:
            # Settled: the outbox was empty once (every order up to last_key was in Kafka,
            # below the high watermarks read then), and the sink's group has committed past
            # those watermarks (all of it consumed and in the table). Canaries keep
            # trickling in after that: waiting for no lag at all would race them. Rows a
            # broken sink skipped never arrive, so waiting cannot hide a loss.
            targets: dict[int, int] | None = None
            while time.monotonic() - began < self.settle_timeout_s:
                if targets is None and self._outbox_depth() == 0:
                    targets = {p: high for p, (_, high) in self._offsets(consumer).items()}
                if targets is not None:
                    committed = self._offsets(consumer)
                    if all(committed[p][0] >= high for p, high in targets.items()):
                        break
                time.sleep(0.2)
            settle_s = time.monotonic() - began
            first = self._first_key or 1
            engine = self.stack.query_engine()
            try:
                # A sink that commits offsets early (the weakened one) shows no lag while its
                # last rows are still being written: missing rows are looked for again
                # until their number stops falling. Lost rows stay lost.
                result = None
                for _attempt in range(4):
                    again = self._reconcile(engine, (min(first, last_key), last_key))
                    if again.exact or (result is not None and len(again.omissions) >= len(result.omissions)):
                        result = again
                        break
                    result = again
                    time.sleep(0.5)
                assert result is not None
            finally:
                engine.close()
        finally:
            consumer.close()
            self.stack.workload.set(rate=self.rate)
        self._checked_file.write_text(str(last_key), encoding="utf-8")
        lost, duplicated = len(result.omissions), len(result.duplicates)
        problems = []
        if not result.exact:
            problems.append(
                f"orders {first}..{last_key}: {lost} lost, {duplicated} duplicated, "
                f"{len(result.discrepancies)} differing, {len(result.unexpected)} unexpected"
            )
        if settle_s >= self.settle_timeout_s:
            problems.append(f"the pipeline did not settle within {self.settle_timeout_s:g} s")
        elif self.max_recovery_s is not None and settle_s > self.max_recovery_s:
            problems.append(
                f"recovery took {settle_s:.1f} s, over the suite's SLO of {self.max_recovery_s:g} s"
            )
        detail = (
            "; ".join(problems) or f"orders {first}..{last_key} exactly once; settled in {settle_s:.1f} s"
        )
        return Outcome(ok=not problems, detail=detail, settle_s=settle_s, lost=lost, duplicated=duplicated)


def load_journal(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the steps of a saved schedule (outcome lines are left out)."""
    source = str(path)
    header: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    for number, record in jsonl.iter_records(path, what="journal file", expected="a JSON object per line"):
        if record.get("type") == "schedule":
            header = record
        elif "step" in record:
            if record["step"] not in STEP_KINDS:
                raise ConfigError(
                    source, f"line {number}: step", record["step"], f"one of {', '.join(STEP_KINDS)}"
                )
            steps.append(record)
    if header is None:
        raise ConfigError(source, "schedule header", None, "a journal saved by datadrill's schedule search")
    if header.get("version") != JOURNAL_VERSION:
        raise ConfigError(source, "version", header.get("version"), f"{JOURNAL_VERSION}")
    return header, steps
