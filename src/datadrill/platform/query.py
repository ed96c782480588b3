"""The embedded query engine: DuckDB over Iceberg tables resolved through the catalog.

Every query resolves its tables through the catalog at query time, exactly as Trino's
Iceberg connector does: catalog row → current metadata file → data files. When the
catalog row or the metadata file is gone, the query fails, and that is the point.
DuckDB then scans the Parquet data files itself, so counts, group-bys and
reconciliation run in the engine rather than in Python.

Example::

    engine = QueryEngine(catalog)
    engine.rows("SELECT count(*) FROM dwh.orders")   # [(1234,)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io.pyarrow import schema_to_pyarrow

from datadrill.errors import QueryFailed


def _local_path(location: str) -> str:
    return location.removeprefix("file://")


def _quote(literal: str) -> str:
    return "'" + literal.replace("'", "''") + "'"


class QueryEngine:
    """One DuckDB connection; not thread-safe (make one per thread)."""

    def __init__(self, catalog: Catalog, *, default_tables: Sequence[str] = ("dwh.orders",)) -> None:
        self._catalog = catalog
        self._default_tables = tuple(default_tables)
        self._con = duckdb.connect(":memory:")
        # Keep the engine inside its own process: no extension downloads, no home directory.
        self._con.execute("SET autoinstall_known_extensions=false")
        self._con.execute("SET autoload_known_extensions=false")

    def _resolve(self, identifier: str) -> None:
        namespace, name = identifier.split(".", 1)
        try:
            table = self._catalog.load_table(identifier)
            tasks = list(table.scan().plan_files())
        except NoSuchTableError as exc:
            raise QueryFailed(f"table {identifier} does not exist in the catalog: {exc}") from exc
        except FileNotFoundError as exc:
            raise QueryFailed(
                f"table {identifier}: the catalog points at metadata that is gone: {exc}"
            ) from exc
        except OSError as exc:
            raise QueryFailed(f"table {identifier}: cannot read its metadata: {exc}") from exc
        self._con.execute(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"')
        view = f'"{namespace}"."{name}"'
        if any(task.delete_files for task in tasks):
            # Merge-on-read deletes: let pyiceberg apply them, DuckDB scans the result.
            arrow = table.scan().to_arrow()
            self._register(view, arrow)
        elif tasks:
            # DDL cannot take parameters: the file list is inlined as quoted literals.
            files = ", ".join(_quote(_local_path(task.file.file_path)) for task in tasks)
            self._con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet([{files}])")
        else:
            empty = schema_to_pyarrow(table.schema()).empty_table()
            self._register(view, empty)

    def _register(self, view: str, arrow: pa.Table) -> None:
        name = "arrow_" + view.replace('"', "").replace(".", "_")
        self._con.register(name, arrow)
        self._con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {name}")

    def register_arrow(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as ``name`` (e.g. source rows to compare with)."""
        self._con.register(name, table)

    def _run(self, sql: str, tables: Sequence[str] | None, params: Sequence[Any]) -> Any:
        for identifier in tables if tables is not None else self._default_tables:
            self._resolve(identifier)
        try:
            return self._con.execute(sql, list(params))
        except duckdb.Error as exc:
            raise QueryFailed(f"query failed: {exc}") from exc

    def rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` after resolving ``tables`` (default: dwh.orders); return all rows."""
        result: list[tuple[Any, ...]] = self._run(sql, tables, params).fetchall()
        return result

    def arrow(self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None) -> pa.Table:
        result: pa.Table = self._run(sql, tables, params).fetch_arrow_table()
        return result

    def close(self) -> None:
        self._con.close()
