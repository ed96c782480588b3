"""What every platform process shares: stop on SIGTERM, die with the stack, beat a heart,
and honour one-shot crash points.

A crash point lets a test SIGKILL a process at an exact place (say, the sink between
writing its data files and committing them). The test arms it by writing the point's
name to ``run/<component>.crash-point``; the process removes the file and kills itself
when it reaches that point, so the restarted process runs on normally.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

from datadrill.paths import StatePaths


class Component:
    """Lifecycle helpers for one platform process."""

    def __init__(self, name: str, paths: StatePaths, *, heartbeat_every_s: float = 0.5) -> None:
        self.name = name
        self.paths = paths
        self.stopping = False
        self._parent = os.getppid()
        self._heartbeat_every = heartbeat_every_s
        self._last_beat = 0.0
        self._crash_file = paths.crash_point(name)
        self.started_mono = time.monotonic()
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def should_run(self) -> bool:
        """False once asked to stop, or once the stack process that started us is gone."""
        if os.getppid() != self._parent:
            # Orphaned: the stack process died without stopping us. Never outlive it.
            self.stopping = True
        return not self.stopping

    def crash_point(self, point: str) -> None:
        """SIGKILL this process here if a test armed ``point`` (once)."""
        try:
            armed = self._crash_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return
        if armed != point:
            return
        self._crash_file.unlink(missing_ok=True)
        os.kill(os.getpid(), signal.SIGKILL)

    def heartbeat(self, stats: dict[str, Any], *, force: bool = False) -> None:
        """Write progress counters for ``stack status`` (at most every heartbeat interval)."""
        now = time.monotonic()
        if not force and now - self._last_beat < self._heartbeat_every:
            return
        self._last_beat = now
        record = {"component": self.name, "pid": os.getpid(), "mono": now, "wall": time.time()}
        record.update(stats)
        _atomic_write_json(self.paths.heartbeat(self.name), record)


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` so readers never see half a file."""
    _atomic_write_json(path, data)


def read_heartbeat(paths: StatePaths, name: str) -> dict[str, Any] | None:
    try:
        data = json.loads(paths.heartbeat(name).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
