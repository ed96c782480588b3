"""The official ``trino`` client against the embedded stack's ``query-engine`` endpoint (the
fault proxy's ``query`` path in front of the engine): it counts the sink's rows, and while
``DeleteCatalogEntry`` holds it fails as Trino fails, with ``TABLE_NOT_FOUND``."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trino
from trino.exceptions import TrinoUserError

from datadrill.clock import MonotonicClock
from datadrill.engine.wait import wait_until
from datadrill.faults.base import DrillContext
from datadrill.faults.ledger import FaultLedger, inject
from datadrill.model import DeleteCatalogEntry
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration


def _cursor(stack: StackClient) -> Any:
    endpoint = stack.status().component("query-engine").endpoint
    parts = urlsplit(endpoint)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    connection = trino.dbapi.connect(  # type: ignore[no-untyped-call]
        host=parts.hostname, port=parts.port, user="analyst", catalog="iceberg", schema="dwh"
    )
    return connection.cursor()


def _count(stack: StackClient) -> int:
    cursor = _cursor(stack)
    cursor.execute("SELECT count(*) FROM dwh.orders")
    return int(cursor.fetchall()[0][0])


def test_the_trino_client_counts_the_sinks_rows(stack: StackClient) -> None:
    endpoint = stack.status().component("query-engine").endpoint
    # The endpoint clients get is the fault proxy's query path, not the engine's own port.
    assert endpoint == str(stack.state["query_url"])
    assert stack.network.paths()["query"].listen == endpoint.removeprefix("http://")
    wait_until(lambda: _count(stack) > 0, timeout=60, what="rows in dwh.orders through the Trino protocol")
    engine = stack.query_engine()
    try:
        in_process = engine.rows("SELECT count(*) FROM dwh.orders")[0][0]
    finally:
        engine.close()
    # The sink keeps committing: the Trino count read afterwards can only be larger.
    assert _count(stack) >= in_process > 0


def test_a_deleted_catalog_entry_is_table_not_found(stack: StackClient, tmp_path: Path) -> None:
    wait_until(lambda: _count(stack) > 0, timeout=60, what="rows in dwh.orders")
    context = DrillContext(stack, tmp_path, MonotonicClock())
    handle = inject(DeleteCatalogEntry(at_s=0), context, ledger=FaultLedger.for_stack(stack.paths.root))
    try:
        with pytest.raises(TrinoUserError) as raised:
            _count(stack)
        assert raised.value.error_name == "TABLE_NOT_FOUND"
        assert raised.value.error_type == "USER_ERROR"
        assert "iceberg.dwh.orders" in raised.value.message
    finally:
        handle.revert()
    wait_until(lambda: _count(stack) > 0, timeout=60, what="dwh.orders back after the revert")
