"""Network faults on the embedded stack's query path: the fault proxy sits between every
query client and the query service, each toxic does to a real query what it says, and
reverting leaves the path clean."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.errors import QueryFailed
from datadrill.faults.base import DrillContext
from datadrill.faults.ledger import FaultLedger, inject
from datadrill.model import NetworkFault
from datadrill.netfaults import ToxiproxyAdmin
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

COUNT = "SELECT count(*) FROM dwh.orders"
HEALTHY_TIMEOUT_S = 60.0
# About 60 KB of JSON: enough for a 1 KB/s link to take far longer than the timeout.
WIDE = "SELECT order_id, customer_id, currency, status FROM dwh.orders ORDER BY order_id LIMIT 2000"


def test_status_lists_the_fault_proxy_and_the_query_path(stack: StackClient) -> None:
    components = {c["name"]: c for c in stack.status().raw["components"]}
    proxy = components["fault-proxy"]
    assert proxy["healthy"] and proxy["endpoint"] == stack.network.api_url
    query = stack.state["proxies"]["query"]
    assert f"query {query['listen']}->{query['upstream']}" in proxy["detail"]
    # The query service is the proxy's upstream; clients (and the status) get the proxy's
    # address, so that network faults sit between any Trino client and the engine.
    assert components["query-engine"]["endpoint"] == f"http://{query['listen']}"
    assert f"engine at http://{query['upstream']}" in components["query-engine"]["detail"]
    assert stack.state["query_url"] == f"http://{query['listen']}"
    assert "catalog" not in stack.state["proxies"]  # SQLite: no network path to the catalog
    assert ToxiproxyAdmin(stack.network.api_url).get_proxy("query").toxics == ()
    wait_until(
        lambda: stack.mart_queries().rows(COUNT)[0][0] > 0, timeout=60, what="rows through the query path"
    )


def _timed(stack: StackClient, sql: str, timeout_s: float) -> tuple[float, str | None]:
    began = time.monotonic()
    try:
        stack.mart_queries(timeout_s=timeout_s).rows(sql)
    except QueryFailed as exc:
        return time.monotonic() - began, str(exc)
    return time.monotonic() - began, None


@pytest.mark.parametrize(
    ("spec", "sql", "timeout_s", "expected"),
    [
        # Slower than the client's patience: the query times out.
        (
            NetworkFault(at_s=0, duration_s=30, toxic="latency", attributes={"latency": 1500}),
            COUNT,
            1.0,
            "no answer",
        ),
        (
            NetworkFault(at_s=0, duration_s=30, toxic="bandwidth", attributes={"rate": 1}),
            WIDE,
            2.0,
            "no answer",
        ),
        # Data stops flowing and the connection is held: a hang, then the timeout.
        (
            NetworkFault(at_s=0, duration_s=30, toxic="timeout", attributes={"timeout": 0}),
            COUNT,
            1.0,
            "no answer",
        ),
        (
            NetworkFault(at_s=0, duration_s=30, toxic="reset_peer", attributes={"timeout": 0}),
            COUNT,
            5.0,
            "query path",
        ),
        # The answer is cut after 40 bytes: the client sees a short read, not a result.
        (
            NetworkFault(at_s=0, duration_s=30, toxic="limit_data", attributes={"bytes": 40}),
            COUNT,
            5.0,
            "query path",
        ),
        (NetworkFault(at_s=0, duration_s=30, toxic="down"), COUNT, 5.0, "Connection"),
    ],
    ids=lambda v: v.toxic if isinstance(v, NetworkFault) else "",
)
def test_each_toxic_fails_queries_until_reverted(
    stack: StackClient, tmp_path: Path, spec: NetworkFault, sql: str, timeout_s: float, expected: str
) -> None:
    ledger = FaultLedger.for_stack(stack.paths.root)
    context = DrillContext(stack, tmp_path, MonotonicClock())
    # Before and after, the path must work: a generous timeout (a loaded machine may take
    # seconds over the session stack's many small files); only the fault gets timeout_s.
    assert _timed(stack, sql, HEALTHY_TIMEOUT_S)[1] is None, "the query must work before the fault"
    handle = inject(spec, context, ledger=ledger)
    try:
        _, error = _timed(stack, sql, timeout_s)
        assert error is not None and expected in error, error
    finally:
        handle.revert()
    assert ledger.outstanding() == []
    info = ToxiproxyAdmin(stack.network.api_url).get_proxy("query")
    assert info.enabled and info.toxics == ()
    assert _timed(stack, sql, HEALTHY_TIMEOUT_S)[1] is None, "the query must work again after the revert"


def test_latency_below_the_timeout_slows_queries_without_failing_them(
    stack: StackClient, tmp_path: Path
) -> None:
    context = DrillContext(stack, tmp_path, MonotonicClock())
    spec = NetworkFault(at_s=0, duration_s=30, toxic="latency", attributes={"latency": 700})
    handle = inject(spec, context, ledger=FaultLedger.for_stack(stack.paths.root))
    try:
        elapsed, error = _timed(stack, COUNT, 10.0)
    finally:
        handle.revert()
    assert error is None
    assert elapsed >= 0.7


def test_slow_close_delays_the_close_not_the_answer(stack: StackClient, tmp_path: Path) -> None:
    # The client reads the answer by its length and closes first, so a slow close upstream
    # costs it nothing: the toxic is for clients that wait for the server to hang up.
    context = DrillContext(stack, tmp_path, MonotonicClock())
    spec = NetworkFault(at_s=0, duration_s=30, toxic="slow_close", attributes={"delay": 3000})
    handle = inject(spec, context, ledger=FaultLedger.for_stack(stack.paths.root))
    try:
        assert [t.name for t in ToxiproxyAdmin(stack.network.api_url).get_proxy("query").toxics] == [
            "datadrill_slow_close_downstream"
        ]
        elapsed, error = _timed(stack, COUNT, 10.0)
    finally:
        handle.revert()
    assert error is None and elapsed < 3.0
