"""Where the stack's catalog and table files are, as strings: the catalog database's URI and
network address, the same database through a proxy, the warehouse location.

Apart from :mod:`datadrill.platform.catalog` so that the stack process can compute them
before it imports pyiceberg (~0.5 s): it starts the platform's processes first.
"""

from __future__ import annotations

from datadrill.config import StackConfig
from datadrill.errors import ConfigError
from datadrill.paths import StatePaths


def catalog_uri(config: StackConfig, paths: StatePaths) -> str:
    """The SQLAlchemy URI of the catalog database, as the harness reaches it (on an
    external cluster: directly, not through the platform's proxy). For a catalog that is
    not SQL: its ``[catalog] uri`` as configured (a REST or Thrift URL, or empty)."""
    if not config.catalog.is_sql:
        return config.catalog.uri
    if config.external is not None:
        return config.external.harness_catalog_uri
    uri = config.catalog.uri
    if not uri:
        return f"sqlite:///{paths.catalog_db.resolve()}"
    if uri.startswith("postgresql://"):
        return "postgresql+psycopg2://" + uri.removeprefix("postgresql://")
    return uri


def is_database_uri(uri: str) -> bool:
    return uri.startswith(("sqlite:", "postgresql:", "postgresql+"))


def describe_uri(uri: str) -> str:
    """The URI with any password hidden, for status output and errors."""
    if not is_database_uri(uri):
        from urllib.parse import urlsplit

        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        return uri.replace(f":{parts.password}@", ":***@", 1)
    from sqlalchemy.engine import make_url

    return make_url(uri).render_as_string(hide_password=True)


def network_address(uri: str) -> str | None:
    """``host:port`` of a networked catalog database, None for SQLite (a file, no network)
    and for a catalog that is no database (REST, Hive: not proxied by the stack)."""
    if not is_database_uri(uri):
        return None
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if url.get_backend_name() != "postgresql":
        return None
    return f"{url.host or '127.0.0.1'}:{url.port or 5432}"


def via_address(uri: str, address: str) -> str:
    """The same database reached through ``address`` (``host:port``, e.g. a fault proxy)."""
    from sqlalchemy.engine import make_url

    host, _, port = address.rpartition(":")
    return make_url(uri).set(host=host, port=int(port)).render_as_string(hide_password=False)


def check_catalog_reachable(uri: str, *, source: str, timeout_s: int = 3) -> None:
    """Fail with a :class:`ConfigError` when a PostgreSQL catalog cannot be reached."""
    if not uri.startswith("postgresql"):
        return
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": timeout_s})
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise ConfigError(
            source,
            "catalog.uri",
            describe_uri(uri),
            f"cannot connect to PostgreSQL ({reason}); check the DSN and that the server runs",
        ) from None
    finally:
        engine.dispose()


def warehouse_location(config: StackConfig, paths: StatePaths) -> str:
    """Where table files go: an external cluster's s3:// bucket, ``[catalog] warehouse``
    when it is a location (a REST catalog's warehouse may be a name instead), or the
    state directory."""
    if config.external is not None and config.external.warehouse:
        return config.external.warehouse
    if config.catalog.warehouse.startswith(("file:///", "s3://")):
        return config.catalog.warehouse
    return f"file://{paths.warehouse.resolve()}"


__all__ = [
    "catalog_uri",
    "check_catalog_reachable",
    "describe_uri",
    "is_database_uri",
    "network_address",
    "via_address",
    "warehouse_location",
]
