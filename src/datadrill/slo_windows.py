"""The shortest burn-rate window generated Prometheus rules use unless told otherwise.

A module of its own so that the command line can show it as ``slo rules --min-window``'s
default without importing the SLO models (every ``datadrill`` command would pay for them).
"""

from __future__ import annotations

# Four scrapes at the drill's 1 s interval: rate() needs two samples in its window.
DEFAULT_MIN_WINDOW_S = 4.0
