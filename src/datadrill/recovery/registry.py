"""Which runbook step kinds have an implementation: the built-ins, plugins from the
``datadrill.recovery`` entry-point group, and kinds registered in-process with
:func:`register_step`.

An entry point names either a step implementation ``(step, context) -> StepResult``; its
step kind is the entry point's name. Or it names a :class:`StepPlugin`, a class (made with
no arguments) or object with ``kind`` and ``run(step, context) -> StepResult``::

    [project.entry-points."datadrill.recovery"]
    "acme.failover_db" = "acme_drills.steps:failover_db"   # failover_db(step, context)
    acme_dns = "acme_drills.steps:FlushDns"                 # has kind and run

Example::

    result = run_step(RestoreCatalogBackup(backup="nightly"), context)
    result.detail   # "dwh.orders restored to snapshot 123… (18,000 rows), a backup taken 41.2 s earlier"
    register_step("acme.failover_db", failover_db)   # tests and embedders; no entry point
"""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol, runtime_checkable

from datadrill.faults.base import DrillContext
from datadrill.faults.registry import PluginError
from datadrill.model.recovery import StepSpec
from datadrill.model.slo import spec_kind
from datadrill.recovery.result import StepResult

ENTRY_POINT_GROUP = "datadrill.recovery"


class StepImplementation(Protocol):
    """Runs one runbook step against the stack."""

    def __call__(self, step: Any, context: DrillContext, /) -> StepResult: ...


@runtime_checkable
class StepPlugin(Protocol):
    """An entry point's alternative to a bare implementation: an object naming its kind."""

    @property
    def kind(self) -> str: ...

    def run(self, step: Any, context: DrillContext) -> StepResult: ...


_registered: dict[str, StepImplementation] = {}


def _builtins() -> dict[str, StepImplementation]:
    from datadrill.model.recovery import (
        BackfillFromReserve,
        Compare,
        PauseComponent,
        Reconcile,
        ReplayKafka,
        ReprocessDeadLetters,
        ReregisterFromMetadata,
        ResetOffsets,
        ResnapshotFromSource,
        RestartConnector,
        RestoreCatalogBackup,
        ResumeComponent,
        RollbackProducer,
    )
    from datadrill.recovery import (
        backfill,
        backup,
        compare,
        components,
        dead_letters,
        offsets,
        producer,
        reconcile_step,
        replay,
        reregister,
        resnapshot,
    )

    by_spec: dict[type[Any], StepImplementation] = {
        PauseComponent: components.run_pause_component,
        ResumeComponent: components.run_resume_component,
        RestartConnector: components.run_restart_connector,
        RestoreCatalogBackup: backup.run_restore_catalog_backup,
        ReregisterFromMetadata: reregister.run_reregister_from_metadata,
        ReplayKafka: replay.run_replay_kafka,
        RollbackProducer: producer.run_rollback_producer,
        ReprocessDeadLetters: dead_letters.run_reprocess_dead_letters,
        Reconcile: reconcile_step.run_reconcile,
        ResetOffsets: offsets.run_reset_offsets,
        ResnapshotFromSource: resnapshot.run_resnapshot_from_source,
        BackfillFromReserve: backfill.run_backfill_from_reserve,
    }
    # A Compare runs other steps: it is handed the registry, which it cannot import.
    compare.bind_registry(implementations)
    by_spec[Compare] = compare.run_compare
    return {spec_kind(spec): run for spec, run in by_spec.items()}


def _load(entry: Any) -> tuple[str, StepImplementation]:
    where = f"recovery step plugin {entry.name!r} ({entry.value})"
    try:
        loaded = entry.load()
    except Exception as exc:
        raise PluginError(f"{where} failed to load: {exc}") from exc
    if hasattr(loaded, "kind") and hasattr(loaded, "run"):
        try:
            plugin = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:
            raise PluginError(f"{where} could not be made with no arguments: {exc}") from exc
        if not isinstance(plugin, StepPlugin) or not isinstance(plugin.kind, str) or not plugin.kind:
            raise PluginError(f"{where} does not implement StepPlugin (a non-empty kind, run)")
        return plugin.kind, plugin.run
    if not callable(loaded):
        raise PluginError(
            f"{where} is neither a step implementation (step, context) -> StepResult "
            "nor a StepPlugin (kind, run)"
        )
    run: StepImplementation = loaded
    return entry.name, run


@cache
def discovered() -> dict[str, StepImplementation]:
    """The built-in steps and the entry points' ones, by step kind (loaded once; tests
    that install an entry point call ``discovered.cache_clear()``)."""
    from importlib.metadata import entry_points

    found = _builtins()
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        kind, run = _load(entry)
        if kind in found:
            raise PluginError(
                f"recovery step plugin {entry.name!r} ({entry.value}) reuses the step kind {kind!r}"
            )
        found[kind] = run
    return found


def implementations() -> dict[str, StepImplementation]:
    """Every step implementation by kind: built-ins, entry points, :func:`register_step`."""
    found = dict(discovered())
    for kind, run in _registered.items():
        if kind in found:
            raise PluginError(f"the step registered for {kind!r} clashes with an installed plugin's")
        found[kind] = run
    return found


def kinds() -> frozenset[str]:
    """The step kinds a runbook may hold."""
    return frozenset(implementations())


def implementation_for(kind: str) -> StepImplementation:
    registered = implementations()
    if kind not in registered:
        raise PluginError(
            f"no implementation for recovery step kind {kind!r}; known kinds: {', '.join(sorted(registered))}"
        )
    return registered[kind]


def register_step(kind: str, implementation: StepImplementation) -> None:
    """Register ``implementation`` for the step ``kind`` in this process: for tests and
    programs that embed datadrill. Installed plugins need no call: their entry points are
    found.

    Example::

        register_step("acme.failover_db", failover_db)
        try:
            ...                      # run a scenario whose runbook holds FailoverDb()
        finally:
            unregister_step("acme.failover_db")
    """
    if not isinstance(kind, str) or not kind:
        raise PluginError(f"a step kind is a non-empty string, not {kind!r}")
    if not callable(implementation):
        raise PluginError(
            f"the step for {kind!r} must be a callable (step, context) -> StepResult, not {implementation!r}"
        )
    if kind in implementations():
        raise PluginError(f"the step kind {kind!r} already has an implementation")
    _registered[kind] = implementation


def unregister_step(kind: str) -> None:
    """Forget a step :func:`register_step` registered; idempotent."""
    _registered.pop(kind, None)


def run_step(step: StepSpec, context: DrillContext) -> StepResult:
    """Run one runbook step with the implementation registered for its kind."""
    return implementation_for(step.kind)(step, context)
