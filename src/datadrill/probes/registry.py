"""Which SLI kinds have a probe: the built-ins, plugins from the ``datadrill.probes``
entry-point group, and kinds registered in-process with :func:`register_probe`.

An entry point names either a probe factory ``(sli, env) -> Probe`` (a probe class whose
constructor takes the SLI spec and the :class:`~datadrill.probes.base.ProbeEnv` is one);
its SLI kind is the entry point's name. Or it names a :class:`ProbePlugin`, a class (made
with no arguments) or object with ``kind`` and ``build(sli, env) -> Probe``::

    [project.entry-points."datadrill.probes"]
    "acme.disk_free" = "acme_drills.probes:DiskFreeProbe"   # DiskFreeProbe(sli, env)
    acme_replication = "acme_drills.probes:ReplicationProbes"  # has kind and build

Example::

    probe = build_probe(Freshness(max_age_s=30), env)
    factory_for("freshness")             # FreshnessProbe
    register_probe("acme.disk_free", DiskFreeProbe)   # tests and embedders; no entry point
"""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol, runtime_checkable

from datadrill.faults.registry import PluginError
from datadrill.model.slo import SLISpec, spec_kind
from datadrill.probes.base import Probe, ProbeEnv

ENTRY_POINT_GROUP = "datadrill.probes"


class ProbeFactory(Protocol):
    """Makes the probe of one SLI spec."""

    def __call__(self, sli: Any, env: ProbeEnv, /) -> Probe: ...


@runtime_checkable
class ProbePlugin(Protocol):
    """An entry point's alternative to a bare factory: an object naming its SLI kind."""

    @property
    def kind(self) -> str: ...

    def build(self, sli: Any, env: ProbeEnv) -> Probe: ...


_registered: dict[str, ProbeFactory] = {}


def _builtins() -> dict[str, ProbeFactory]:
    from datadrill.model.slo import (
        CanaryLatency,
        ConnectorErrorRate,
        ConnectorHealth,
        ConsumerLag,
        DataIntegrity,
        Freshness,
        QuerySuccess,
        ReplicationLag,
        RestartRate,
    )
    from datadrill.probes import sli

    by_spec: dict[type[Any], ProbeFactory] = {
        Freshness: sli.FreshnessProbe,
        QuerySuccess: sli.QuerySuccessProbe,
        CanaryLatency: sli.CanaryLatencyProbe,
        ConsumerLag: sli.ConsumerLagProbe,
        ConnectorErrorRate: sli.ConnectorErrorRateProbe,
        RestartRate: sli.RestartRateProbe,
        ConnectorHealth: sli.ConnectorHealthProbe,
        DataIntegrity: sli.DataIntegrityProbe,
        ReplicationLag: sli.ReplicationLagProbe,
    }
    return {spec_kind(spec): factory for spec, factory in by_spec.items()}


def _load(entry: Any) -> tuple[str, ProbeFactory]:
    where = f"probe plugin {entry.name!r} ({entry.value})"
    try:
        loaded = entry.load()
    except Exception as exc:
        raise PluginError(f"{where} failed to load: {exc}") from exc
    if hasattr(loaded, "kind") and hasattr(loaded, "build"):
        try:
            plugin = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:
            raise PluginError(f"{where} could not be made with no arguments: {exc}") from exc
        if not isinstance(plugin, ProbePlugin) or not isinstance(plugin.kind, str) or not plugin.kind:
            raise PluginError(f"{where} does not implement ProbePlugin (a non-empty kind, build)")
        return plugin.kind, plugin.build
    if not callable(loaded):
        raise PluginError(
            f"{where} is neither a probe factory (sli, env) -> Probe nor a ProbePlugin (kind, build)"
        )
    factory: ProbeFactory = loaded
    return entry.name, factory


@cache
def discovered() -> dict[str, ProbeFactory]:
    """The built-in probes and the entry points' ones, by SLI kind (loaded once; tests that
    install an entry point call ``discovered.cache_clear()``)."""
    from importlib.metadata import entry_points

    found = _builtins()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        kind, factory = _load(entry)
        if kind in found:
            raise PluginError(f"probe plugin {entry.name!r} ({entry.value}) reuses the SLI kind {kind!r}")
        found[kind] = factory
    return found


def factories() -> dict[str, ProbeFactory]:
    """Every probe factory by SLI kind: built-ins, entry points, :func:`register_probe`."""
    found = dict(discovered())
    for kind, factory in _registered.items():
        if kind in found:
            raise PluginError(f"the probe registered for {kind!r} clashes with an installed plugin's")
        found[kind] = factory
    return found


def kinds() -> frozenset[str]:
    """The SLI kinds a scenario may use."""
    return frozenset(factories())


def factory_for(kind: str) -> ProbeFactory:
    registered = factories()
    if kind not in registered:
        raise PluginError(f"no probe for SLI kind {kind!r}; known kinds: {', '.join(sorted(registered))}")
    return registered[kind]


def register_probe(kind: str, factory: ProbeFactory) -> None:
    """Register ``factory`` for the SLI ``kind`` in this process: for tests and programs
    that embed datadrill. Installed plugins need no call: their entry points are found.

    Example::

        register_probe("acme.disk_free", DiskFreeProbe)
        try:
            ...                      # run a scenario with an SLO on DiskFree(...)
        finally:
            unregister_probe("acme.disk_free")
    """
    if not isinstance(kind, str) or not kind:
        raise PluginError(f"a probe's SLI kind is a non-empty string, not {kind!r}")
    if not callable(factory):
        raise PluginError(f"the probe for {kind!r} must be a factory (sli, env) -> Probe, not {factory!r}")
    if kind in factories():
        raise PluginError(f"the SLI kind {kind!r} already has a probe")
    _registered[kind] = factory


def unregister_probe(kind: str) -> None:
    """Forget a probe :func:`register_probe` registered; idempotent."""
    _registered.pop(kind, None)


def build_probe(sli: SLISpec, env: ProbeEnv) -> Probe:
    """The probe for an SLI spec, found by its kind. Every SLI kind has exactly one probe."""
    return factory_for(sli.kind)(sli, env)
