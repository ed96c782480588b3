"""What a Trino client's statement means to the embedded engine (DuckDB over the catalog).

Trino names tables ``catalog.schema.table``; the engine has one catalog, ``iceberg``, whose
schemas are the Iceberg namespaces. Before DuckDB runs a query, every table it reads is
resolved through the Iceberg catalog, as Trino's Iceberg connector resolves it; a table the
catalog does not list fails as Trino fails (``TABLE_NOT_FOUND``, a user error). Statements
DuckDB does not have are answered here: ``SHOW CATALOGS|SCHEMAS|TABLES|COLUMNS``,
``DESCRIBE``, ``USE``, ``EXECUTE IMMEDIATE ... USING`` and the older
``PREPARE``/``EXECUTE``/``DEALLOCATE PREPARE`` with ``X-Trino-Prepared-Statement``.
The engine is read-only: anything but a query is ``NOT_SUPPORTED``.

Example::

    run_statement(engine, Statement("SELECT count(*) FROM orders", "me", "iceberg", "dwh", {}, "q1"))
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import Any
from urllib.parse import quote

import duckdb

from datadrill.errors import QueryFailed
from datadrill.interfaces.trino_protocol import Statement, StatementResult
from datadrill.interfaces.trino_types import LiteralError, TrinoType, parse_parameters, trino_type
from datadrill.platform.query import DATABASE, QueryEngine

_VARCHAR = TrinoType("varchar", {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]})
_INFO_SCHEMA = "information_schema"

_STRING = r"'(?:[^']|'')*'"
_EXECUTE_IMMEDIATE = re.compile(rf"^\s*EXECUTE\s+IMMEDIATE\s+({_STRING})(?:\s+USING\s+(.*))?\s*;?\s*$", re.I | re.S)
_EXECUTE = re.compile(r"^\s*EXECUTE\s+(\w+)(?:\s+USING\s+(.*))?\s*;?\s*$", re.I | re.S)
_PREPARE = re.compile(r"^\s*PREPARE\s+(\w+)\s+FROM\s+(.*?)\s*;?\s*$", re.I | re.S)
_DEALLOCATE = re.compile(r"^\s*DEALLOCATE\s+PREPARE\s+(\w+)\s*;?\s*$", re.I)
_USE = re.compile(r"^\s*USE\s+([\w\"]+)(?:\.([\w\"]+))?\s*;?\s*$", re.I)
_SHOW_CATALOGS = re.compile(r"^\s*SHOW\s+CATALOGS\s*;?\s*$", re.I)
_SHOW_SCHEMAS = re.compile(r"^\s*SHOW\s+SCHEMAS(?:\s+(?:FROM|IN)\s+([\w\"]+))?\s*;?\s*$", re.I)
_SHOW_TABLES = re.compile(r"^\s*SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+([\w\".]+))?\s*;?\s*$", re.I)
_SHOW_COLUMNS = re.compile(r"^\s*(?:SHOW\s+COLUMNS\s+(?:FROM|IN)|DESCRIBE|DESC)\s+([\w\".]+)\s*;?\s*$", re.I)


def _ident(part: str) -> str:
    """Trino folds unquoted names to lower case; a quoted name keeps its quotes' content."""
    part = part.strip()
    if part.startswith('"') and part.endswith('"'):
        return part[1:-1].replace('""', '"').lower()
    return part.lower()


def _split_name(name: str) -> list[str]:
    return [_ident(p) for p in re.findall(r'"(?:[^"]|"")*"|[^.]+', name)]


def _varchar_result(column: str, values: list[str]) -> StatementResult:
    return StatementResult([(column, _VARCHAR)], [(v,) for v in values])


def _locate(sql: str, needle: str) -> tuple[int, int] | None:
    """(line, column) of the first occurrence of ``needle`` (case-insensitive), 1-based."""
    index = sql.lower().find(needle.lower())
    if index < 0:
        return None
    line = sql.count("\n", 0, index) + 1
    column = index - (sql.rfind("\n", 0, index) + 1) + 1
    return line, column


def _no_such_catalog(catalog: str, sql: str) -> QueryFailed:
    return QueryFailed(
        f"Catalog '{catalog}' not found: this engine serves the catalog '{DATABASE}'",
        error_name="CATALOG_NOT_FOUND",
        location=_locate(sql, catalog),
    )


