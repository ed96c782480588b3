"""Clocks. Durations always come from a monotonic clock; wall time is only a label.

``time.monotonic_ns`` is CLOCK_MONOTONIC on Linux, shared by every process on the
machine, so stamps taken in the relay, the sink and the harness can be subtracted.

Example::

    clock = MonotonicClock()
    start = clock.monotonic()
    ...
    elapsed = clock.monotonic() - start
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What timing code needs; tests pass a fake."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch, for labels only."""
        ...

    def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (or when something sleeps on it)."""

    def __init__(self, start: float = 1000.0, wall_offset: float = 1.7e9) -> None:
        self._now = start
        self._wall_offset = wall_offset

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        self._now += seconds
