"""The catalog on a real PostgreSQL server: same tables, same behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from conftest import drain, sink_rows, start_stack, stop_stack

from datadrill.engine.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_stack_on_a_postgres_catalog(postgres_dsn: str, tmp_path: Path) -> None:
    stack = start_stack(tmp_path / ".datadrill", **{"catalog.uri": postgres_dsn})
    try:
        assert stack.status()["healthy"]
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