def _table_name(parts: list[str], statement: Statement, sql: str, text: str) -> str | None:
    """``namespace.table`` for a table reference; None for information_schema."""
    if len(parts) == 3:
        if parts[0] != DATABASE:
            raise _no_such_catalog(parts[0], sql)
        parts = parts[1:]
    if len(parts) == 1:
        if not statement.schema:
            raise QueryFailed(
                f"Schema must be specified when session schema is not set (table {text})",
                error_name="MISSING_SCHEMA_NAME",
                location=_locate(sql, text),
            )
        parts = [_ident(statement.schema), parts[0]]
    if parts[0] == _INFO_SCHEMA:
        return None
    return ".".join(parts)


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


def referenced_tables(sql: str, statement: Statement) -> tuple[list[str], bool]:
    """The ``namespace.table`` names ``sql`` reads, and whether it reads information_schema."""
    # DuckDB's table-name scan binds the statement and refuses parameters: NULL stands in.
    bare = _PLACEHOLDER.sub(lambda m: "NULL" if m.group(0) == "?" else m.group(0), sql)
    try:
        if _names_trino_function(bare):
            names = _table_names(bare)
        else:
            names = duckdb.get_table_names(bare, qualified=True)
    except duckdb.Error as exc:
        from datadrill.platform.query import duckdb_failure

        raise duckdb_failure(exc) from exc
    tables: list[str] = []
    info_schema = False
    for name in sorted(names):
        text = re.split(r"\s+AS\s+", name, maxsplit=1, flags=re.I)[0].strip()
        if text.startswith("trino_information_schema_"):
            continue  # see _information_schema
        table = _table_name(_split_name(text), statement, sql, text.split(".")[-1].strip('"'))
        if table is None:
            info_schema = True
        elif table not in tables:
            tables.append(table)
    return tables, info_schema


def _query(engine: QueryEngine, statement: Statement, sql: str, params: list[Any]) -> StatementResult:
    try:
        kinds = [s.type for s in duckdb.extract_statements(sql)]
    except duckdb.Error as exc:
        from datadrill.platform.query import duckdb_failure

        raise duckdb_failure(exc) from exc
    if len(kinds) != 1:
        raise QueryFailed(
            f"one statement per request (got {len(kinds)})", error_name="SYNTAX_ERROR", location=(1, 1)
        )
    if kinds[0] not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        raise QueryFailed(
            f"{kinds[0].name} is not supported: the embedded query engine is read-only "
            "(the sink writes the tables)",
            error_name="NOT_SUPPORTED",
            location=(1, 1),
        )
    if _INFO_TABLE.search(sql):
        sql = _information_schema(engine, sql)
    tables, _ = referenced_tables(sql, statement)
    for table in tables:
        try:
            engine.resolve(table)
        except QueryFailed as exc:
            if exc.location is None:
                exc.location = _locate(sql, table.split(".")[-1])
            raise
    schema = _ident(statement.schema) if statement.schema else None
    if _names_trino_function(sql):
        _trino_functions(engine)
    columns, rows = engine.described(sql, params, schema=schema)
    return StatementResult([(name, trino_type(t)) for name, t in columns], rows)


# Trino functions DuckDB lacks, as DuckDB macros on the engine's connection. A
# reconciliation sends the sink's range counts and hashes to Trino in Trino's SQL
# (datadrill.integrity.dialects.TrinoDialect); with these the embedded endpoint runs that
# very text, so the SQL a real Trino gets is the SQL tested here, against DuckDB's own
# dialect and SQLite. Each returns what Trino's function returns for the arguments that SQL
# passes (BIGINTs; one-character strings; timestamps with a zone, in microseconds).
TRINO_FUNCTION_MACROS = (
    "bitwise_and(x, y) AS (CAST(x AS BIGINT) & CAST(y AS BIGINT))",
    "bitwise_right_shift_arithmetic(x, n) AS (CAST(x AS BIGINT) >> CAST(n AS BIGINT))",
    "codepoint(s) AS CAST(unicode(s) AS INTEGER)",
    "to_unixtime(t) AS epoch_us(t) / 1000000.0",
    "from_unixtime(s) AS to_timestamp(s)",
)
_WITH_TRINO_FUNCTIONS: weakref.WeakSet[QueryEngine] = weakref.WeakSet()
_TRINO_FUNCTION_CALL = re.compile(
    r"\b(" + "|".join(m.split("(", 1)[0] for m in TRINO_FUNCTION_MACROS) + r")\s*\(", re.I
)


