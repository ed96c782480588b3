"""Which fault kinds exist: the built-ins plus plugins from the ``datadrill.faults``
entry-point group (each entry point names a FaultPlugin instance or class).

Example::

    plugin = plugins()["metadata.catalog_entry"]
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from datadrill.errors import DrillError
from datadrill.faults.base import FaultPlugin

ENTRY_POINT_GROUP = "datadrill.faults"
# What a plugin must have, as the "does not implement FaultPlugin" errors list it.
PROTOCOL_MEMBERS = ("kind", "spec_type", "prepare", "apply", "revert", "exclusive_key", "confirm", "target")


def not_a_plugin(plugin: object) -> str:
    """Why ``plugin`` is no FaultPlugin: the members it needs and those it lacks."""
    missing = [m for m in PROTOCOL_MEMBERS if not hasattr(plugin, m)]
    lacks = f"; it has no {', '.join(missing)}" if missing else ""
    return f"does not implement FaultPlugin ({', '.join(PROTOCOL_MEMBERS)}){lacks}"


class PluginError(DrillError):
    """A fault, probe or step plugin is broken (does not load, or does not follow its protocol)."""


def _builtins() -> list[FaultPlugin]:
    from datadrill.faults import (
        connector,
        contract,
        hang,
        kafka,
        metadata,
        network,
        replication,
        retention,
        source,
        stack_state,
    )

    return [
        metadata.CatalogEntryFault(),
        metadata.MetadataFilesFault(),
        metadata.HideTableFault(),
        metadata.CatalogOutageFault(),
        connector.KillComponentFault(),
        connector.ConnectorTaskFailureFault(),
        connector.LagSpikeFault(),
        hang.HangComponentFault(),
        kafka.BrokerLossFault(),
        kafka.RequestErrorsFault(),
        kafka.BrokerLatencyFault(),
        retention.KafkaRetentionFault(),
        retention.TopicDeletedFault(),
        contract.SchemaDriftFault(),
        network.NetworkToxicFault(),
        replication.DropReplicationSlotFault(),
        replication.ReplicationSlotStallFault(),
        source.SourceOutageFault(),
        stack_state.ComponentPausedState(),
        stack_state.WorkloadState(),
    ]


def _load(entry: Any) -> FaultPlugin:
    try:
        loaded = entry.load()
    except Exception as exc:
        raise PluginError(f"fault plugin {entry.name!r} ({entry.value}) failed to load: {exc}") from exc
    plugin = loaded() if isinstance(loaded, type) else loaded
    if not isinstance(plugin, FaultPlugin):
        raise PluginError(f"fault plugin {entry.name!r} ({entry.value}) {not_a_plugin(plugin)}")
    return plugin


@cache
def plugins() -> dict[str, FaultPlugin]:
    found = {p.kind: p for p in _builtins()}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        plugin = _load(entry)
        if plugin.kind in found:
            raise PluginError(f"fault plugin {entry.name!r} reuses the kind {plugin.kind!r}")
        found[plugin.kind] = plugin
    return found


def plugin_for(kind: str) -> FaultPlugin:
    registered = plugins()
    if kind not in registered:
        raise PluginError(f"no fault of kind {kind!r}; known kinds: {', '.join(sorted(registered))}")
    return registered[kind]


INTERNAL_KINDS = frozenset({"stack.component_paused", "stack.workload"})


def spec_types() -> tuple[type[Any], ...]:
    """Spec classes a scenario may schedule (internal bookkeeping kinds excluded)."""
    return tuple(p.spec_type for p in plugins().values() if p.kind not in INTERNAL_KINDS)
