"""Unit tests for wait_until, on a fake clock (no real sleeping)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datadrill.clock import FakeClock
from datadrill.engine.wait import wait_until
from datadrill.errors import DrillError, WaitTimeout

START = 1000.0


class RecordingClock(FakeClock):
    """A FakeClock that remembers every sleep."""

    def __init__(self) -> None:
        super().__init__(start=START)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


def _sequence(*outcomes: Any) -> Callable[[], Any]:
    """A condition that yields the outcomes in order (exceptions are raised), then repeats the last."""
    items: Iterator[Any] = iter(outcomes)
    last: list[Any] = []

    def condition() -> Any:
        with contextlib.suppress(StopIteration):
            last[:] = [next(items)]
        outcome = last[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return condition


def test_returns_the_first_truthy_value_without_sleeping() -> None:
    clock = RecordingClock()
    assert wait_until(lambda: {"ready": 1}, timeout=5, what="x", clock=clock) == {"ready": 1}
    assert clock.sleeps == []


def test_returns_the_first_truthy_value_after_falsy_ones() -> None:
    clock = RecordingClock()
    result = wait_until(_sequence(0, "", [], None, 42, 43), timeout=10, what="x", clock=clock)
    assert result == 42
    assert len(clock.sleeps) == 4


def test_exceptions_count_as_not_yet() -> None:
    clock = RecordingClock()
    condition = _sequence(ConnectionError("refused"), KeyError("k"), "ok")
    assert wait_until(condition, timeout=10, what="x", clock=clock) == "ok"
    assert len(clock.sleeps) == 2


def test_base_exceptions_are_not_swallowed() -> None:
    clock = RecordingClock()
    with pytest.raises(KeyboardInterrupt):
        wait_until(_sequence(KeyboardInterrupt()), timeout=10, what="x", clock=clock)
    assert clock.sleeps == []


def test_timeout_names_what_last_value_and_hint() -> None:
    clock = RecordingClock()
    with pytest.raises(WaitTimeout) as info:
        wait_until(
            _sequence(0, None, "", []),
            timeout=1.0,
            what="sink caught up",
            hint="see logs/sink.log",
            clock=clock,
        )
    message = str(info.value)
    assert "sink caught up" in message
    assert "timed out after 1s" in message
    assert "last value: []" in message
    assert "hint: see logs/sink.log" in message
    assert info.value.__cause__ is None


def test_timeout_reports_the_last_value_not_the_first() -> None:
    with pytest.raises(WaitTimeout) as info:
        wait_until(_sequence(None, "", 0), timeout=5, what="x", clock=RecordingClock())
    assert "last value: 0" in str(info.value)
    assert "None" not in str(info.value)


def test_timeout_reports_and_chains_the_last_exception() -> None:
    clock = RecordingClock()
    first = ValueError("first")
    last = ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(WaitTimeout) as info:
        wait_until(_sequence(first, last), timeout=2, what="broker up", hint="is it running?", clock=clock)
    message = str(info.value)
    assert "broker up" in message
    assert f"last error: {last!r}" in message
    assert "first" not in message
    assert "hint: is it running?" in message
    assert info.value.__cause__ is last


def test_a_falsy_value_after_an_exception_clears_the_exception() -> None:
    clock = RecordingClock()
    with pytest.raises(WaitTimeout) as info:
        wait_until(_sequence(RuntimeError("boom"), None), timeout=2, what="x", clock=clock)
    assert "last value: None" in str(info.value)
    assert "boom" not in str(info.value)
    assert info.value.__cause__ is None


def test_no_hint_means_no_hint_text() -> None:
    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda: False, timeout=0.1, what="x", clock=RecordingClock())
    assert "hint" not in str(info.value)


def test_zero_timeout_checks_exactly_once() -> None:
    calls = []
    clock = RecordingClock()
    with pytest.raises(WaitTimeout, match=r"\(1 checks;"):
        wait_until(lambda: calls.append(1), timeout=0, what="x", clock=clock)
    assert calls == [1]
    assert clock.sleeps == []


def test_wait_timeout_is_a_drill_error() -> None:
    assert issubclass(WaitTimeout, DrillError)


def test_backoff_grows_and_is_capped() -> None:
    clock = RecordingClock()
    with pytest.raises(WaitTimeout):
        wait_until(lambda: 0, timeout=10, what="x", interval=0.1, backoff=2.0, max_interval=0.5, clock=clock)
    assert clock.sleeps[:4] == pytest.approx([0.1, 0.2, 0.4, 0.5])
    assert max(clock.sleeps) == pytest.approx(0.5)
    assert all(s <= 0.5 + 1e-12 for s in clock.sleeps)


def test_last_sleep_lands_on_the_deadline() -> None:
    clock = RecordingClock()
    with pytest.raises(WaitTimeout, match=r"\(\d+ checks;"):
        wait_until(lambda: 0, timeout=1.0, what="x", interval=0.3, backoff=1.0, clock=clock)
    # 0.3 + 0.3 + 0.3 + 0.1: the last sleep is cut short to the deadline
    assert clock.sleeps == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert clock.monotonic() == pytest.approx(START + 1.0)


@settings(max_examples=100, deadline=None)
@given(
    timeout=st.floats(0, 30, allow_nan=False),
    interval=st.floats(0.01, 5, allow_nan=False),
    backoff=st.floats(1.0, 4, allow_nan=False),
    max_interval=st.floats(0.01, 5, allow_nan=False),
)
def test_backoff_never_sleeps_past_the_deadline(
    timeout: float, interval: float, backoff: float, max_interval: float
) -> None:
    clock = RecordingClock()
    calls = []
    with pytest.raises(WaitTimeout):
        wait_until(
            lambda: calls.append(clock.monotonic()),
            timeout=timeout,
            what="never",
            interval=interval,
            backoff=backoff,
            max_interval=max_interval,
            clock=clock,
        )
    deadline = START + timeout
    assert clock.monotonic() <= deadline + 1e-9
    assert clock.monotonic() >= deadline - 1e-9  # it did wait the whole timeout
    assert all(s >= 0 for s in clock.sleeps)
    assert all(at <= deadline + 1e-9 for at in calls)
    assert len(calls) == len(clock.sleeps) + 1  # one check after the last sleep
