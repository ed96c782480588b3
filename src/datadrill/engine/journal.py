"""The run journal: typed events (:mod:`datadrill.events`), appended as JSON lines,
flushed and fsync'd per event (:mod:`datadrill.jsonl`).

The journal stamps every event with ``seq``, ``t`` (seconds since the run started,
monotonic clock), ``mono`` and a ``wall`` label. Reports are derived from the journal alone,
so a report can be regenerated later, even from the journal of a runner that was killed.

Example::

    journal = Journal.create(run_dir / "journal.jsonl", clock=MonotonicClock())
    journal.record(FaultInjected(fault_id=1, kind="metadata.catalog_entry", description="..."))
    events = read_events(run_dir / "journal.jsonl")
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from datadrill.clock import Clock
from datadrill.events import EventBase, event_record, read_events
from datadrill.jsonl import JsonlAppender

E = TypeVar("E", bound=EventBase)


def wall_label(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


class Journal:
    def __init__(self, path: Path, out: JsonlAppender, *, clock: Clock, start_mono: float) -> None:
        self.path = path
        # Told of every event once it is written (the live view's rolling log).
        self.listener: Callable[[EventBase], None] | None = None
        self._out = out
        self._clock = clock
        self.start_mono = start_mono
        self._seq = 0
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, *, clock: Clock) -> Journal:
        return cls(path, JsonlAppender(path, default=str), clock=clock, start_mono=clock.monotonic())

    @classmethod
    def reopen(cls, path: Path, *, clock: Clock) -> Journal:
        """Append to the journal of a run that died (the stack's reaper does). Times go on
        from the run's own start: the monotonic clock is the machine's, shared by every
        process, and the run's first event recorded its reading."""
        events = read_events(path)
        first = events[0] if events else None
        start = first.mono - first.t if first is not None and first.mono is not None else clock.monotonic()
        journal = cls(path, JsonlAppender(path, default=str), clock=clock, start_mono=start)
        journal._seq = max((e.seq for e in events), default=0)
        return journal

    def now(self) -> float:
        """Seconds since the run started."""
        return self._clock.monotonic() - self.start_mono

    def record(self, event: E) -> E:
        """Stamp ``event`` and write it durably; returns the stamped event."""
        with self._lock:
            # Stamped under the lock: numbers and times increase together, line by line.
            mono = self._clock.monotonic()
            self._seq += 1
            stamped = event.model_copy(
                update={
                    "seq": self._seq,
                    "t": round(mono - self.start_mono, 6),
                    "mono": mono,
                    "wall": wall_label(self._clock.wall()),
                }
            )
            self._out.append(event_record(stamped))
        if self.listener is not None:
            self.listener(stamped)
        return stamped

    def close(self) -> None:
        self._out.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every event in the journal as a plain dict (its journal line), validated like
    :func:`~datadrill.events.read_events`: for scripts and tests that look at the lines."""
    return [event_record(event) for event in read_events(path)]