def _names_trino_function(sql: str) -> bool:
    """Does ``sql`` call one of the Trino functions? Only such statements pay for defining
    them (once per engine): every other statement runs exactly as before."""
    return _TRINO_FUNCTION_CALL.search(sql) is not None


_NAMES: list[duckdb.DuckDBPyConnection] = []
_NAMES_LOCK = threading.Lock()


def _table_names(sql: str) -> set[str]:
    """DuckDB's table-name scan of ``sql``. It binds function names too, and the default
    connection does not know the Trino functions: one connection of this module's, with
    them, made once and used under a lock (a DuckDB connection is not thread-safe)."""
    with _NAMES_LOCK:
        if not _NAMES:
            con = duckdb.connect(":memory:")
            for macro in TRINO_FUNCTION_MACROS:
                con.execute(f"CREATE TEMP MACRO {macro}")
            _NAMES.append(con)
        names: set[str] = _NAMES[0].get_table_names(sql, qualified=True)
        return names


def _trino_functions(engine: QueryEngine) -> None:
    """Define :data:`TRINO_FUNCTION_MACROS` on ``engine`` once (TEMP: seen from every schema)."""
    if engine in _WITH_TRINO_FUNCTIONS:
        return
    for macro in TRINO_FUNCTION_MACROS:
        engine.described(f"CREATE OR REPLACE TEMP MACRO {macro}")
    _WITH_TRINO_FUNCTIONS.add(engine)


_INFO_TABLE = re.compile(
    rf'(?:"?{DATABASE}"?\.)?"?{_INFO_SCHEMA}"?\."?(tables|columns|schemata)"?(?![\w"])', re.I
)


def _information_schema(engine: QueryEngine, sql: str) -> str:
    """``sql`` reading Trino's information_schema (tables, columns, schemata) as Trino
    fills it: tables are BASE TABLEs (DuckDB's own lists its views) and columns carry Trino
    type names. Built from the catalog for this query."""
    import pyarrow as pa

    tables = engine.catalog_tables()
    columns: list[tuple[str, str, str, int, str]] = []
    for table in tables:
        described = _query(engine, _SYSTEM, f"SELECT * FROM {table} LIMIT 0", [])
        namespace, name = table.split(".", 1)
        columns += [(namespace, name, c, i, t.name) for i, (c, t) in enumerate(described.columns, 1)]
    namespaces = sorted({*engine.catalog_namespaces(), _INFO_SCHEMA})
    views = {
        "schemata": pa.table({"catalog_name": [DATABASE] * len(namespaces), "schema_name": namespaces}),
        "tables": pa.table(
            {
                "table_catalog": [DATABASE] * len(tables),
                "table_schema": [t.split(".", 1)[0] for t in tables],
                "table_name": [t.split(".", 1)[1] for t in tables],
                "table_type": ["BASE TABLE"] * len(tables),
            }
        ),
        "columns": pa.table(
            {
                "table_catalog": [DATABASE] * len(columns),
                "table_schema": [c[0] for c in columns],
                "table_name": [c[1] for c in columns],
                "column_name": [c[2] for c in columns],
                "ordinal_position": pa.array([c[3] for c in columns], pa.int64()),
                "column_default": pa.array([None] * len(columns), pa.string()),
                "is_nullable": ["YES"] * len(columns),
                "data_type": [c[4] for c in columns],
                "comment": pa.array([None] * len(columns), pa.string()),
                "extra_info": pa.array([None] * len(columns), pa.string()),
            }
        ),
    }
    for view, data in views.items():
        engine.register_arrow(f"trino_information_schema_{view}", data)
    return _INFO_TABLE.sub(lambda m: f"trino_information_schema_{m.group(1).lower()}", sql)


# The statement the engine runs for itself (describing tables for information_schema).
_SYSTEM = Statement("", "datadrill", DATABASE, None, {}, "information_schema")


