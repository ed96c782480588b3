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

import re
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table
from sqlalchemy.exc import SQLAlchemyError

from datadrill.errors import QueryFailed


def _local_path(location: str) -> str:
    return location.removeprefix("file://")


def _quote(literal: str) -> str:
    return "'" + literal.replace("'", "''") + "'"


# The database the engine's views live in: Trino's catalog name, so that both
# ``iceberg.dwh.orders`` and ``dwh.orders`` name the table, as they do in Trino.
DATABASE = "iceberg"

_CARET = re.compile(r"LINE (\d+): (.*)\n(\s*)\^")


def _location(message: str) -> tuple[int, int] | None:
    """(line, column) of DuckDB's ``LINE n: ...`` caret, 1-based as Trino counts."""
    match = _CARET.search(message)
    if match is None:
        return None
    prefix = len(f"LINE {match.group(1)}: ")
    return int(match.group(1)), len(match.group(3)) - prefix + 1


def duckdb_failure(exc: duckdb.Error) -> QueryFailed:
    """A DuckDB error as the Trino error a client would get for the same mistake."""
    message = str(exc).split("\n\nLINE", 1)[0].strip()
    if isinstance(exc, duckdb.ParserException):
        name = "SYNTAX_ERROR"
    elif isinstance(exc, duckdb.CatalogException) and "Table with name" in message:
        name = "TABLE_NOT_FOUND"
    elif isinstance(exc, duckdb.CatalogException) and "Function with name" in message:
        name = "FUNCTION_NOT_FOUND"
    elif isinstance(exc, duckdb.BinderException) and "column" in message.lower():
        name = "COLUMN_NOT_FOUND"
    elif isinstance(exc, duckdb.ConversionException):
        name = "INVALID_CAST_ARGUMENT"
    elif isinstance(exc, duckdb.InterruptException):
        name = "USER_CANCELED"
    elif isinstance(exc, duckdb.ProgrammingError | duckdb.DataError | duckdb.InvalidInputException):
        name = "GENERIC_USER_ERROR"
    else:
        name = "GENERIC_INTERNAL_ERROR"
    return QueryFailed(f"query failed: {message}", error_name=name, location=_location(str(exc)))


