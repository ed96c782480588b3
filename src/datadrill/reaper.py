"""The reaper: reverts the faults of a run whose lease expired, run by the stack process in
a child process (``python -m datadrill.reaper``) when a runner stops renewing its lease.

It reverts, from the fault ledger, every outstanding fault filed under the run id, marks
each ``reverted by lease expiry`` in the ledger, and writes what it did into the dead run's
journal (a ``lease_expired`` event and a ``fault_reverted`` per fault the journal knew), so
``datadrill report`` on that journal says which faults the stack reverted. Its last line of
stdout is a JSON list of what it did, which the stack process logs as an event.

Example::

    python -m datadrill.reaper --state-dir .datadrill --run-id 3f2a9c1b0d4e --run-dir reports/x
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from datadrill import events as ev
from datadrill.clock import MonotonicClock
from datadrill.engine.journal import Journal
from datadrill.faults.ledger import CleanupResult, FaultLedger, cleanup
from datadrill.stack.client import StackClient

log = logging.getLogger("datadrill.reaper")

LEASE_NOTE = "reverted by lease expiry"


def reap(state_dir: Path, run_id: str, *, run_dir: str = "", lease_s: float | None = None) -> list[CleanupResult]:
    stack = StackClient.attach(state_dir)
    ledger = FaultLedger.for_stack(state_dir)
    results = cleanup(stack, ledger=ledger, run_id=run_id, note_prefix=LEASE_NOTE)
    run_dirs = {r.run_dir for r in results if r.run_dir} | ({run_dir} if run_dir else set())
    for directory in sorted(run_dirs):
        _write_journal(Path(directory) / "journal.jsonl", run_id, lease_s, results)
    return results


def _write_journal(path: Path, run_id: str, lease_s: float | None, results: list[CleanupResult]) -> None:
    if not path.exists():
        return
    journal = Journal.reopen(path, clock=MonotonicClock())
    try:
        journal.record(
            ev.LeaseExpired(
                run_id=run_id,
                lease_s=lease_s,
                reverted=sum(1 for r in results if r.ok),
                failed=sum(1 for r in results if not r.ok),
            )
        )
        for result in results:
            if result.journal_id is None:
                continue  # not a scheduled fault (the workload rate, a runbook's pause)
            note = f"{LEASE_NOTE}: {result.note}" if result.ok else f"NOT reverted by lease expiry: {result.note}"
            journal.record(
                ev.FaultReverted(
                    fault_id=result.journal_id, kind=result.kind, description=result.description, note=note
                )
            )
    finally:
        journal.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datadrill-reaper")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--run-dir", default="")
    parser.add_argument("--lease-s", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    results = reap(args.state_dir, args.run_id, run_dir=args.run_dir, lease_s=args.lease_s)
    for result in results:
        log.info("%s %s: %s — %s", "reverted" if result.ok else "FAILED", result.kind, result.description, result.note)
    print(
        json.dumps(
            [{"kind": r.kind, "description": r.description, "note": r.note, "ok": r.ok} for r in results]
        )
    )
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
