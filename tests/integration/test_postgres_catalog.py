"""The catalog on a real PostgreSQL server: same tables, same behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy

from conftest import drain, new_database, sink_rows, start_stack, stop_stack
from datadrill.engine.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_stack_on_a_postgres_catalog(postgres_dsn: str, tmp_path: Path) -> None:
    stack = start_stack(tmp_path / ".datadrill", **{"catalog.uri": postgres_dsn})
    try:
        assert stack.status().healthy
        wait_until(lambda: sink_rows(stack) > 100, timeout=60, what="rows via the PostgreSQL catalog")
        engine = sqlalchemy.create_engine(postgres_dsn.replace("postgresql://", "postgresql+psycopg2://"))
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT table_namespace, table_name, metadata_location FROM iceberg_tables")
            ).fetchall()
        engine.dispose()
        assert [(r[0], r[1]) for r in rows] == [("dwh", "orders")]
        assert rows[0][2].endswith(".metadata.json")
        result = drain(stack)
        assert result.exact, result.describe()
    finally:
        stop_stack(stack)


def test_network_faults_on_the_catalog_path(postgres_dsn: str, tmp_path: Path) -> None:
    """A PostgreSQL catalog is reached through the "catalog" proxy: with that path down the
    sink cannot commit and queries cannot resolve the table; once it is back, both resume
    and not a row is lost or duplicated."""
    from datadrill.clock import MonotonicClock
    from datadrill.errors import QueryFailed
    from datadrill.faults.base import DrillContext
    from datadrill.faults.ledger import FaultLedger, inject
    from datadrill.model import NetworkFault

    # A database of its own: the catalog of another test's stack must not be inherited.
    dsn = new_database(postgres_dsn, "catalog_network")
    stack = start_stack(tmp_path / ".datadrill", **{"catalog.uri": dsn})
    try:
        proxy = stack.state["proxies"]["catalog"]
        assert proxy["upstream"].endswith(f":{sqlalchemy.engine.make_url(postgres_dsn).port or 5432}")
        wait_until(lambda: sink_rows(stack) > 100, timeout=60, what="rows via the catalog proxy")
        context = DrillContext(stack, tmp_path, MonotonicClock())
        handle = inject(
            NetworkFault(at_s=0, duration_s=30, toxic="down", path="catalog"),
            context,
            ledger=FaultLedger.for_stack(stack.paths.root),
        )
        try:

            def sink_errors() -> int:
                sink = next(c for c in stack.status().raw["components"] if c["name"] == "sink")
                return int(sink["stats"].get("commit_errors", 0))

            before = sink_errors()
            wait_until(lambda: sink_errors() > before, timeout=60, what="sink commits failing")
            with pytest.raises(QueryFailed):
                stack.mart_queries(timeout_s=10).rows("SELECT count(*) FROM dwh.orders")
        finally:
            handle.revert()
        rows = sink_rows(stack)
        wait_until(lambda: sink_rows(stack) > rows, timeout=60, what="commits after the catalog path is back")
        result = drain(stack)
        assert result.exact, result.describe()
    finally:
        stop_stack(stack)
