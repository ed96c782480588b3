"""Reserve copies and BackfillFromReserve on the embedded stack, while the workload writes:
every order in the table exactly once afterwards, and the sink resumes where it should."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

from conftest import drain, sink_rows, start_stack, stop_stack
from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.model import BackfillFromReserve
from datadrill.platform.catalog import MAX_EVENT_IDS_PROPERTY, sink_state
from datadrill.recovery.backfill import BACKFILL_PROPERTY
from datadrill.recovery.backup import restore_backup, take_backup
from datadrill.recovery.registry import run_step
from datadrill.recovery.reserves import load_reserve, take_reserve
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    """A stack of this module's own: the tests delete rows and restore a stale table."""
    running = start_stack(tmp_path_factory.mktemp("backfill") / ".datadrill")
    yield running
    stop_stack(running)


def _context(stack: StackClient, tmp_path: Path) -> DrillContext:
    return DrillContext(stack, tmp_path, MonotonicClock())


def _grow(stack: StackClient, rows: int) -> int:
    """Wait until the table holds ``rows`` more rows than now; returns the count."""
    target = sink_rows(stack) + rows
    return int(
        wait_until(
            lambda: (n := sink_rows(stack)) >= target and n, timeout=90, what=f"{target:,} rows in the table"
        )
    )


def _keys_between(stack: StackClient, lo: int, hi: int) -> int:
    table = stack.catalog().load_table(stack.table)
    scan = table.scan(
        row_filter=And(
            GreaterThanOrEqual(term="order_id", value=lo), LessThanOrEqual(term="order_id", value=hi)
        ),
        selected_fields=("order_id",),
    )
    return int(scan.to_arrow().num_rows)


def _max_key(stack: StackClient) -> int:
    engine = stack.query_engine()
    try:
        return int(engine.rows(f"SELECT max(order_id) FROM {stack.table}")[0][0])
    finally:
        engine.close()


def _summary_max_ids(stack: StackClient, snapshot_id: int) -> dict[int, int]:
    snapshot = stack.catalog().load_table(stack.table).snapshot_by_id(snapshot_id)
    assert snapshot is not None and snapshot.summary is not None
    raw = snapshot.summary.additional_properties[MAX_EVENT_IDS_PROPERTY]
    return {int(p): int(i) for p, i in json.loads(raw).items()}


def test_a_lost_key_range_comes_back_once_while_the_sink_writes(stack: StackClient, tmp_path: Path) -> None:
    context = _context(stack, tmp_path)
    _grow(stack, 1000)
    # Keys up to here are in the table by the time the reserve is taken (the partitions
    # land unevenly: a newer key may be in while an older one is still on its way).
    settled = _max_key(stack)
    _grow(stack, 1000)
    reserve = take_reserve(context, "reserve", stack.table)
    # The copy is the table at one snapshot: every key once, each one in the table (which
    # only grows until the loss below), the files' rows adding up to the manifest's.
    copied = pa.concat_tables(pq.read_table(p, columns=["order_id"]) for p in reserve.paths())
    assert copied.num_rows == reserve.rows > 0
    assert pc.count_distinct(copied.column("order_id")).as_py() == reserve.rows
    engine = stack.query_engine()
    try:
        engine.register_arrow("reserve_keys", copied)
        absent = engine.rows(
            f"SELECT count(*) FROM reserve_keys r ANTI JOIN {stack.table} t USING (order_id)",
            tables=(stack.table,),
        )[0][0]
    finally:
        engine.close()
    assert absent == 0
    assert load_reserve(stack.paths.reserves, "reserve") == reserve
    assert reserve.key_min is not None and reserve.key_max is not None

    # The loss: the newer half of the keys settled before the reserve, deleted from the
    # table (the sink held meanwhile, so the delete's commit does not race its appends).
    lo, hi = reserve.key_min + (settled - reserve.key_min) // 2, settled
    stack.components.pause("sink")
    try:
        lost = _keys_between(stack, lo, hi)
        assert lost > 0
        table = stack.catalog().load_table(stack.table)
        table.delete(
            And(GreaterThanOrEqual(term="order_id", value=lo), LessThanOrEqual(term="order_id", value=hi))
        )
    finally:
        stack.components.resume("sink")
    assert _keys_between(stack, lo, hi) == 0
    _grow(stack, 400)  # the sink writes on after the loss

    # The backfill runs while the workload and the sink go on writing.
    result = run_step(BackfillFromReserve(reserve="reserve", workers=4), context)
    assert result.rows == lost, result.detail
    assert result.extra is not None and result.extra["examined_rows"] == reserve.rows
    assert result.extra["workers"] == 4
    assert result.rate_per_s is not None and result.rate_per_s > 0
    assert _keys_between(stack, lo, hi) == lost
    assert not stack.components.get("sink").paused  # held for the commit only

    table = stack.catalog().load_table(stack.table)
    backfilled = table.snapshot_by_id(result.extra["snapshot_id"])  # type: ignore[arg-type]
    assert backfilled is not None and backfilled.summary is not None
    assert backfilled.summary.additional_properties[BACKFILL_PROPERTY] == "reserve"

    _grow(stack, 400)  # the sink resumed after the backfill's commit
    outcome = drain(stack)
    assert outcome.exact, outcome.describe()


def test_after_a_stale_restore_the_sink_skips_what_the_reserve_brought_back(
    stack: StackClient, tmp_path: Path
) -> None:
    """The incident's order: the only backup is older than the reserve. Restored, the table
    records the backup's offsets; the sink, resumed, would read the events after them again.
    The backfill raises the sink's highest event ids to the reserve's, so it drops the
    events whose rows the backfill wrote instead of writing them twice."""
    context = _context(stack, tmp_path)
    _grow(stack, 200)
    stale = take_backup(context, "stale", stack.table)
    _grow(stack, 1000)
    reserve = take_reserve(context, "history", stack.table)
    _grow(stack, 400)

    stack.components.pause("sink")  # as the runbook does around a restore
    try:
        restore_backup(context, "stale")
        table = stack.catalog().load_table(stack.table)
        restored_ids = sink_state(table)[1]
        assert any(
            reserve.sink_max_event_ids[p] > restored_ids.get(p, -1) for p in reserve.sink_max_event_ids
        )
        result = run_step(BackfillFromReserve(reserve="history", workers=3), context)
    finally:
        stack.components.resume("sink")
    assert stale.rows is not None
    assert result.rows == reserve.rows - stale.rows, result.detail  # what the stale table lacked
    assert result.extra is not None
    assert _summary_max_ids(stack, result.extra["snapshot_id"]) == {  # type: ignore[arg-type]
        p: max(reserve.sink_max_event_ids.get(p, -1), restored_ids.get(p, -1))
        for p in {*reserve.sink_max_event_ids, *restored_ids}
    }

    outcome = drain(stack)
    assert outcome.exact, outcome.describe()
