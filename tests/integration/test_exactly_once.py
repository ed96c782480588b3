"""SIGKILL the sink mid-batch or the relay between publishing and marking: the table still
holds every source order exactly once."""

from __future__ import annotations

import random
import time

import pytest

from conftest import drain, events, heartbeat, wait_for_event
from datadrill.engine.wait import wait_until
from datadrill.platform.catalog import sink_state
from datadrill.platform.compaction import COMPACTED_FILES_PROPERTY, plan
from datadrill.platform.relay import CRASH_AFTER_PUBLISH
from datadrill.platform.sink import CRASH_BEFORE_COMMIT, EXPIRY_SLACK
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration


def _killed(component: str):  # type: ignore[no-untyped-def]
    return lambda e: (
        e["event"] == "process_exited" and e["component"] == component and e["cause"] == "killed by SIGKILL"
    )


def _restarted(component: str):  # type: ignore[no-untyped-def]
    return lambda e: e["event"] == "process_started" and e["component"] == component and e["restarts"] > 0


def test_sink_killed_between_writing_data_files_and_committing(stack: StackClient) -> None:
    seen = len(events(stack))
    before = heartbeat(stack, "sink")["rows_committed"] if stack.paths.heartbeat("sink").exists() else 0
    stack.paths.crash_point("sink").write_text(CRASH_BEFORE_COMMIT)
    wait_for_event(stack, _killed("sink"), after=seen)
    wait_for_event(stack, _restarted("sink"), after=seen)
    assert not stack.paths.crash_point("sink").exists()  # it fired, once
    # The killed batch left data files that no snapshot references: orphans, not rows.
    result = drain(stack)
    assert result.exact, result.describe()
    assert result.source_orders > before


def test_relay_killed_between_publishing_and_marking(stack: StackClient) -> None:
    seen = len(events(stack))
    stack.paths.crash_point("relay").write_text(CRASH_AFTER_PUBLISH)
    wait_for_event(stack, _killed("relay"), after=seen)
    wait_for_event(stack, _restarted("relay"), after=seen)
    # The restarted relay republished the unmarked batch; the sink must drop it.
    wait_until(
        lambda: heartbeat(stack, "sink")["duplicates_dropped"] > 0,
        timeout=60,
        what="the sink to see the republished batch",
    )
    result = drain(stack)
    assert result.exact, result.describe()


def test_repeated_random_kills_of_relay_and_sink(stack: StackClient) -> None:
    rng = random.Random(7)
    seen = len(events(stack))
    kills = 0
    for round_ in range(6):
        component = ("sink", "relay")[round_ % 2]
        time.sleep(rng.uniform(0.3, 1.2))
        # The component may be mid-restart from the previous round: wait until it runs.
        pid = wait_until(lambda c=component: _try_kill(stack, c), timeout=30, what=f"{component} to run")
        assert pid > 0
        kills += 1

    def exits() -> list[dict[str, object]]:
        return [e for e in events(stack)[seen:] if e["event"] == "process_exited"]

    # The supervisor notices the last kill on its next poll.
    wait_until(lambda: len(exits()) >= kills, timeout=30, what=f"{kills} recorded exits")
    assert all(e["cause"] == "killed by SIGKILL" for e in exits())
    result = drain(stack)
    assert result.exact, result.describe()
    status = stack.status()
    assert status.healthy or _settles(stack)
    restarts = {c["name"]: c["restarts"] for c in stack.status().raw["components"] if "restarts" in c}
    assert restarts["sink"] >= 3 and restarts["relay"] >= 3


def _try_kill(stack: StackClient, component: str) -> int:
    from datadrill.errors import ControlError

    try:
        return stack.components.kill(component)
    except ControlError:
        return 0


def _settles(stack: StackClient) -> bool:
    wait_until(lambda: stack.status().healthy, timeout=30, what="the stack to be healthy again")
    return True


def test_the_sink_keeps_its_tables_snapshots_bounded(stack: StackClient) -> None:
    # Every commit deep-copies the table's metadata, so the sink expires old snapshots once
    # it holds EXPIRY_SLACK more than snapshots_to_keep: the history stays short however
    # long the stack runs, and sink_state still finds the newest offsets.
    keep = stack.config.sink.snapshots_to_keep
    catalog = stack.catalog()

    def sequence() -> int:  # one per commit, kept in the table: it survives a sink restart
        return int(catalog.load_table(stack.table).metadata.last_sequence_number)

    start = sequence()
    wait_until(
        lambda: sequence() >= start + keep + EXPIRY_SLACK + 5,
        timeout=180,
        interval=0.5,
        what="the sink to commit past its snapshot limit",
    )
    table = catalog.load_table(stack.table)
    assert keep <= len(table.snapshots()) <= keep + EXPIRY_SLACK + 1, len(table.snapshots())
    offsets, _ = sink_state(table)
    assert offsets and all(o > 0 for o in offsets.values())


def test_the_sink_compacts_its_small_files_and_keeps_every_row_once(stack: StackClient) -> None:
    # One file per commit would leave thousands on a long-lived stack (every probe and
    # reconciliation opens them all): the sink rewrites its small files into one once it
    # holds compact_min_files of them, in overwrite commits that keep its offsets.
    sink = stack.config.sink
    before = heartbeat(stack, "sink").get("compactions", 0)
    wait_until(
        lambda: heartbeat(stack, "sink").get("compactions", 0) > before,
        timeout=180,
        interval=0.5,
        what="the sink to compact its small files",
    )
    table = stack.catalog().load_table(stack.table)
    files = plan(table, file_rows=sink.compact_file_rows)
    assert files.small is not None
    # The small files are those committed since the last compaction (and during it).
    assert len(files.small) < sink.compact_min_files + 20, (len(files.small), files.large)
    compactions = [
        s for s in table.snapshots() if s.summary and COMPACTED_FILES_PROPERTY in s.summary.additional_properties
    ]
    assert compactions and all(s.summary.operation.value == "overwrite" for s in compactions if s.summary)
    offsets, _ = sink_state(table)
    assert offsets and all(o > 0 for o in offsets.values())
    result = drain(stack)
    assert result.exact, result.describe()