def _parameters(text: str | None, sql: str) -> list[Any]:
    try:
        return parse_parameters(text) if text else []
    except (LiteralError, ValueError) as exc:
        raise QueryFailed(str(exc), error_name="INVALID_LITERAL", location=_locate(sql, "USING")) from exc


def run_statement(engine: QueryEngine, statement: Statement) -> StatementResult:
    """Run one statement of a Trino client on ``engine`` (which the caller holds alone)."""
    sql = statement.sql.strip().rstrip(";")
    if statement.catalog and _ident(statement.catalog) not in (DATABASE, "system"):
        raise _no_such_catalog(statement.catalog, statement.catalog)
    if match := _EXECUTE_IMMEDIATE.match(sql):
        inner = match.group(1)[1:-1].replace("''", "'")
        return _query(engine, statement, inner, _parameters(match.group(2), sql))
    if match := _PREPARE.match(sql):
        name, body = match.group(1), match.group(2)
        result = StatementResult([], [], update_type="PREPARE")
        result.headers["X-Trino-Added-Prepare"] = f"{quote(name)}={quote(body)}"
        return result
    if match := _DEALLOCATE.match(sql):
        result = StatementResult([], [], update_type="DEALLOCATE")
        result.headers["X-Trino-Deallocated-Prepare"] = quote(match.group(1))
        return result
    if (match := _EXECUTE.match(sql)) and match.group(1).lower() != "immediate":
        prepared = statement.prepared.get(match.group(1))
        if prepared is None:
            raise QueryFailed(
                f"Prepared statement not found: {match.group(1)}", error_name="NOT_FOUND", location=(1, 1)
            )
        return _query(engine, statement, prepared, _parameters(match.group(2), sql))
    if match := _USE.match(sql):
        catalog, schema = (match.group(1), match.group(2)) if match.group(2) else (DATABASE, match.group(1))
        if _ident(catalog) != DATABASE:
            raise _no_such_catalog(catalog, sql)
        if _ident(schema) not in engine.catalog_namespaces():
            raise QueryFailed(
                f"Schema does not exist: {DATABASE}.{_ident(schema)}",
                error_name="SCHEMA_NOT_FOUND",
                location=_locate(sql, schema),
            )
        result = StatementResult([], [], update_type="USE")
        result.headers.update({"X-Trino-Set-Catalog": DATABASE, "X-Trino-Set-Schema": _ident(schema)})
        return result
    if _SHOW_CATALOGS.match(sql):
        return _varchar_result("Catalog", [DATABASE])
    if match := _SHOW_SCHEMAS.match(sql):
        if match.group(1) and _ident(match.group(1)) != DATABASE:
            raise _no_such_catalog(match.group(1), sql)
        return _varchar_result("Schema", sorted([*engine.catalog_namespaces(), _INFO_SCHEMA]))
    if match := _SHOW_TABLES.match(sql):
        parts = _split_name(match.group(1)) if match.group(1) else []
        if len(parts) == 2:
            if parts[0] != DATABASE:
                raise _no_such_catalog(parts[0], sql)
            parts = parts[1:]
        schema = parts[0] if parts else (_ident(statement.schema) if statement.schema else None)
        if schema is None:
            raise QueryFailed("Current schema must be set", error_name="MISSING_SCHEMA_NAME", location=(1, 1))
        if schema not in engine.catalog_namespaces():
            raise QueryFailed(
                f"Schema '{schema}' does not exist", error_name="SCHEMA_NOT_FOUND", location=_locate(sql, schema)
            )
        names = [t.split(".", 1)[1] for t in engine.catalog_tables() if t.split(".", 1)[0] == schema]
        return _varchar_result("Table", names)
    if match := _SHOW_COLUMNS.match(sql):
        text = match.group(1)
        table = _table_name(_split_name(text), statement, sql, text)
        if table is None:
            raise QueryFailed("information_schema is not described here", error_name="NOT_SUPPORTED")
        described = _query(engine, statement, f"SELECT * FROM {table} LIMIT 0", [])
        return StatementResult(
            [(c, _VARCHAR) for c in ("Column", "Type", "Extra", "Comment")],
            [(name, t.name, "", "") for name, t in described.columns],
        )
    return _query(engine, statement, sql, [])
