"""The embedded stack: librdkafka mock cluster, SQLite/PostgreSQL Iceberg catalog, DuckDB and
the reference platform's processes, owned by one background stack process. No Docker."""