class QueryEngine:
    """One DuckDB connection; not thread-safe (make one per thread)."""

    def __init__(self, catalog: Catalog, *, default_tables: Sequence[str] = ("dwh.orders",)) -> None:
        self._catalog = catalog
        self._default_tables = tuple(default_tables)
        self._con = duckdb.connect(":memory:")
        # Keep the engine inside its own process: no extension downloads, no home directory.
        self._con.execute("SET autoinstall_known_extensions=false")
        self._con.execute("SET autoload_known_extensions=false")
        # No Parquet metadata cache: it keeps the footer of every file it ever read (~18 KiB
        # each, evicted only at memory_limit, by default 80% of RAM) and the sink adds a file
        # per commit, so the stack's long-lived engine grew without bound. Without it a scan
        # re-reads footers from the OS page cache: ~20% slower, memory that is given back.
        self._con.execute("SET parquet_metadata_cache=false")
        self._con.execute(f"ATTACH ':memory:' AS {DATABASE}")
        self._con.execute(f"USE {DATABASE}")
        # identifier -> (metadata location, snapshot id, data files) the view was built from.
        # Planning a scan reads every manifest; for a table that only grew by appends since,
        # reading the new snapshots' manifests is enough (see _appended_files).
        self._resolved: dict[str, tuple[str, int | None, list[str]]] = {}
        # identifier -> metadata location of a view registered from a pyiceberg scan (files in
        # object storage, or deletes): scanned again only when the table changes.
        self._scanned: dict[str, str] = {}

    def _resolve(self, identifier: str) -> None:
        namespace, name = identifier.split(".", 1)
        try:
            table = self._catalog.load_table(identifier)
            cached = self._resolved.get(identifier)
            if cached is not None and cached[0] == table.metadata_location:
                return
            if self._scanned.get(identifier) == table.metadata_location:
                return
            snapshot = table.current_snapshot()
            snapshot_id = snapshot.snapshot_id if snapshot else None
            files = self._appended_files(table, cached) if cached is not None else None
            if files is None:
                tasks = list(table.scan().plan_files())
                # Deletes (merge-on-read) or files in object storage (DuckDB's httpfs is an
                # extension download): pyiceberg reads those, DuckDB scans the result.
                if any(task.delete_files or not task.file.file_path.startswith("file:") for task in tasks):
                    files = None
                else:
                    files = [_local_path(task.file.file_path) for task in tasks]
            scanned = table.scan().to_arrow() if files is None else None
        except NoSuchTableError as exc:
            self._forget(identifier)
            raise QueryFailed(
                f"Table '{DATABASE}.{identifier}' does not exist in the catalog ({type(exc).__name__})",
                error_name="TABLE_NOT_FOUND",
            ) from exc
        except FileNotFoundError as exc:
            self._forget(identifier)
            raise QueryFailed(
                f"Metadata not found in metadata location for table {identifier}: "
                f"the catalog points at metadata that is gone: {exc}",
                error_name="ICEBERG_MISSING_METADATA",
            ) from exc
        except OSError as exc:
            raise QueryFailed(
                f"table {identifier}: cannot read its metadata: {exc}", error_name="ICEBERG_FILESYSTEM_ERROR"
            ) from exc
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise QueryFailed(
                f"table {identifier}: the catalog database failed: {reason}", error_name="ICEBERG_CATALOG_ERROR"
            ) from exc
        self._con.execute(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"')
        view = f'"{namespace}"."{name}"'
        if scanned is not None:
            self._register(view, scanned)
            self._resolved.pop(identifier, None)
            self._scanned[identifier] = table.metadata_location
            return
        self._scanned.pop(identifier, None)
        assert files is not None  # no scan: every file is local
        if files:
            # DDL cannot take parameters: the file list is inlined as quoted literals.
            listed = ", ".join(_quote(f) for f in files)
            self._con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet([{listed}])")
        else:
            self._register(view, schema_to_pyarrow(table.schema()).empty_table())
        self._resolved[identifier] = (table.metadata_location, snapshot_id, files)

    def _forget(self, identifier: str) -> None:
        """Drop the view of a table the catalog no longer serves: no query may read it."""
        namespace, name = identifier.split(".", 1)
        self._resolved.pop(identifier, None)
        self._scanned.pop(identifier, None)
        self._con.execute(f'DROP VIEW IF EXISTS "{namespace}"."{name}"')

    def resolve(self, identifier: str) -> None:
        """Make ``namespace.table`` queryable as the catalog has it now (QueryFailed with
        the Trino error name when the catalog cannot serve it)."""
        self._resolve(identifier)

    def catalog_tables(self) -> list[str]:
        """Every ``namespace.table`` the catalog lists."""
        try:
            return sorted(
                ".".join(identifier)
                for namespace in self._catalog.list_namespaces()
                for identifier in self._catalog.list_tables(namespace)
            )
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise QueryFailed(
                f"the catalog database failed: {reason}", error_name="ICEBERG_CATALOG_ERROR"
            ) from exc

    def catalog_namespaces(self) -> list[str]:
        return sorted(".".join(ns) for ns in self._catalog.list_namespaces())

    def described(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] = (), schema: str | None = None
    ) -> tuple[list[tuple[str, Any]], list[tuple[Any, ...]]]:
        """Run ``sql`` with ``schema`` as the session schema; return (name, DuckDB type) per
        column and the rows."""
        for identifier in tables:
            self._resolve(identifier)
        try:
            if schema:
                # Trino accepts any session schema until a name needs it; DuckDB's USE needs
                # the schema to exist, and views are made in it only when a table resolves.
                self._con.execute(f'CREATE SCHEMA IF NOT EXISTS {DATABASE}."{schema}"')
                self._con.execute(f'USE {DATABASE}."{schema}"')
            # Without a schema the connection is already on the catalog (reset below).
            cursor = self._con.execute(sql, list(params))
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            columns = [(str(d[0]), d[1]) for d in cursor.description or ()]
        except duckdb.Error as exc:
            raise duckdb_failure(exc) from exc
        finally:
            if schema:
                self._con.execute(f"USE {DATABASE}")
        return columns, rows

    def interrupt(self) -> None:
        """Stop the statement running now (from another thread)."""
        self._con.interrupt()

    @staticmethod
    def _appended_files(table: Table, cached: tuple[str, int | None, list[str]]) -> list[str] | None:
        """The cached file list plus the files of appends made since, or None when anything
        but appends happened (deletes, overwrites, a restored older snapshot)."""
        _, cached_id, cached_files = cached
        added: list[str] = []
        snapshot = table.current_snapshot()
        while snapshot is not None and snapshot.snapshot_id != cached_id:
            operation = snapshot.summary.operation if snapshot.summary is not None else None
            if operation is None or operation.value != "append":
                return None
            for manifest in snapshot.manifests(table.io):
                if manifest.added_snapshot_id != snapshot.snapshot_id:
                    continue
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                    if entry.status.name == "ADDED" and entry.snapshot_id == snapshot.snapshot_id:
                        added.append(_local_path(entry.data_file.file_path))
            parent = snapshot.parent_snapshot_id
            snapshot = table.snapshot_by_id(parent) if parent is not None else None
        if snapshot is None and cached_id is not None:
            return None  # the cached snapshot is not an ancestor: the table was replaced
        return cached_files + added

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
            raise duckdb_failure(exc) from exc

    def rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` after resolving ``tables`` (default: dwh.orders); return all rows."""
        result: list[tuple[Any, ...]] = self._run(sql, tables, params).fetchall()
        return result

    def columns_and_rows(
        self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Like :meth:`rows`, with the result's column names first."""
        cursor = self._run(sql, tables, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return [str(d[0]) for d in cursor.description or ()], rows

    def arrow(self, sql: str, params: Sequence[Any] = (), *, tables: Sequence[str] | None = None) -> pa.Table:
        result: pa.Table = self._run(sql, tables, params).to_arrow_table()
        return result

    def close(self) -> None:
        self._con.close()
