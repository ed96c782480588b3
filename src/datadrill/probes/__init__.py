"""SLI probes: one measurement of one SLI, on demand.

Example::

    probe = build_probe(Freshness(max_age_s=30), env)
    sample = probe.measure()      # Sample(value=1.8, good=True, error=None)
"""

from datadrill.probes.base import Probe, ProbeEnv, Sample, build_probe

__all__ = ["Probe", "ProbeEnv", "Sample", "build_probe"]
