"""What every unit test shares: no calibration. A run with a production volume calibrates
the projection's cost models first when this machine has none cached
(:mod:`datadrill.engine.calibration`, 10-20 s at 1 M rows), and would cache the figures of a
loaded test machine in the user's cache. Tests of the calibration pass their own
environment and cache directory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_calibration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATADRILL_CALIBRATION", "off")
