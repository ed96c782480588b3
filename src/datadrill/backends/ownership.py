"""A table belongs to the state directory whose source wrote it: refuse to run a stack's
sink on a table another stack wrote (its exactly-once state would drop every new event).

Example::

    check_table_is_ours(StatePaths(Path(".datadrill")), config)   # or ConfigError
"""

from __future__ import annotations

from datadrill.config import StackConfig
from datadrill.errors import ConfigError
from datadrill.paths import StatePaths


def check_table_is_ours(paths: StatePaths, config: StackConfig) -> None:
    """Refuse a table another stack's sink wrote on a cluster that outlived it.

    The sink keeps its exactly-once state (per partition: the highest event id committed)
    in the table's snapshots, and event ids come from this state directory's source
    database. A table written from another source is ahead of this one: every new event
    would look like a duplicate and be dropped, silently.
    """
    embedded_sqlite = config.catalog.is_sql and not config.catalog.uri and config.external is None
    if embedded_sqlite and not paths.catalog_db.exists():
        return  # a fresh state directory: no table yet (and no catalog client to import)
    import contextlib

    from pyiceberg.exceptions import NoSuchTableError
    from sqlalchemy.exc import SQLAlchemyError

    from datadrill.platform import source_db
    from datadrill.platform.catalog import open_stack_catalog, sink_state
    from datadrill.platform.source_conn import SOURCE_ERRORS

    try:
        table = open_stack_catalog(config, paths).load_table(config.catalog.table)
    except (NoSuchTableError, SQLAlchemyError, OSError):
        return  # no table yet (or no catalog schema yet): the stack creates it
    _, max_ids = sink_state(table)
    if not max_ids:
        return
    own_server = not config.source.uri and config.source.server == "postgresql" and config.external is None
    if own_server and (paths.postgres_dir / "data" / "PG_VERSION").exists():
        # The stack's own PostgreSQL server, stopped until the stack starts it: its data
        # directory in this state directory is the source that wrote the table.
        return
    ours = 0
    source = config.source.uri or (paths.source_db if paths.source_db.exists() else None)
    if source is not None:
        with contextlib.suppress(*SOURCE_ERRORS), source_db.connect(source) as db:
            ours = source_db.last_event_id(db)
    if max(max_ids.values()) > ours:
        raise ConfigError(
            "[catalog]",
            "table",
            config.catalog.table,
            f"already written by another datadrill stack (its sink is at event {max(max_ids.values())}, "
            f"this state directory's source at {ours}); use the state directory that wrote it, or "
            "another catalog.table and kafka.topic, or drop the table and the topic",
        )
