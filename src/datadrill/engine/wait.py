"""Waiting for a condition, with a failure message that says what was last seen.

Example::

    wait_until(lambda: stack.is_healthy(), timeout=10, what="stack healthy",
               hint="see .datadrill/logs/stack.log")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from datadrill.clock import Clock, MonotonicClock
from datadrill.errors import WaitTimeout

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    backoff: float = 1.5,
    max_interval: float = 1.0,
    hint: str = "",
    clock: Clock | None = None,
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Exceptions from ``condition`` count as "not yet"; if time runs out, the
    :class:`WaitTimeout` names ``what``, the last value or exception seen and ``hint``,
    and chains the last exception.
    """
    clock = clock or MonotonicClock()
    deadline = clock.monotonic() + timeout
    last_value: object = None
    last_exc: Exception | None = None
    delay = interval
    attempts = 0
    while True:
        attempts += 1
        try:
            value = condition()
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"; it is reported
            last_exc = exc
        else:
            if value:
                return value
            last_value, last_exc = value, None
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            seen = f"last error: {last_exc!r}" if last_exc else f"last value: {last_value!r}"
            message = f"timed out after {timeout:g}s waiting for {what} ({attempts} checks; {seen})"
            if hint:
                message += f"; hint: {hint}"
            raise WaitTimeout(message) from last_exc
        clock.sleep(min(delay, remaining))
        delay = min(delay * backoff, max_interval)
