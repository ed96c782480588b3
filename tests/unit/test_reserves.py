"""Reserve copies and the backfill from them: manifest, range splitting, the anti-join,
spec validation, and the step itself on a real Iceberg catalog in process (no stack)."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_stack import FakeStack
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual

from datadrill.cli.dry_run import schedule_line
from datadrill.clock import FakeClock, MonotonicClock
from datadrill.engine.dry_run import plan
from datadrill.engine.loader import load_scenario
from datadrill.engine.runner import Runner
from datadrill.errors import ConfigError
from datadrill.events import ReserveTaken, read_events
from datadrill.faults.base import DrillContext
from datadrill.integrity.result import ReconcileResult
from datadrill.model import (
    SLO,
    BackfillFromReserve,
    DeleteCatalogEntry,
    Expectations,
    PauseComponent,
    QuerySuccess,
    ResumeComponent,
    RollbackProducer,
    Runbook,
    Scenario,
    SchemaDrift,
    SteadyState,
    TakeReserveCopy,
    ThresholdAlert,
)
from datadrill.model.report import Verdict
from datadrill.platform.catalog import ORDERS_ARROW_SCHEMA, sink_state
from datadrill.platform.sink import snapshot_properties
from datadrill.recovery.backfill import (
    BACKFILL_PROPERTY,
    BackfillFailed,
    measure_backfill_from_reserve,
    missing_rows,
    run_backfill_from_reserve,
    split_range,
)
from datadrill.recovery.registry import implementation_for
from datadrill.recovery.reserves import (
    MANIFEST,
    ReserveMissing,
    load_reserve,
    parse_manifest,
    take_reserve,
    write_parts,
)

# -- splitting the key range ------------------------------------------------------------


def test_split_range_examples() -> None:
    assert split_range(1, 10, 3) == [(1, 4), (5, 7), (8, 10)]
    assert split_range(5, 5, 4) == [(5, 5)]
    assert split_range(1, 3, 8) == [(1, 1), (2, 2), (3, 3)]
    assert split_range(4, 3, 2) == []


@given(st.integers(-1000, 1000), st.integers(0, 5000), st.integers(1, 64))
def test_split_range_covers_every_key_once_in_even_parts(lo: int, width: int, parts: int) -> None:
    hi = lo + width
    ranges = split_range(lo, hi, parts)
    assert len(ranges) == min(parts, width + 1)
    assert ranges[0][0] == lo and ranges[-1][1] == hi
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert start == end + 1  # contiguous: no key twice, none left out
    widths = [b - a + 1 for a, b in ranges]
    assert min(widths) >= 1 and max(widths) - min(widths) <= 1


# -- the anti-join -----------------------------------------------------------------------


def test_missing_rows_keeps_the_rows_whose_key_the_table_lacks() -> None:
    reserve = pa.table({"k": pa.array([1, 2, 3, 4, 5], pa.int64()), "v": ["a", "b", "c", "d", "e"]})
    rows = missing_rows(reserve, pa.chunked_array([[2, 4], [9]], pa.int64()), "k")
    assert rows.to_pydict() == {"k": [1, 3, 5], "v": ["a", "c", "e"]}


def test_missing_rows_writes_a_key_once_and_skips_null_keys() -> None:
    reserve = pa.table({"k": pa.array([7, 3, 7, None, 3, 8], pa.int64()), "v": list("abcdef")})
    rows = missing_rows(reserve, pa.array([8], pa.int32()), "k")
    assert rows.to_pydict() == {"k": [7, 3], "v": ["a", "b"]}  # the first of each, in order


def test_missing_rows_against_an_empty_table_is_the_reserve() -> None:
    reserve = pa.table({"k": pa.array([3, 1, 2], pa.int64())})
    assert missing_rows(reserve, pa.array([], pa.int64()), "k").equals(reserve)
    assert missing_rows(reserve, pa.array([1, 2, 3], pa.int64()), "k").num_rows == 0


# -- writing a reserve and its manifest ----------------------------------------------------


def _orders(keys: list[int], *, partition: int = 0) -> pa.Table:
    n = len(keys)
    return pa.Table.from_pydict(
        {
            "order_id": keys,
            "customer_id": [k % 7 for k in keys],
            "amount_cents": [100 + k for k in keys],
            "currency": ["EUR"] * n,
            "status": ["new"] * n,
            "created_at": [1_700_000_000_000_000 + k for k in keys],
            "is_canary": [False] * n,
            "event_id": keys,
            "kafka_partition": [partition] * n,
            "kafka_offset": keys,
            "ingested_at": [1_700_000_000_000_000 + k for k in keys],
        },
        schema=ORDERS_ARROW_SCHEMA,
    )


def test_write_parts_cuts_files_and_row_groups_and_keeps_key_ranges(tmp_path: Path) -> None:
    rows = _orders(list(range(1, 11)))
    batches = rows.to_batches(max_chunksize=3)  # batch edges unlike the file and group edges
    files = write_parts(batches, rows.schema, tmp_path, key="order_id", file_rows=4, row_group_rows=2)
    assert [(f.path, f.rows, f.key_min, f.key_max) for f in files] == [
        ("part-00000.parquet", 4, 1, 4),
        ("part-00001.parquet", 4, 5, 8),
        ("part-00002.parquet", 2, 9, 10),
    ]
    assert [pq.ParquetFile(tmp_path / f.path).num_row_groups for f in files] == [2, 2, 1]
    back = pa.concat_tables(pq.read_table(tmp_path / f.path) for f in files)
    assert back.column("order_id").to_pylist() == list(range(1, 11))


def test_write_parts_needs_an_integer_key(tmp_path: Path) -> None:
    rows = pa.table({"id": ["a"], "v": [1]})
    with pytest.raises(ConfigError, match="an integer column"):
        write_parts(rows.to_batches(), rows.schema, tmp_path, key="id")
    with pytest.raises(ConfigError, match="key column 'order_id'"):
        write_parts(rows.to_batches(), rows.schema, tmp_path, key="order_id")


@pytest.fixture
def context(tmp_path: Path) -> DrillContext:
    stack = FakeStack(tmp_path / "state").with_catalog(commits=0)
    return DrillContext(stack=stack, run_dir=tmp_path / "run", clock=MonotonicClock(), run_id="run-1")  # type: ignore[arg-type]


def _append(context: DrillContext, rows: pa.Table, offsets: dict[int, int], max_ids: dict[int, int]) -> None:
    table = context.stack.catalog().load_table(context.stack.table)
    table.append(rows, snapshot_properties=snapshot_properties(offsets, max_ids))


def _keys(context: DrillContext) -> list[int]:
    table = context.stack.catalog().load_table(context.stack.table)
    return sorted(table.scan(selected_fields=("order_id",)).to_arrow().column("order_id").to_pylist())


def test_a_reserve_holds_the_rows_at_a_snapshot_with_its_manifest(context: DrillContext) -> None:
    _append(context, _orders(list(range(1, 301))), {0: 300}, {0: 300})
    reserve = take_reserve(context, "reserve", "dwh.orders", file_rows=128, row_group_rows=64)
    table = context.stack.catalog().load_table("dwh.orders")
    assert reserve.snapshot_id == table.current_snapshot().snapshot_id  # type: ignore[union-attr]
    directory = context.stack.paths.reserves / "reserve"
    assert reserve.directory == directory and reserve.relative_path == "reserves/reserve"
    # Outside the catalog and the warehouse: it outlives both.
    assert not directory.is_relative_to(context.stack.paths.warehouse)
    manifest = json.loads((directory / MANIFEST).read_text())
    assert set(manifest) == {
        "format", "name", "table", "snapshot_id", "taken_at", "rows", "key_column", "key_range",
        "files", "schema", "sink_state", "run_id", "datadrill_version",
    }  # fmt: skip
    assert manifest["rows"] == 300 and manifest["key_range"] == {"min": 1, "max": 300}
    assert manifest["key_column"] == "order_id" and manifest["table"] == "dwh.orders"
    assert [f["rows"] for f in manifest["files"]] == [128, 128, 44]
    assert manifest["sink_state"] == {"offsets": {"0": 300}, "max_event_ids": {"0": 300}}
    assert manifest["run_id"] == "run-1"
    assert [c["name"] for c in manifest["schema"]] == ORDERS_ARROW_SCHEMA.names
    assert manifest["taken_at"].endswith("+00:00")
    assert load_reserve(context.stack.paths.reserves, "reserve") == reserve
    copied = pa.concat_tables(pq.read_table(p) for p in reserve.paths())
    assert sorted(copied.column("order_id").to_pylist()) == list(range(1, 301))
    # Taken again under the same name: replaced whole, nothing half-written left beside it.
    _append(context, _orders([301]), {0: 301}, {0: 301})
    assert take_reserve(context, "reserve", "dwh.orders").rows == 301
    assert sorted(p.name for p in context.stack.paths.reserves.iterdir()) == ["reserve"]


def test_a_malformed_manifest_is_named_by_file_and_field(context: DrillContext) -> None:
    _append(context, _orders([1, 2]), {0: 2}, {0: 2})
    reserve = take_reserve(context, "reserve", "dwh.orders")
    data = reserve.manifest()
    data["files"][0]["rows"] = "many"
    with pytest.raises(ConfigError, match=r"m\.json files\[0\]: rows = 'many' is invalid: a int"):
        parse_manifest(data, reserve.directory, "m.json")
    with pytest.raises(ConfigError, match="format = 9"):
        parse_manifest({**reserve.manifest(), "format": 9}, reserve.directory, "m.json")
    (reserve.directory / MANIFEST).write_text("{not json")
    with pytest.raises(ConfigError, match=r"manifest\.json: line 1"):
        load_reserve(context.stack.paths.reserves, "reserve")


def test_a_reserve_never_taken_or_lost_is_one_clear_line(context: DrillContext) -> None:
    with pytest.raises(ReserveMissing, match=r"no reserve copy named 'old'.*reserves there: none") as info:
        load_reserve(context.stack.paths.reserves, "old")
    assert "\n" not in str(info.value)
    _append(context, _orders([1, 2]), {0: 2}, {0: 2})
    reserve = take_reserve(context, "reserve", "dwh.orders")
    with pytest.raises(ReserveMissing, match="reserves there: reserve"):
        load_reserve(context.stack.paths.reserves, "old")
    reserve.paths()[0].unlink()
    with pytest.raises(ReserveMissing, match="lost 1 of its 1 files"):
        load_reserve(context.stack.paths.reserves, "reserve")


# -- the step ----------------------------------------------------------------------------


def test_backfill_loads_what_the_table_lacks_once_and_keeps_the_sink_state(context: DrillContext) -> None:
    _append(context, _orders(list(range(1, 201))), {0: 200}, {0: 200})
    take_reserve(context, "reserve", "dwh.orders", file_rows=64)
    table = context.stack.catalog().load_table("dwh.orders")
    table.delete(
        And(GreaterThanOrEqual(term="order_id", value=51), LessThanOrEqual(term="order_id", value=120))
    )
    # The sink goes on writing after the loss: newer rows, newer state.
    _append(context, _orders(list(range(201, 231))), {0: 230}, {0: 230})
    assert len(_keys(context)) == 160

    result = implementation_for("backfill_from_reserve")(BackfillFromReserve(workers=3), context)

    assert _keys(context) == list(range(1, 231))  # every key once
    assert result.rows == 70 and result.rate_per_s is not None and result.rate_per_s > 0
    assert result.extra is not None and result.extra["examined_rows"] == 200
    assert result.extra["already_there"] == 130 and result.extra["workers"] == 3
    assert "70 rows backfilled into dwh.orders from reserve 'reserve'" in result.detail
    table = context.stack.catalog().load_table("dwh.orders")
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None and summary.additional_properties[BACKFILL_PROPERTY] == "reserve"
    assert sink_state(table) == ({0: 230}, {0: 230})  # the newer state, not the reserve's
    # The sink was held for the commit, through the ledger, and is back.
    calls = context.stack.calls  # type: ignore[attr-defined]
    assert ("connect.pause", "sink") in calls and ("connect.resume", "sink") in calls
    assert not context.stack.components.get("sink").paused

    again = run_backfill_from_reserve(BackfillFromReserve(workers=2), context)
    assert again.rows == 0 and again.detail.startswith("nothing to backfill")
    assert _keys(context) == list(range(1, 231))


def test_a_worker_whose_range_falls_between_the_reserves_files_finds_nothing(context: DrillContext) -> None:
    # Keys 1..10 and 1,001..1,010 in two files: 4 workers split 1..1,010, and the middle
    # ranges touch no file.
    _append(context, _orders([*range(1, 11), *range(1_001, 1_011)]), {0: 20}, {0: 1_010})
    take_reserve(context, "gappy", "dwh.orders", file_rows=10)
    context.stack.catalog().load_table("dwh.orders").delete(LessThanOrEqual(term="order_id", value=5))
    result = run_backfill_from_reserve(BackfillFromReserve(reserve="gappy", workers=4), context)
    assert result.rows == 5 and result.extra is not None and result.extra["examined_rows"] == 20
    assert _keys(context) == [*range(1, 11), *range(1_001, 1_011)]


def test_backfill_after_a_stale_restore_raises_the_sinks_event_ids(context: DrillContext) -> None:
    _append(context, _orders(list(range(1, 51)), partition=0), {0: 50, 1: 0}, {0: 50})
    stale = context.stack.catalog().load_table("dwh.orders").current_snapshot()
    assert stale is not None
    _append(context, _orders(list(range(51, 101)), partition=1), {0: 50, 1: 50}, {0: 50, 1: 100})
    take_reserve(context, "reserve", "dwh.orders")
    table = context.stack.catalog().load_table("dwh.orders")
    table.manage_snapshots().rollback_to_snapshot(stale.snapshot_id).commit()  # the stale backup
    result = run_backfill_from_reserve(BackfillFromReserve(workers=4), context)
    assert result.rows == 50 and _keys(context) == list(range(1, 101))
    # The sink, resuming at partition 1's old offset, drops the events the reserve brought back.
    offsets, max_ids = sink_state(context.stack.catalog().load_table("dwh.orders"))
    assert offsets == {0: 50, 1: 0} and max_ids == {0: 50, 1: 100}
    assert result.extra is not None and result.extra["advanced_partitions"] == [1]


def test_measuring_a_backfill_changes_nothing(context: DrillContext) -> None:
    _append(context, _orders(list(range(1, 101))), {0: 100}, {0: 100})
    take_reserve(context, "reserve", "dwh.orders")
    table = context.stack.catalog().load_table("dwh.orders")
    table.delete(LessThanOrEqual(term="order_id", value=40))
    before = context.stack.catalog().load_table("dwh.orders").current_snapshot()
    result = measure_backfill_from_reserve(BackfillFromReserve(workers=2), context)
    assert result.rows == 40 and result.detail.startswith("measured: 40 rows")
    after = context.stack.catalog().load_table("dwh.orders").current_snapshot()
    assert before is not None and after is not None and after.snapshot_id == before.snapshot_id


def test_backfill_without_its_reserve_or_its_table_fails_in_one_line(context: DrillContext) -> None:
    with pytest.raises(ReserveMissing, match="no reserve copy named 'reserve'"):
        run_backfill_from_reserve(BackfillFromReserve(), context)
    _append(context, _orders([1, 2, 3]), {0: 3}, {0: 3})
    take_reserve(context, "reserve", "dwh.orders")
    context.stack.catalog().drop_table("dwh.orders")
    with pytest.raises(BackfillFailed, match=r"dwh\.orders is not in the catalog: restore or re-register it"):
        run_backfill_from_reserve(BackfillFromReserve(), context)


# -- specs and scenarios ------------------------------------------------------------------


def test_specs_refuse_bad_values() -> None:
    assert TakeReserveCopy(at_s=0).kind == "backup.reserve"
    assert BackfillFromReserve().describe() == "backfill dwh.orders from reserve 'reserve' with 4 workers"
    with pytest.raises(ValidationError, match="name"):
        TakeReserveCopy(at_s=0, name="../elsewhere")
    with pytest.raises(ValidationError, match="workers"):
        BackfillFromReserve(workers=0)
    with pytest.raises(ValidationError, match="reserve"):
        BackfillFromReserve(reserve="")


SCENARIO = """from datadrill.model import *
SCENARIO = Scenario(
    name="reserves",
    slos=(SLO("q", sli=QuerySuccess(), objective=0.999),),
    schedule=({schedule}),
    recovery=Runbook(steps=(BackfillFromReserve(reserve="reserve"),)),
)
"""


def test_a_backfill_from_a_reserve_never_taken_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text(SCENARIO.format(schedule="DeleteCatalogEntry(at_s=1),"))
    with pytest.raises(
        ConfigError, match="backfills from reserve 'reserve' but the schedule takes no reserve copies"
    ):
        load_scenario(path)
    path.write_text(
        SCENARIO.format(schedule="TakeReserveCopy(at_s=0, name='other'), DeleteCatalogEntry(at_s=1),")
    )
    with pytest.raises(ConfigError, match=r"takes \['other'\]"):
        load_scenario(path)
    path.write_text(SCENARIO.format(schedule="TakeReserveCopy(at_s=0), DeleteCatalogEntry(at_s=1),"))
    scenario = load_scenario(path)
    assert scenario.faults == (DeleteCatalogEntry(at_s=1),)  # a reserve copy is not a fault
    path.write_text(SCENARIO.format(schedule="TakeReserveCopy(at_s=0),"))
    with pytest.raises(ConfigError, match="at least one fault"):
        load_scenario(path)


# -- in a run, and in a dry run ----------------------------------------------------------


class _YieldingClock(FakeClock):
    """Fake time for the runner's loop; its sleeps wait for the runbook's thread in real
    time, so the runbook's steps take no fake time (as in test_runner_fake_stack)."""

    def sleep(self, seconds: float) -> None:
        if threading.current_thread() is threading.main_thread():
            for thread in threading.enumerate():
                if thread.name == "recovery":
                    thread.join(timeout=30)
        super().sleep(seconds)


