"""Faults proven to land: every built-in plugin's ``confirm`` sees its effect after apply
and raises FaultNotLanded when the effect is absent; its ``target`` names what it would hit
and refuses a target that does not exist; the conformance check holds plugins to both.

The stack is the in-memory fake, given what a look needs from the outside: a real Iceberg
catalog (SQLite, in process), a real mock Kafka cluster (librdkafka, in process), a real
fault proxy on loopback. Fake time, except where a broker's answer time is the effect.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_stack import FakeNetwork, FakeStack

from datadrill.clock import FakeClock, MonotonicClock
from datadrill.errors import ConfigError, FaultNotLanded, KafkaMockUnavailable
from datadrill.faults.base import DrillContext, RevertData
from datadrill.faults.conformance import check_plugin
from datadrill.faults.ledger import FaultLedger
from datadrill.faults.registry import PluginError, plugin_for, plugins
from datadrill.faults.stack_state import pause_spec, workload_spec
from datadrill.model import (
    BrokerLatency,
    BrokerLoss,
    CatalogOutage,
    DeleteCatalogEntry,
    DeleteMetadataFiles,
    HideTable,
    KafkaRequestErrors,
    KillComponent,
    LagSpike,
    NetworkFault,
    SchemaDrift,
)
from datadrill.netfaults import FaultProxyServer, ToxiproxyAdmin
from datadrill.stack.port import ProxyPath


@pytest.fixture
def stack(tmp_path: Path) -> FakeStack:
    return FakeStack(tmp_path / "stack")


@pytest.fixture
def context(stack: FakeStack, tmp_path: Path) -> DrillContext:
    return DrillContext(stack, tmp_path / "run", FakeClock())


@pytest.fixture
def with_catalog(stack: FakeStack) -> FakeStack:
    return stack.with_catalog(commits=2)


@pytest.fixture
def cluster(stack: FakeStack) -> Iterator[Any]:
    from datadrill.backends.kafka.mock import MockCluster

    try:
        running = MockCluster.start(brokers=3)
    except KafkaMockUnavailable as exc:
        pytest.skip(f"no librdkafka with the mock cluster API here: {exc}")
    stack.kafka.use_cluster(running)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def proxied(stack: FakeStack) -> Iterator[ToxiproxyAdmin]:
    echo = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = echo.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                if data:
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    upstream = f"127.0.0.1:{echo.getsockname()[1]}"
    server = FaultProxyServer()
    url = server.start()
    admin = ToxiproxyAdmin(url)
    listen = admin.create_proxy("query", "127.0.0.1:0", upstream).listen
    stack.network = FakeNetwork(url, {"query": ProxyPath("query", listen, upstream)})
    try:
        yield admin
    finally:
        server.stop()
        echo.close()


def _inject(spec: Any, context: DrillContext) -> RevertData:
    plugin = plugin_for(spec.kind)
    data = plugin.prepare(spec, context)
    return {**data, **(plugin.apply(spec, context, data) or {})}


def _not_landed(spec: Any, context: DrillContext, *, within_s: float = 1.0) -> str:
    plugin = plugin_for(spec.kind)
    data = plugin.prepare(spec, context)
    with pytest.raises(FaultNotLanded) as caught:
        plugin.confirm(spec, context, data, within_s)
    return str(caught.value)


# -- the protocol and the conformance check -----------------------------------------------


def test_every_builtin_has_confirm_and_target() -> None:
    for kind, plugin in plugins().items():
        assert callable(getattr(plugin, "confirm", None)), kind
        assert callable(getattr(plugin, "target", None)), kind


class _AlwaysLands:
    """A plugin whose confirm passes whatever happened: conformance must catch it."""

    kind = "metadata.catalog_entry"
    spec_type = DeleteCatalogEntry

    def prepare(self, spec: Any, context: DrillContext) -> RevertData:
        return {}

    def apply(self, spec: Any, context: DrillContext, data: RevertData) -> RevertData:
        return {}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        return "nothing"

    def exclusive_key(self, spec: Any) -> str | None:
        return None

    def confirm(self, spec: Any, context: DrillContext, data: RevertData, within_s: float) -> str:
        return "looks fine"

    def target(self, spec: Any, context: DrillContext) -> str:
        context.quarantine  # noqa: B018 - the mistake under test: this creates a directory
        return "somewhere"


def test_conformance_refuses_a_confirm_that_always_passes_and_a_target_that_writes(
    context: DrillContext, tmp_path: Path
) -> None:
    problems = check_plugin(
        _AlwaysLands(), DeleteCatalogEntry(at_s=0), context, ledger=FaultLedger(tmp_path / "ledger.jsonl")
    )
    assert any("passed on a fault that was never applied" in p for p in problems), problems
    assert any("target() changed the run directory" in p and "quarantine" in p for p in problems), problems


def test_conformance_names_the_missing_methods(context: DrillContext) -> None:
    class Old:
        kind = "acme.old"
        spec_type = DeleteCatalogEntry

        def prepare(self) -> None: ...

        def apply(self) -> None: ...

        def revert(self) -> None: ...

        def exclusive_key(self) -> None: ...

    (problem,) = check_plugin(Old(), DeleteCatalogEntry(at_s=0), context)
    assert "does not implement FaultPlugin" in problem
    assert problem.endswith("it has no confirm, target"), problem


def test_the_registry_lists_confirm_and_target_in_its_refusal(tmp_path: Path) -> None:
    import sys

    (tmp_path / "acme_old_faults.py").write_text("class Old:\n    kind = 'acme.old'\n")
    dist = tmp_path / "acme_old-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-old\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[datadrill.faults]\nold = acme_old_faults:Old\n")
    sys.path.insert(0, str(tmp_path))
    plugins.cache_clear()
    try:
        with pytest.raises(PluginError, match=r"exclusive_key, confirm, target\); it has no spec_type"):
            plugins()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_old_faults", None)
        plugins.cache_clear()


CONFORMING_ON_THE_FAKE: list[Any] = [
    DeleteCatalogEntry(at_s=0),
    DeleteMetadataFiles(at_s=0, keep_newest=1),
    HideTable(at_s=0, duration_s=1),
    CatalogOutage(at_s=0, duration_s=1),
    KillComponent(at_s=0, component="relay"),
    LagSpike(at_s=0, duration_s=1, burst_factor=2),
    LagSpike(at_s=0, duration_s=1, mode="throttle", throttle_rows_per_s=50),
    KafkaRequestErrors(at_s=0, count=5),
    SchemaDrift(at_s=0, change="drop", enforcement=True),
]
# (The runner's own changes, a pause and a workload rate, have no at_s: no scenario
# schedules them, so they are checked one by one below.)


@pytest.mark.parametrize("spec", CONFORMING_ON_THE_FAKE, ids=lambda s: s.describe())
def test_builtins_conform_on_the_fake_stack(
    with_catalog: FakeStack, context: DrillContext, tmp_path: Path, spec: Any
) -> None:
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    assert check_plugin(plugin_for(spec.kind), spec, context, ledger=ledger) == []


@pytest.mark.parametrize(
    "spec",
    [BrokerLoss(at_s=0, duration_s=1, broker=2), BrokerLatency(at_s=0, duration_s=1, rtt_ms=100)],
    ids=lambda s: s.kind,
)
def test_kafka_faults_conform_on_a_mock_cluster(
    cluster: Any, stack: FakeStack, tmp_path: Path, spec: Any
) -> None:
    # Real time: a broker's answer time is the effect.
    context = DrillContext(stack, tmp_path / "run", MonotonicClock())
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    assert check_plugin(plugin_for(spec.kind), spec, context, ledger=ledger) == []


@pytest.mark.parametrize(
    "spec",
    [
        NetworkFault(at_s=0, duration_s=1, toxic="latency", attributes={"latency": 50}),
        NetworkFault(at_s=0, duration_s=1, toxic="down"),
    ],
    ids=lambda s: s.toxic,
)
def test_network_faults_conform_on_a_fault_proxy(
    proxied: ToxiproxyAdmin, context: DrillContext, tmp_path: Path, spec: NetworkFault
) -> None:
    ledger = FaultLedger(tmp_path / "ledger.jsonl")
    assert check_plugin(plugin_for(spec.kind), spec, context, ledger=ledger) == []


# -- metadata faults ----------------------------------------------------------------------


def test_catalog_entry_confirm_and_target(with_catalog: FakeStack, context: DrillContext) -> None:
    spec = DeleteCatalogEntry(at_s=0)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == (
        f"the catalog entry of dwh.orders (SQLite catalog at {with_catalog.paths.catalog_db})"
    )
    assert "expected no catalog row for dwh.orders" in _not_landed(spec, context)
    assert "the catalog still lists dwh.orders" in _not_landed(spec, context)
    data = _inject(spec, context)
    assert plugin.confirm(spec, context, data, 1.0) == "catalog has no row for dwh.orders"
    plugin.revert(data, context)
    with pytest.raises(ConfigError, match=r"DeleteCatalogEntry.table = 'dwh.nope'.*lists dwh.orders"):
        plugin.target(DeleteCatalogEntry(at_s=0, table="dwh.nope"), context)


def test_metadata_files_confirm_and_target_without_touching_the_quarantine(
    with_catalog: FakeStack, context: DrillContext
) -> None:
    spec = DeleteMetadataFiles(at_s=0, keep_newest=1)
    plugin = plugin_for(spec.kind)
    # Created, then two commits: three metadata files, the newest kept.
    description = plugin.target(spec, context)
    assert description.startswith("2 of the 3 metadata files of dwh.orders, newest 1 kept (file://")
    assert not context.run_dir.exists()  # not even the quarantine
    assert "2 of 2 still in" in _not_landed(spec, context)
    data = _inject(spec, context)
    note = plugin.confirm(spec, context, data, 1.0)
    assert note.startswith("2 metadata files gone from the warehouse")
    plugin.revert(data, context)
    with pytest.raises(ConfigError, match=r"keep_newest = 3 .*fewer than the 3 metadata files"):
        plugin.target(DeleteMetadataFiles(at_s=0, keep_newest=3), context)
    with pytest.raises(ConfigError, match=r"'dwh\.gone'"):
        plugin.target(DeleteMetadataFiles(at_s=0, table="dwh.gone"), context)


def test_hide_table_confirm_and_target(with_catalog: FakeStack, context: DrillContext) -> None:
    spec = HideTable(at_s=0, duration_s=1)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context).startswith(
        "the catalog entry of dwh.orders, renamed to dwh.orders__hidden_by_datadrill (SQLite catalog at"
    )
    _not_landed(spec, context)
    data = _inject(spec, context)
    assert plugin.confirm(spec, context, data, 1.0) == (
        "catalog lists dwh.orders__hidden_by_datadrill instead of dwh.orders"
    )
    plugin.revert(data, context)


def test_catalog_outage_confirm_sees_a_write_wait(with_catalog: FakeStack, context: DrillContext) -> None:
    spec = CatalogOutage(at_s=0, duration_s=1)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context).startswith("the catalog database (SQLite catalog at")
    assert "a write transaction started at once" in _not_landed(spec, context)
    data = _inject(spec, context)
    try:
        assert plugin.confirm(spec, context, data, 1.0).startswith("catalog database locked: a write waits")
    finally:
        plugin.revert(data, context)
    _not_landed(spec, context)  # released: a write starts again


def test_catalog_outage_target_needs_a_catalog_database(context: DrillContext) -> None:
    spec = CatalogOutage(at_s=0, duration_s=1)
    with pytest.raises(ConfigError, match="a catalog database that exists"):
        plugin_for(spec.kind).target(spec, context)


# -- connector faults ---------------------------------------------------------------------


def test_kill_confirm_sees_a_new_pid(stack: FakeStack, context: DrillContext) -> None:
    spec = KillComponent(at_s=0, component="relay")
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == "component relay (pid 102)"
    assert "relay still pid 102, 0 restarts" in _not_landed(spec, context)
    data = _inject(spec, context)
    assert plugin.confirm(spec, context, data, 1.0) == "relay killed: pid 102 → 1102"


def test_kill_mid_commit_is_confirmed_once_the_crash_point_fired(
    stack: FakeStack, context: DrillContext
) -> None:
    spec = KillComponent(at_s=0, component="sink", moment="mid_commit")
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == "component sink (pid 103), at its crash point 'after-write-before-commit'"
    stack.components.arm_crash_point("sink", "after-write-before-commit")  # armed, never reached
    assert "crash point still armed" in _not_landed(spec, context)
    stack.components.disarm_crash_point("sink")
    stack.components.crash_points_fire = True
    data = _inject(spec, context)
    assert plugin.confirm(spec, context, data, 1.0) == "sink killed at its crash point: pid 103 → 1103"


def test_a_kill_of_a_component_the_stack_lacks_is_refused(stack: FakeStack, context: DrillContext) -> None:
    del stack.components.procs["relay"]
    with pytest.raises(ConfigError, match=r"KillComponent.component = 'relay'.*workload, sink"):
        plugin_for("connector.crash").target(KillComponent(at_s=0, component="relay"), context)


@pytest.mark.parametrize("mode", ["pause", "throttle"])
def test_lag_spike_confirm_sees_the_burst_and_the_sink(
    stack: FakeStack, context: DrillContext, mode: str
) -> None:
    spec = LagSpike(at_s=0, duration_s=1, burst_factor=3, mode=mode, throttle_rows_per_s=40)  # type: ignore[arg-type]
    plugin = plugin_for(spec.kind)
    how = "paused" if mode == "pause" else "throttled to 40 rows/s"
    assert plugin.target(spec, context) == (
        f"the workload (200 → 600 orders/s) and component sink (pid 103), {how}"
    )
    assert "workload set to 200 orders/s" in _not_landed(spec, context)
    data = _inject(spec, context)
    note = plugin.confirm(spec, context, data, 1.0)
    assert note.startswith("workload set to 600 orders/s")
    assert note.endswith("sink paused" if mode == "pause" else "sink throttled to 40 rows/s")
    plugin.revert(data, context)
    # The burst without its other half has not landed either.
    stack.workload.set(rate=600)
    _not_landed(spec, context)


def test_the_generator_s_own_rate_is_what_counts_when_it_reports_one(
    stack: FakeStack, context: DrillContext
) -> None:
    from datadrill.stack.port import ComponentStatus

    reported = {"rate": 200.0}
    real_get = stack.components.get

    def get(name: str) -> ComponentStatus:
        status = real_get(name)
        if name != "workload":
            return status
        return ComponentStatus(**{**status.__dict__, "stats": dict(reported)})

    stack.components.get = get  # type: ignore[method-assign]
    spec = workload_spec(500.0, 1.0)
    plugin = plugin_for(spec.kind)
    data = _inject(spec, context)
    with pytest.raises(FaultNotLanded, match="the generator reports 200"):
        plugin.confirm(spec, context, data, 1.0)
    reported["rate"] = 500.0
    assert plugin.confirm(spec, context, data, 1.0) == "workload at 500 orders/s (the generator reports it)"


# -- Kafka faults -------------------------------------------------------------------------


def test_broker_loss_confirm_and_target_on_a_mock_cluster(cluster: Any, context: DrillContext) -> None:
    spec = BrokerLoss(at_s=0, duration_s=1, broker=2)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == f"broker 2 of 3 ({cluster.broker_addresses[2]})"
    assert "broker 2 listed at" in _not_landed(spec, context, within_s=0.2)
    data = _inject(spec, context)
    try:
        assert plugin.confirm(spec, context, data, 5.0) == (
            "broker 2 missing from the cluster metadata (lists 1, 3)"
        )
        # Already down: the cluster does not list it, so a dry run would say so.
        with pytest.raises(ConfigError, match=r"BrokerLoss.broker = 2 .*lists 1, 3"):
            plugin.target(spec, context)
    finally:
        plugin.revert(data, context)
    with pytest.raises(ConfigError, match=r"BrokerLoss.broker = 7 "):
        plugin.target(BrokerLoss(at_s=0, duration_s=1, broker=7), context)


def test_broker_latency_confirm_times_the_broker(cluster: Any, stack: FakeStack, tmp_path: Path) -> None:
    context = DrillContext(stack, tmp_path / "run", MonotonicClock())
    spec = BrokerLatency(at_s=0, duration_s=1, broker=3, rtt_ms=200)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == f"broker 3 of 3 ({cluster.broker_addresses[3]})"
    assert "broker 3 answered in" in _not_landed(spec, context, within_s=0.3)
    data = _inject(spec, context)
    try:
        note = plugin.confirm(spec, context, data, 5.0)
    finally:
        plugin.revert(data, context)
    assert note.startswith("broker 3 answers late (3: 2") and note.endswith("RTT 200 ms set)"), note
    every = BrokerLatency(at_s=0, duration_s=1, rtt_ms=100)
    assert plugin.target(every, context).startswith("every broker of 3 (1: 127.0.0.1:")


def test_request_errors_are_confirmed_from_the_stack_s_event_log(
    stack: FakeStack, context: DrillContext
) -> None:
    spec = KafkaRequestErrors(at_s=0, api="produce", count=7)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == (
        "the next 7 produce requests to the Kafka cluster at 127.0.0.1:9, failing with NOT_LEADER_OR_FOLLOWER"
    )
    # An older push (another fault's) does not count: only events after prepare do.
    stack.kafka.push_request_errors(0, [6])
    assert "no request_errors_pushed event for api key 0" in _not_landed(spec, context)
    data = _inject(spec, context)
    assert plugin.confirm(spec, context, data, 1.0) == (
        "the stack queued 7 produce request errors (NOT_LEADER_OR_FOLLOWER) on the cluster (its event log)"
    )


# -- the producer, the network, the runner's own changes ----------------------------------


def test_schema_drift_confirm_reads_the_producer_contract(stack: FakeStack, context: DrillContext) -> None:
    spec = SchemaDrift(at_s=0, change="retype", enforcement=False)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == (
        "the producer (component relay, pid 102), writing the contract's own schema with enforcement on now"
    )
    assert "saw producer writes the contract's own schema with enforcement on" in _not_landed(spec, context)
    data = _inject(spec, context)
    assert plugin.confirm(spec, context, data, 1.0) == "producer writes schema 'retype' with enforcement off"


def test_network_confirm_asks_the_toxiproxy_api(proxied: ToxiproxyAdmin, context: DrillContext) -> None:
    latency = NetworkFault(at_s=0, duration_s=1, toxic="latency", attributes={"latency": 20})
    plugin = plugin_for(latency.kind)
    listen = proxied.get_proxy("query").listen
    assert plugin.target(latency, context) == (
        f"proxy 'query' ({listen} → {context.stack.network.paths()['query'].upstream}) "
        f"via the Toxiproxy API at {context.stack.network.api_url}"
    )
    assert "proxy 'query' lists toxics none" in _not_landed(latency, context)
    data = _inject(latency, context)
    assert plugin.confirm(latency, context, data, 1.0) == (
        "toxic 'datadrill_latency_downstream' listed on proxy 'query'"
    )
    plugin.revert(data, context)
    down = NetworkFault(at_s=0, duration_s=1, toxic="down")
    assert "proxy 'query' enabled" in _not_landed(down, context)
    data = _inject(down, context)
    assert plugin.confirm(down, context, data, 1.0) == f"proxy 'query' refuses connections ({listen})"
    plugin.revert(data, context)
    with pytest.raises(ConfigError, match=r"NetworkFault.path = 'catalog'.*proxied path of this stack: query"):
        plugin.target(NetworkFault(at_s=0, duration_s=1, toxic="down", path="catalog"), context)


def test_pause_confirm_sees_the_component_stopped(stack: FakeStack, context: DrillContext) -> None:
    spec = pause_spec("sink")
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == "component sink (pid 103)"
    assert "sink runs (pid 103)" in _not_landed(spec, context)
    data = _inject(spec, context)
    assert plugin.confirm(spec, context, data, 1.0) == "sink stopped and kept stopped (was pid 103)"
    with pytest.raises(ConfigError, match=r"PauseComponent\.component = 'loader'"):
        plugin.target(pause_spec("loader"), context)


def test_workload_confirm_and_target(stack: FakeStack, context: DrillContext) -> None:
    spec = workload_spec(3000.0, 0.25)
    plugin = plugin_for(spec.kind)
    assert plugin.target(spec, context) == "the workload generator (now 200 orders/s, canaries every 1 s)"
    assert "workload set to 200 orders/s" in _not_landed(spec, context)
    data = _inject(spec, context)
    assert plugin.confirm(spec, context, data, 1.0) == (
        "workload set to 3000 orders/s (the generator reports no rate now)"
    )


def test_a_look_that_fails_is_not_yet_and_its_error_is_reported(context: DrillContext) -> None:
    from datadrill.faults.base import Seen, await_effect

    looks: list[float] = []

    def look() -> Seen:
        looks.append(context.clock.monotonic())
        if len(looks) < 3:
            raise OSError("connection refused")
        return Seen(False, "still there")

    with pytest.raises(FaultNotLanded) as caught:
        await_effect(context, 2.0, expected="it gone", look=look)
    message = str(caught.value)
    assert message.startswith("expected it gone within 2 s; saw still there (")
    # Backing off: a handful of looks in 2 s, never a busy loop.
    assert 4 <= len(looks) <= 12, looks

    def failing() -> Seen:
        raise OSError("connection refused")

    with pytest.raises(FaultNotLanded, match="saw OSError: connection refused") as chained:
        await_effect(context, 0, expected="it gone", look=failing)
    assert isinstance(chained.value.__cause__, OSError)
