"""``[catalog]`` in pyiceberg's own terms: type, uri, warehouse, properties; what the
harness hands pyiceberg's ``load_catalog``; the errors a wrong section gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import CatalogType
from pyiceberg.catalog.memory import InMemoryCatalog
from pyiceberg.catalog.sql import SqlCatalog

from datadrill.config import CATALOG_TYPES, parse_config
from datadrill.errors import ConfigError
from datadrill.paths import StatePaths
from datadrill.platform.catalog import (
    catalog_properties,
    catalog_uri,
    describe_stack_catalog,
    network_address,
    open_stack_catalog,
    warehouse_location,
)

OWN = {"reference": False}


def config_of(catalog: dict[str, Any], **sections: Any) -> Any:
    return parse_config({"catalog": catalog, **sections}, source="datadrill.toml")


def error_of(catalog: dict[str, Any], **sections: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config_of(catalog, **sections)
    return str(caught.value)


def test_the_types_are_pyicebergs() -> None:
    assert set(CATALOG_TYPES) == {t.value for t in CatalogType}


def test_the_default_is_the_stacks_sqlite_catalog(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    config = parse_config({}, source="defaults")
    assert config.catalog.type == "sql" and config.catalog.is_sql
    properties = catalog_properties(config, paths)
    assert properties == {
        "type": "sql",
        "uri": f"sqlite:///{paths.catalog_db.resolve()}",
        "warehouse": f"file://{paths.warehouse.resolve()}",
        "init_catalog_tables": "false",
    }
    paths.make()
    catalog = open_stack_catalog(config, paths, init_tables=True)
    assert isinstance(catalog, SqlCatalog)
    assert catalog.list_namespaces() == []


def test_a_rest_catalog_gets_its_own_properties(tmp_path: Path) -> None:
    config = config_of(
        {
            "type": "rest",
            "uri": "http://127.0.0.1:8181/api/catalog",
            "warehouse": "quickstart_catalog",
            "properties": {"s3.endpoint": "http://127.0.0.1:9000", "scope": "PRINCIPAL_ROLE:ALL"},
        },
        platform=OWN,
    )
    paths = StatePaths(tmp_path)
    assert catalog_properties(config, paths) == {
        "type": "rest",
        "uri": "http://127.0.0.1:8181/api/catalog",
        "warehouse": "quickstart_catalog",
        "s3.endpoint": "http://127.0.0.1:9000",
        "scope": "PRINCIPAL_ROLE:ALL",
    }
    assert catalog_uri(config, paths) == "http://127.0.0.1:8181/api/catalog"
    assert network_address(catalog_uri(config, paths)) is None  # not proxied by the stack
    # A warehouse that is a name, not a place: table files are where the server says.
    assert warehouse_location(config, paths) == f"file://{paths.warehouse.resolve()}"
    assert describe_stack_catalog(config, paths) == "REST catalog at http://127.0.0.1:8181/api/catalog"


def test_a_sql_catalog_on_postgres_and_its_warehouse(tmp_path: Path) -> None:
    config = config_of(
        {"uri": "postgresql://drill:secret@127.0.0.1:5433/catalog", "warehouse": "file:///srv/tables"}
    )
    properties = catalog_properties(config, StatePaths(tmp_path))
    assert properties["uri"] == "postgresql+psycopg2://drill:secret@127.0.0.1:5433/catalog"
    assert properties["warehouse"] == "file:///srv/tables"
    assert describe_stack_catalog(config, StatePaths(tmp_path)) == (
        "PostgreSQL catalog at postgresql+psycopg2://drill:***@127.0.0.1:5433/catalog"
    )


def test_pyicebergs_in_memory_catalog_opens_through_the_same_function(tmp_path: Path) -> None:
    config = config_of({"type": "in-memory", "warehouse": f"file://{tmp_path}"}, platform=OWN)
    catalog = open_stack_catalog(config, StatePaths(tmp_path))
    assert isinstance(catalog, InMemoryCatalog)
    catalog.create_namespace("dwh")
    assert catalog.list_namespaces() == [("dwh",)]


def test_a_catalog_pyiceberg_cannot_load_is_one_config_error(tmp_path: Path) -> None:
    config = config_of({"properties": {"py-catalog-impl": "nowhere.Catalog"}}, platform=OWN)
    with pytest.raises(ConfigError, match=r"catalog.type = 'nowhere.Catalog' is invalid: pyiceberg cannot load it"):
        open_stack_catalog(config, StatePaths(tmp_path))


@pytest.mark.parametrize(
    ("catalog", "sections", "expected"),
    [
        ({"type": "nessie"}, {}, "catalog.type = 'nessie' is invalid: expected one of sql, rest, hive"),
        ({"typ": "rest"}, {}, "catalog.typ = 'rest' is invalid: unknown field; allowed: properties, table, type"),
        ({"type": "rest"}, OWN, "catalog.uri = '' is invalid: a rest catalog needs uri = 'http(s)://HOST"),
        ({"type": "rest", "uri": "thrift://127.0.0.1:9083"}, OWN, "a rest catalog needs uri"),
        ({"type": "hive", "uri": "http://127.0.0.1:9083"}, OWN, "a hive catalog needs uri = 'thrift://HOST:PORT'"),
        ({"uri": "http://127.0.0.1:8181"}, {}, "catalog.uri = 'http://127.0.0.1:8181' is invalid: expected ''"),
        ({"warehouse": "/srv/tables"}, {}, "catalog.warehouse = '/srv/tables' is invalid: expected ''"),
        ({"properties": {"uri": "x"}}, {}, "'uri' is a field of [catalog] itself: set uri = ... there"),
        ({"properties": {"s3.endpoint": 9000}}, {}, "catalog.properties.s3.endpoint = 9000 is invalid"),
        (
            {"type": "sql", "properties": {"py-catalog-impl": "my.Catalog"}},
            {},
            "expected either type or properties.py-catalog-impl",
        ),
        (
            {"type": "rest", "uri": "http://127.0.0.1:8181"},
            {},
            "catalog.type = 'rest' is invalid: the reference platform's sink needs a sql catalog: "
            "set [platform] reference = false",
        ),
        (
            {"type": "rest", "uri": "http://10.1.2.3:8181"},
            OWN,
            "host = '10.1.2.3' is invalid: catalog.uri points outside loopback",
        ),
        (
            {"type": "hive", "uri": "thrift://127.0.0.1:9083,thrift://meta.internal:9083"},
            OWN,
            "host = 'meta.internal' is invalid: catalog.uri points outside loopback",
        ),
        (
            {"type": "glue", "properties": {"s3.endpoint": "http://minio.internal:9000"}},
            OWN,
            "host = 'minio.internal' is invalid: catalog.properties.s3.endpoint points outside loopback",
        ),
    ],
)
def test_wrong_catalog_sections(catalog: dict[str, Any], sections: dict[str, Any], expected: str) -> None:
    assert expected in error_of(catalog, platform=sections)


def test_allowed_hosts_let_a_remote_catalog_in() -> None:
    config = config_of(
        {"type": "rest", "uri": "https://catalog.internal/api/catalog"},
        platform=OWN,
        safety={"allow_hosts": ["catalog.internal"]},
    )
    assert config.catalog.uri == "https://catalog.internal/api/catalog"
