"""Shared helpers for the benchmark scripts (not a test: they print figures)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datadrill.backends.stackd.manager import group_members
from datadrill.config import parse_config
from datadrill.stack.client import StackClient


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


class MemorySampler:
    """Samples the summed RSS of every process in the stack's process group."""

    def __init__(self, pgid: int, every_s: float = 0.25) -> None:
        self.pgid = pgid
        self.every_s = every_s
        self.peak = 0
        self.peak_by_pid: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            total = 0
            for pid in group_members(self.pgid):
                rss = rss_bytes(pid)
                total += rss
                self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0), rss)
            self.peak = max(self.peak, total)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def bench_stack(settings: dict[str, Any]) -> Iterator[StackClient]:
    from datadrill.session import stack_session

    with stack_session(config=parse_config(settings, source="bench"), timeout_s=120) as session:
        yield session.stack


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def now() -> float:
    return time.monotonic()