def _exact(context: DrillContext) -> ReconcileResult:
    return ReconcileResult(
        compared_rows=10, source_rows=5, sink_rows=5, duplicates=(), omissions=(), discrepancies=(),
        unexpected=(), elapsed_s=0.01, queries=2, ranges_examined=1,
    )  # fmt: skip


def _drill(**changes: object) -> Scenario:
    fields: dict[str, object] = {
        "name": "reserve-drill",
        "slos": (
            SLO("mart queries succeed", sli=QuerySuccess(), objective=0.99, alert=ThresholdAlert(for_s=1)),
        ),
        "schedule": (
            TakeReserveCopy(at_s=0, name="reserve"),
            SchemaDrift(at_s=2, change="rename", enforcement=False),
        ),
        "recovery": Runbook(
            steps=(
                PauseComponent(component="relay"),
                RollbackProducer(),
                ResumeComponent(component="relay"),
                BackfillFromReserve(reserve="reserve", workers=2),
            ),
            response_delay_s=1,
        ),
        "steady_state": SteadyState(warmup_s=1, timeout_s=10),
        "expectations": Expectations(detect_within_s=5, recover_within_s=30),
        "stabilisation_s": 2.0,
        "max_duration_s": 600.0,
    }
    fields.update(changes)
    return Scenario(**fields)  # type: ignore[arg-type]


