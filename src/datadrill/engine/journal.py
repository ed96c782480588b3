"""The run journal: append-only JSON lines, flushed and fsync'd per event.

Every event carries ``t`` (seconds since the run started, monotonic clock), ``mono`` and a
``wall`` label. Reports are derived from the journal alone, so a report can be regenerated
later, even from the journal of a runner that was killed mid-run.

Example::

    journal = Journal.create(run_dir / "journal.jsonl", clock=MonotonicClock())
    journal.record("fault_injected", kind="metadata.catalog_entry", description="...")
    events = read_journal(run_dir / "journal.jsonl")
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from datadrill.engine.clock import Clock
from datadrill.errors import ConfigError


def wall_label(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")


class Journal:
    def __init__(self, path: Path, handle: IO[str], *, clock: Clock, start_mono: float) -> None:
        self.path = path
        self._handle = handle
        self._clock = clock
        self.start_mono = start_mono
        self._seq = 0
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path, *, clock: Clock) -> Journal:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8")
        return cls(path, handle, clock=clock, start_mono=clock.monotonic())

    def now(self) -> float:
        """Seconds since the run started."""
        return self._clock.monotonic() - self.start_mono

    def record(self, type_: str, **fields: Any) -> dict[str, Any]:
        mono = self._clock.monotonic()
        with self._lock:
            self._seq += 1
            event = {
                "seq": self._seq,
                "type": type_,
                "t": round(mono - self.start_mono, 6),
                "mono": mono,
                "wall": wall_label(self._clock.wall()),
                **fields,
            }
            self._handle.write(json.dumps(event, default=str) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        return event

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every complete event in the journal. A torn last line (the writer was killed
    mid-write) is ignored; anything else malformed is an error naming the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(str(path), "(file)", str(path), "no such journal file") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "(file)", str(path), "is a directory; pass its journal.jsonl") from None
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ConfigError(str(path), f"line {number}", line[:80], "not a JSON journal event") from None
        if not isinstance(event, dict) or "type" not in event or "t" not in event:
            raise ConfigError(str(path), f"line {number}", line[:80], "not a datadrill journal event")
        events.append(event)
    return events
