"""`make demo`: a short game day on the embedded stack.

Starts a stack in .datadrill-demo/, lets orders flow, SIGKILLs the sink between writing
its data files and committing them and the relay between publishing and marking, waits
for the supervisor to restart both, drains the pipeline and checks that dwh.orders holds
every source order exactly once. Stops the stack at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console

from datadrill.backends.stackd.manager import stack_down
from datadrill.config import parse_config
from datadrill.engine.wait import wait_until
from datadrill.integrity.exactly_once import check_exactly_once
from datadrill.paths import StatePaths
from datadrill.platform.relay import CRASH_AFTER_PUBLISH
from datadrill.platform.sink import CRASH_BEFORE_COMMIT
from datadrill.platform.supervisor import EventLog
from datadrill.session import stack_session
from datadrill.stack.client import StackClient

console = Console()


def main() -> int:
    paths = StatePaths(Path(".datadrill-demo"))
    stack_down(paths)  # a previous demo that was interrupted leaves nothing behind
    config = parse_config({"workload": {"rate": 2000, "canary_interval_s": 0.5}}, source="demo")
    started = time.monotonic()
    with stack_session(config=config, start_in=paths.root) as session:
        stack = session.stack
        console.print(f"stack healthy in {time.monotonic() - started:.2f}s — kafka {stack.bootstrap_servers}")
        result = _game_day(stack)
    console.print("stack stopped; state and logs kept in .datadrill-demo/")
    return result


def _game_day(stack: StackClient) -> int:
    events = EventLog(stack.paths.events_file)
    time.sleep(3)
    for component, point in (("sink", CRASH_BEFORE_COMMIT), ("relay", CRASH_AFTER_PUBLISH)):
        seen = len(events.read())
        stack.paths.crash_point(component).write_text(point)
        t0 = time.monotonic()
        exit_event = wait_until(
            lambda c=component, n=seen: next(
                (e for e in events.read()[n:] if e["event"] == "process_exited" and e["component"] == c),
                None,
            ),
            timeout=60,
            what=f"{component} to crash",
        )
        wait_until(
            lambda c=component, n=seen: next(
                (e for e in events.read()[n:] if e["event"] == "process_started" and e["component"] == c),
                None,
            ),
            timeout=60,
            what=f"{component} to restart",
        )
        console.print(
            f"fault: {component} {exit_event['cause']} at '{point}'; "
            f"restarted after {time.monotonic() - t0:.2f}s"
        )
        time.sleep(2)
    console.print("draining the pipeline (workload paused)…")
    stack.workload.set(rate=0)
    with stack.source() as db:
        engine = stack.query_engine()
        wait_until(
            lambda: (
                db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
                and check_exactly_once(db, engine).exact
            ),
            timeout=60,
            what="exactly-once after drain",
            hint="see .datadrill-demo/logs/sink.log",
        )
        result = check_exactly_once(db, engine)
        engine.close()
    sink = {c["name"]: c for c in stack.status().raw["components"]}["sink"]
    console.print(f"integrity: {result.describe()}")
    console.print(f"sink dropped {sink['stats'].get('duplicates_dropped', 0)} republished duplicates")
    console.print("[green]exactly once[/green]" if result.exact else "[red]NOT exactly once[/red]")
    return 0 if result.exact else 1


if __name__ == "__main__":
    sys.exit(main())
