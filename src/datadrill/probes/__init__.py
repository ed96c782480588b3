"""SLI probes: one measurement of one SLI, on demand. Probes are found by SLI kind in
:mod:`datadrill.probes.registry` (built-ins and ``datadrill.probes`` entry points).

Example::

    env = ProbeEnv.from_stack(stack, clock)
    probe = build_probe(Freshness(max_age_s=30), env)
    sample = probe.measure()      # Sample(value=1.8, good=True, error=None)
"""

from datadrill.probes.base import Probe, ProbeEnv, Sample
from datadrill.probes.registry import build_probe, register_probe, unregister_probe

__all__ = ["Probe", "ProbeEnv", "Sample", "build_probe", "register_probe", "unregister_probe"]