def test_a_run_takes_the_reserve_on_schedule_and_journals_it(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack").with_catalog(commits=0)
    context = DrillContext(stack=stack, run_dir=tmp_path, clock=MonotonicClock())  # type: ignore[arg-type]
    _append(context, _orders(list(range(1, 51))), {0: 50}, {0: 50})
    scenario = _drill()
    runner = Runner(scenario, stack=stack, run_dir=tmp_path / "run", clock=_YieldingClock(), verify=_exact)  # type: ignore[arg-type]
    report = runner.run()

    assert report.verdict is Verdict.PASSED, report.reasons
    (taken,) = [e for e in read_events(tmp_path / "run" / "journal.jsonl") if isinstance(e, ReserveTaken)]
    assert (taken.name, taken.table, taken.rows, taken.key_min, taken.key_max) == (
        "reserve",
        "dwh.orders",
        50,
        1,
        50,
    )
    assert taken.path == "reserves/reserve" and taken.files == 1
    assert any(
        "reserve copy 'reserve' of dwh.orders taken: 50 rows" in entry.text for entry in report.timeline
    )
    # A reserve copy is not a fault: the fault starts with the drift.
    assert [f.kind for f in report.faults] == ["contract.schema_drift"]
    (backfill,) = [p for p in report.phases if p.kind == "recovery_step" and "backfill" in p.name]
    assert backfill.ok and backfill.detail is not None and backfill.detail.startswith("nothing to backfill")


def test_a_dry_run_names_the_reserve_it_would_take(tmp_path: Path) -> None:
    stack = FakeStack(tmp_path / "stack").with_catalog(commits=1)
    result = plan(_drill(), stack, FakeClock())  # type: ignore[arg-type]
    assert result.ok, result.problems
    reserve = result.schedule[0]
    assert schedule_line(reserve) == (
        f"t+0 s: take reserve copy 'reserve' of dwh.orders (no snapshot yet) as Parquet into "
        f"{stack.paths.reserves / 'reserve'}"
    )
    assert not stack.paths.reserves.exists()  # planned, not taken
