"""Stack configuration: one validated, frozen object built from a TOML file and flags.

User input is parsed here, once, and nowhere else. A wrong field raises
:class:`~datadrill.errors.ConfigError` naming the file, the field, the value and what is
allowed.

Example::

    config = load_config(Path("datadrill.toml"), overrides={"workload.rate": 2000})
    config.workload.rate   # 2000.0
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from datadrill.errors import ConfigError
from datadrill.paths import StatePaths

DEFAULT_CONFIG_FILE = "datadrill.toml"
DEFAULT_STATE_DIR = ".datadrill"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: object, info: ValidationInfo) -> object:
        # pydantic reads true as 1 and false as 0: in a count or a rate a boolean is a
        # mistake, not a number (``brokers = true`` would be one broker).
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation is int or annotation is float:
                expected = "a whole number" if annotation is int else "a number"
                raise ValueError(f"expected {expected}, not a boolean")
        return value


class KafkaConfig(_Section):
    brokers: int = Field(3, ge=1, le=9, description="mock brokers in the cluster")
    topic: str = Field("orders.v1", min_length=1)
    partitions: int = Field(6, ge=1, le=256)
    replication_factor: int = Field(3, ge=1, le=9)
    election_delay_s: float = Field(
        2.0, ge=0, le=600, description="how long a dead leader's partitions stay leaderless"
    )
    group_initial_rebalance_delay_ms: int = Field(0, ge=0, le=300_000)

    @model_validator(mode="after")
    def _rf_fits(self) -> KafkaConfig:
        if self.replication_factor > self.brokers:
            raise ValueError(f"replication_factor {self.replication_factor} exceeds brokers {self.brokers}")
        return self


# pyiceberg's catalog types (``pyiceberg.catalog.CatalogType`` in pyiceberg 0.12; a unit
# test holds the two lists equal), as ``load_catalog`` knows them.
CATALOG_TYPES = ("sql", "rest", "hive", "glue", "dynamodb", "bigquery", "in-memory")
# Fields of [catalog] itself: never repeated under ``properties``.
CATALOG_OWN_PROPERTIES = ("type", "uri", "warehouse")
# pyiceberg's property that loads a Catalog class by its dotted path instead of a type.
PY_CATALOG_IMPL = "py-catalog-impl"


class CatalogConfig(_Section):
    """The Iceberg catalog, in pyiceberg's own terms: ``type``, ``uri``, ``warehouse`` and any
    further pyiceberg catalog property under ``properties`` (FileIO ``s3.*``, a REST
    catalog's ``credential`` or ``token``, ...). Faults, backups and restores reach it only
    through pyiceberg's Catalog API; the reference sink needs a SQL catalog."""

    type: str = Field(
        "sql",
        description="pyiceberg's catalog type: sql (the default), rest, hive, glue, dynamodb, "
        "bigquery or in-memory",
    )
    uri: str = Field(
        "",
        description="empty for SQLite under the state directory, or a PostgreSQL DSN",
        validate_default=True,  # a rest or hive catalog without one is an error
    )
    table: str = Field("dwh.orders", pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
    warehouse: str = Field(
        "",
        description="pyiceberg's warehouse property: for sql, empty (the state directory), "
        "file:///PATH or s3://BUCKET[/PATH]; for rest, what the server calls a warehouse",
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        description="further pyiceberg catalog properties, passed as they are",
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, kind: str) -> str:
        if kind not in CATALOG_TYPES:
            raise ValueError(f"expected one of {', '.join(CATALOG_TYPES)} (pyiceberg's catalog types)")
        return kind

    @field_validator("warehouse")
    @classmethod
    def _warehouse_location(cls, warehouse: str, info: ValidationInfo) -> str:
        if info.data.get("type", "sql") == "sql" and warehouse and not warehouse.startswith(("file:///", "s3://")):
            raise ValueError("expected '' (the state directory), 'file:///PATH' or 's3://BUCKET[/PATH]'")
        return warehouse

    @field_validator("properties")
    @classmethod
    def _no_own_fields(cls, properties: dict[str, str]) -> dict[str, str]:
        for key in properties:
            if key in CATALOG_OWN_PROPERTIES:
                raise ValueError(f"{key!r} is a field of [catalog] itself: set {key} = ... there")
            if not key.strip():
                raise ValueError("a property needs a name")
        return properties

    @model_validator(mode="after")
    def _type_or_impl(self) -> CatalogConfig:
        if PY_CATALOG_IMPL in self.properties and "type" in self.model_fields_set:
            raise ValueError(f"expected either type or properties.{PY_CATALOG_IMPL} (pyiceberg takes one)")
        return self

    @property
    def is_sql(self) -> bool:
        """A pyiceberg SQL catalog on a database datadrill can reach (SQLite or PostgreSQL)."""
        return self.type == "sql" and PY_CATALOG_IMPL not in self.properties

    @field_validator("uri")
    @classmethod
    def _uri_of_its_type(cls, uri: str, info: ValidationInfo) -> str:
        kind = info.data.get("type", "sql")
        if kind == "rest" and not re.match(r"^https?://[^/:]+(:\d+)?(/.*)?$", uri):
            raise ValueError("a rest catalog needs uri = 'http(s)://HOST[:PORT][/PATH]'")
        if kind == "hive" and not re.match(r"^thrift://[^/:,]+(:\d+)?(,thrift://[^/:,]+(:\d+)?)*$", uri):
            raise ValueError("a hive catalog needs uri = 'thrift://HOST:PORT' (9083 by default)")
        if kind in ("glue", "dynamodb", "bigquery") and uri and not re.match(r"^https?://", uri):
            raise ValueError(f"expected '' or an http(s):// endpoint for a {kind} catalog")
        return uri

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str, info: ValidationInfo) -> str:
        if info.data.get("type", "sql") not in ("sql", "in-memory"):
            return uri  # checked above for its own type
        if uri and not uri.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg2://")):
            raise ValueError(
                "expected '' (SQLite in the state directory), 'sqlite:///PATH' or "
                "'postgresql://USER:PASSWORD@HOST:PORT/DB'"
            )
        return uri

    @property
    def namespace(self) -> str:
        return self.table.split(".", 1)[0]


class ContractConfig(_Section):
    format: Literal["avro", "json"] = "avro"


class WorkloadConfig(_Section):
    rate: float = Field(200.0, ge=0, le=1_000_000, description="orders per second")
    canary_interval_s: float = Field(1.0, gt=0, le=3600)


class SourceConfig(_Section):
    """Where orders, outbox and canaries live. Nothing set: a SQLite file in the state
    directory. ``uri``: a PostgreSQL database (``postgresql://user@host:port/db``; the host
    must be loopback or in ``safety.allow_hosts``). ``server = "postgresql"`` on the embedded
    stack: a throwaway PostgreSQL server in the state directory (``stack up --source
    postgresql``)."""

    uri: str = Field("", description="a postgresql:// URI of the source database")
    server: Literal["sqlite", "postgresql"] = Field(
        "sqlite", description="the embedded stack's source when no uri is given"
    )

    @field_validator("uri")
    @classmethod
    def _postgres_uri(cls, uri: str) -> str:
        if not uri:
            return uri
        from urllib.parse import urlsplit

        parts = urlsplit(uri)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
            raise ValueError(
                "a PostgreSQL URI with a host and a database: postgresql://user[:password]@host[:port]/database"
            )
        return uri

    @property
    def is_postgres(self) -> bool:
        return bool(self.uri) or self.server == "postgresql"


class RelayConfig(_Section):
    batch_max_records: int = Field(20_000, ge=1, le=1_000_000)
    poll_interval_ms: int = Field(20, ge=1, le=10_000)
    mode: Literal["poll", "cdc"] = Field(
        "poll",
        description="poll: read and delete outbox rows; cdc: read the outbox's inserts from a "
        "logical replication slot (PostgreSQL source only)",
    )
    slot: str = Field("datadrill_relay", pattern=r"^[a-z0-9_]{1,63}$", description="the CDC relay's replication slot")
    publication: str = Field(
        "datadrill_outbox", pattern=r"^[a-z0-9_]{1,63}$", description="the CDC relay's publication (pgoutput)"
    )


class SinkConfig(_Section):
    group_id: str = Field("datadrill-sink", min_length=1)
    batch_max_records: int = Field(100_000, ge=1, le=5_000_000)
    batch_max_wait_ms: int = Field(200, ge=1, le=600_000)
    snapshots_to_keep: int = Field(20, ge=1, le=100_000)
    compact_min_files: int = Field(
        64,
        ge=0,
        le=100_000,
        description="rewrite the table's small data files into one once it holds this many (0: never)",
    )
    compact_file_rows: int = Field(
        10_000, ge=1, le=100_000_000, description="a data file with fewer rows is small (compaction)"
    )
    guarantee: Literal["exactly_once", "offsets_first"] = Field(
        "exactly_once",
        description="offsets_first: a deliberately weakened sink that commits Kafka offsets before "
        "writing and resumes from them; it loses rows when it crashes mid-commit (for proving "
        "that a schedule search finds such a bug)",
    )


class SupervisorConfig(_Section):
    backoff_initial_s: float = Field(0.2, gt=0, le=60)
    backoff_max_s: float = Field(5.0, gt=0, le=600)

    @model_validator(mode="after")
    def _ordered(self) -> SupervisorConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(
                f"backoff_initial_s {self.backoff_initial_s} exceeds backoff_max_s {self.backoff_max_s}"
            )
        return self


class SafetyConfig(_Section):
    allow_hosts: tuple[str, ...] = Field(
        (), description="hosts outside loopback that datadrill may connect to and inject faults into"
    )


class ConnectConfig(_Section):
    """A Kafka Connect cluster whose connectors (by name) the connector faults and steps
    act on, through its REST API. Empty: the stack's own Connect API (the relay and the
    sink). The host must be loopback or listed in ``safety.allow_hosts``."""

    url: str = Field(
        "",
        pattern=r"^(https?://[^/:]+(:\d+)?/?)?$",
        description="http(s)://HOST:PORT of a Kafka Connect worker's REST API (8083 by default)",
    )


class ExternalConfig(_Section):
    """An existing cluster to drill (``--stack external``; ``--stack compose`` fills it in
    from the compose stack). datadrill runs the reference platform's workload, relay and
    sink on this host against it. Every host must be loopback or listed in
    ``safety.allow_hosts``."""

    bootstrap_servers: str = Field(min_length=1, description="Kafka bootstrap servers, host:port[,host:port]")
    brokers: int = Field(1, ge=1, le=100, description="brokers the metadata must list to count as ready")
    catalog_uri: str = Field(
        min_length=1,
        description="the Iceberg JDBC catalog's database as the platform reaches it (through "
        "Toxiproxy, if one sits in front): postgresql://USER:PASSWORD@HOST:PORT/DB",
    )
    direct_catalog_uri: str = Field(
        "",
        description="the same database without the proxy, for reverts and checks that a "
        "network fault must not slow down; empty: catalog_uri",
    )
    trino_url: str = Field(
        "",
        pattern=r"^(https?://[^/:]+(:\d+)?/?)?$",
        description="http(s)://HOST:PORT of Trino, which dashboards and probes query; empty: "
        "datadrill serves queries itself with DuckDB over the catalog",
    )
    toxiproxy_url: str = Field("", description="http://HOST:PORT of a Toxiproxy API in front of it, if any")
    schema_registry_url: str = Field(
        "",
        pattern=r"^(https?://[^/:]+(:\d+)?/?)?$",
        description="http(s)://HOST:PORT of a Confluent Schema Registry: the relay registers its writer "
        "schemas there and frames values in its wire format; empty: ids in message headers",
    )
    warehouse: str = Field(
        "",
        pattern=r"^(s3://[a-z0-9][a-z0-9.-]*(/.*)?)?$",
        description="where table files live: s3://BUCKET[/PATH] (MinIO, S3); empty: the state directory",
    )
    s3_endpoint: str = Field("", description="http(s)://HOST:PORT of the S3 API (MinIO); empty: AWS")
    s3_region: str = Field("us-east-1", min_length=1)
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    compose_project: str = Field(
        "",
        description="the compose project of the cluster's containers: broker loss then kills the "
        "broker's container; without it, broker loss cuts the broker's Toxiproxy proxy",
    )

    @field_validator("catalog_uri", "direct_catalog_uri")
    @classmethod
    def _postgres(cls, uri: str) -> str:
        if uri == "":
            return uri
        if not uri.startswith(("postgresql://", "postgresql+psycopg2://")):
            raise ValueError("expected postgresql://USER:PASSWORD@HOST:PORT/DB")
        return uri.replace("postgresql://", "postgresql+psycopg2://", 1)

    @property
    def harness_catalog_uri(self) -> str:
        return self.direct_catalog_uri or self.catalog_uri

    @property
    def trino_host_port(self) -> tuple[str, int]:
        from urllib.parse import urlsplit

        parts = urlsplit(self.trino_url)
        return parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 8080)

    def s3_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties for an s3:// warehouse (nothing for a local one)."""
        if not self.warehouse:
            return {}
        properties = {"s3.region": self.s3_region}
        if self.s3_endpoint:
            # An S3-compatible server (MinIO) wants bucket names in the path.
            properties["s3.endpoint"] = self.s3_endpoint
            properties["s3.force-virtual-addressing"] = "false"
        if self.s3_access_key_id:
            properties["s3.access-key-id"] = self.s3_access_key_id
            properties["s3.secret-access-key"] = self.s3_secret_access_key
        return properties


class PrometheusConfig(_Section):
    """A Prometheus server that already scrapes the stack's metrics URL and holds the team's
    alert rules: a run (``datadrill run``) watches its alerts API and reports when each rule
    went pending and firing. Empty: none, unless ``--alert-rules`` starts a throwaway one.
    The host must be loopback or listed in ``safety.allow_hosts``."""

    url: str = Field(
        "",
        pattern=r"^(https?://[^/:]+(:\d+)?(/[^?#]*)?)?$",
        description="http(s)://HOST:PORT[/PATH] of the Prometheus server (9090 by default)",
    )
    poll_interval_s: float = Field(
        0.25, gt=0, le=60, description="how often the run reads Prometheus's alerts"
    )


# The names the stack's own parts answer to in status, faults and Connect's API: a
# declared component may not take one of them.
RESERVED_COMPONENT_NAMES = (
    "workload",
    "relay",
    "sink",
    "connect",
    "query-engine",
    "kafka",
    "catalog",
    "source-db",
)
# The reference platform's supervised processes (``[platform] reference = true``).
REFERENCE_COMPONENTS = ("workload", "relay", "sink")
COMPONENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class ReadyCheck(_Section):
    """When a declared component counts as ready: a line on its stdout containing ``log``,
    or a TCP port on 127.0.0.1 accepting connections. Neither: as soon as it runs."""

    log: str = Field("", description="text a line of the component's output contains once it is ready")
    port: int = Field(0, ge=0, le=65535, description="a port on 127.0.0.1 that accepts connections once ready")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="how long `stack up` waits for it")

    @model_validator(mode="after")
    def _one_check(self) -> ReadyCheck:
        if self.log and self.port:
            raise ValueError("expected one of log = \"TEXT\" or port = N, not both")
        return self


class ComponentConfig(_Section):
    """A process of your pipeline that the stack supervises (``command``), or a connector of
    a real Kafka Connect cluster (``connector``, with ``[connect] url``). Settings may name
    the stack's endpoints as placeholders (:mod:`datadrill.platform.placeholders`)."""

    command: tuple[str, ...] = Field((), description="argv of the process; placeholders allowed")
    cwd: str = Field(".", min_length=1, description="working directory, relative to the config file")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment; placeholders allowed")
    ready: ReadyCheck = ReadyCheck()
    group: str = Field(
        "",
        description="the Kafka consumer group the component consumes with (ResetOffsets, lag SLIs)",
    )
    connector: str = Field(
        "",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*)?$",
        description="the name of a connector on the Kafka Connect cluster at [connect] url",
    )

    @model_validator(mode="after")
    def _command_or_connector(self) -> ComponentConfig:
        if bool(self.command) == bool(self.connector):
            raise ValueError("expected either command = [ARGV...] (a process) or connector = \"NAME\"")
        if self.command and not self.command[0]:
            raise ValueError("the command's program is empty")
        return self


class PlatformConfig(_Section):
    reference: bool = Field(
        True,
        description="run datadrill's reference workload, relay and sink; false: only your components",
    )


class StackConfig(_Section):
    kafka: KafkaConfig = KafkaConfig()
    catalog: CatalogConfig = CatalogConfig()
    contract: ContractConfig = ContractConfig()
    workload: WorkloadConfig = WorkloadConfig()
    source: SourceConfig = SourceConfig()
    relay: RelayConfig = RelayConfig()
    sink: SinkConfig = SinkConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    safety: SafetyConfig = SafetyConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    external: ExternalConfig | None = None
    connect: ConnectConfig = ConnectConfig()
    platform: PlatformConfig = PlatformConfig()
    components: dict[str, ComponentConfig] = Field(default_factory=dict)

    @property
    def component_names(self) -> tuple[str, ...]:
        """Every component faults and steps may name: the reference platform's (when it
        runs) and the declared ones, in that order."""
        reference = REFERENCE_COMPONENTS if self.platform.reference else ()
        return (*reference, *self.components)

    @model_validator(mode="after")
    def _catalog_endpoints_allowed(self) -> StackConfig:
        """A non-SQL catalog's server (a REST catalog, each Hive Metastore) and any endpoint
        among its properties (``s3.endpoint``, ``oauth2-server-uri``, ...) obey the same
        host policy as the SQL catalog's database (checked below)."""
        from urllib.parse import urlsplit

        from datadrill.safety import check_host

        catalog = self.catalog
        urls: list[tuple[str, str]] = []
        if not catalog.is_sql and catalog.uri and not catalog.uri.startswith("sqlite:"):
            urls += [("catalog.uri", part) for part in catalog.uri.split(",")]
        if re.match(r"^(https?|thrift)://", catalog.warehouse):
            urls.append(("catalog.warehouse", catalog.warehouse))
        urls += [
            (f"catalog.properties.{key}", value)
            for key, value in catalog.properties.items()
            if re.match(r"^(https?|thrift)://", value)
        ]
        for what, url in urls:
            host = urlsplit(url.strip()).hostname or "localhost"
            check_host(host, allow_hosts=self.safety.allow_hosts, what=what)
        return self

    @model_validator(mode="after")
    def _catalog_host_allowed(self) -> StackConfig:
        from datadrill.safety import check_host, check_servers

        allowed = self.safety.allow_hosts
        if self.catalog.uri.startswith("postgresql"):
            # Imported here: every configuration is validated, few name a PostgreSQL catalog.
            from sqlalchemy.engine import make_url

            host = make_url(self.catalog.uri).host or "localhost"
            check_host(host, allow_hosts=allowed, what="catalog.uri")
        if self.source.uri:
            from urllib.parse import urlsplit as _source_split

            check_host(_source_split(self.source.uri).hostname or "localhost", allow_hosts=allowed, what="source.uri")
        if self.prometheus.url:
            from urllib.parse import urlsplit as _split

            check_host(
                _split(self.prometheus.url).hostname or "localhost",
                allow_hosts=allowed,
                what="prometheus.url",
            )
        if self.connect.url:
            from urllib.parse import urlsplit

            host = urlsplit(self.connect.url).hostname or "localhost"
            check_host(host, allow_hosts=allowed, what="connect.url")
        if self.external is not None:
            from urllib.parse import urlsplit

            from sqlalchemy.engine import make_url

            external = self.external
            check_servers(external.bootstrap_servers, allow_hosts=allowed, what="external.bootstrap_servers")
            for what in ("catalog_uri", "direct_catalog_uri"):
                uri = getattr(external, what)
                if uri:
                    check_host(
                        make_url(uri).host or "localhost", allow_hosts=allowed, what=f"external.{what}"
                    )
            for what in ("trino_url", "toxiproxy_url", "s3_endpoint", "schema_registry_url"):
                url = getattr(external, what)
                if url:
                    check_host(
                        urlsplit(url).hostname or "localhost", allow_hosts=allowed, what=f"external.{what}"
                    )
        return self


def _set_dotted(data: dict[str, Any], dotted: str, value: object) -> None:
    section, _, key = dotted.partition(".")
    if not section or not key or "." in key:
        raise ConfigError("flags", dotted, value, "expected SECTION.FIELD, e.g. workload.rate")
    target = data.setdefault(section, {})
    if not isinstance(target, dict):
        raise ConfigError("flags", section, target, "expected a table of settings")
    target[key] = value


def _first_error(source: str, error: ValidationError, data: Mapping[str, Any]) -> ConfigError:
    detail = error.errors()[0]
    field = ".".join(str(part) for part in detail["loc"])
    value = detail.get("input")
    if detail["type"] == "extra_forbidden":
        section_path = [str(p) for p in detail["loc"][:-1]]
        model: type[BaseModel] = StackConfig
        for part in section_path:
            if part not in model.model_fields:
                continue  # a key of a table of sections ([components.NAME])
            annotation = model.model_fields[part].annotation
            # An optional section (``external``) is ``Section | None``: use the section.
            sections = [
                a
                for a in (get_args(annotation) or (annotation,))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ]
            assert sections, f"{part} is not a section"
            model = sections[0]
        allowed = "unknown field; allowed: " + ", ".join(sorted(model.model_fields))
    elif detail["type"] == "missing":
        value, allowed = None, "required field is missing"  # pydantic's input: the whole section
    else:
        allowed = detail["msg"].removeprefix("Value error, ")
    return ConfigError(source, field, value, allowed)


def parse_config(
    data: Mapping[str, Any], *, source: str, overrides: Mapping[str, object] | None = None
) -> StackConfig:
    """Validate plain data (as read from TOML) plus dotted ``overrides`` from flags."""
    try:
        config = StackConfig.model_validate(data)
    except ValidationError as exc:
        raise _first_error(source, exc, data) from None
    _check_components(config, source)
    _check_catalog(config, source)
    _check_relay(config, source)
    if not overrides:
        return config
    # Overrides are checked on their own so an error names the flag, not the file.
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for dotted, value in overrides.items():
        _set_dotted(merged, dotted, value)
    try:
        config = StackConfig.model_validate(merged)
    except ValidationError as exc:
        raise _first_error("flags", exc, merged) from None
    _check_components(config, "flags")
    _check_catalog(config, "flags")
    _check_relay(config, "flags")
    return config


def _check_relay(config: StackConfig, source: str) -> None:
    """The CDC relay reads PostgreSQL's write-ahead log: a SQLite source has none."""
    if config.relay.mode == "cdc" and not config.source.is_postgres:
        raise ConfigError(
            source,
            "relay.mode",
            "cdc",
            'a PostgreSQL source: set [source] uri = "postgresql://..." or server = "postgresql" '
            '(stack up --source postgresql), or mode = "poll"',
        )


def _check_catalog(config: StackConfig, source: str) -> None:
    """The reference sink writes through pyiceberg's SQL catalog (the stack creates its
    table and proxies the catalog database for network faults): another catalog type is for
    your own components, with the reference platform off."""
    catalog = config.catalog
    if config.platform.reference and not catalog.is_sql:
        impl = catalog.properties.get(PY_CATALOG_IMPL)
        kind = catalog.type if impl is None else "custom"
        raise ConfigError(
            source,
            "catalog.type" if impl is None else f"catalog.properties.{PY_CATALOG_IMPL}",
            catalog.type if impl is None else impl,
            "the reference platform's sink needs a sql catalog: set [platform] reference = false "
            f"to drill your own components against a {kind} catalog, or type = \"sql\"",
        )


def _check_components(config: StackConfig, source: str) -> None:
    """Declared components' placeholders name endpoints that exist (checked now, not when
    the stack starts the process), and a connector has a Connect cluster to live on."""
    from datadrill.platform.placeholders import check

    for name, component in config.components.items():
        field = f"components.{name}"
        if not re.match(COMPONENT_NAME_PATTERN, name):
            raise ConfigError(source, field, name, "a name of letters, digits, '.', '_' and '-'")
        if name in RESERVED_COMPONENT_NAMES:
            raise ConfigError(
                source, field, name, f"a name of your own; the stack's are {', '.join(RESERVED_COMPONENT_NAMES)}"
            )
        for index, arg in enumerate(component.command):
            check(arg, source=source, field=f"{field}.command[{index}]")
        check(component.cwd, source=source, field=f"{field}.cwd")
        for key, value in component.env.items():
            check(value, source=source, field=f"{field}.env.{key}")
        if component.connector and not config.connect.url:
            raise ConfigError(
                source,
                f"{field}.connector",
                component.connector,
                "a connector needs [connect] url, the Kafka Connect cluster it runs on",
            )


def _with_component_dirs(config: StackConfig, base: Path) -> StackConfig:
    """Components' working directories made absolute, relative to the config file: the
    stack process runs elsewhere (its own working directory) and must find them."""
    if not config.components:
        return config
    components = {
        name: component.model_copy(update={"cwd": str((base / component.cwd).resolve())})
        if "{" not in component.cwd
        else component
        for name, component in config.components.items()
    }
    return config.model_copy(update={"components": components})


def load_config(path: Path | None, *, overrides: Mapping[str, object] | None = None) -> StackConfig:
    """Read ``path`` (or ``datadrill.toml`` if it exists, else defaults) and validate it."""
    if path is None:
        default = Path(DEFAULT_CONFIG_FILE)
        path = default if default.is_file() else None
    if path is None:
        return _with_component_dirs(parse_config({}, source="defaults", overrides=overrides), Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "(file)", str(path), f"cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), "(syntax)", path.name, f"not valid TOML: not UTF-8 text (byte {exc.start})"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError carries only its message, which names line and column.
        raise ConfigError(str(path), "(syntax)", path.name, f"not valid TOML: {exc}") from None
    config = parse_config(data, source=str(path), overrides=overrides)
    return _with_component_dirs(config, path.parent)


def read_running_config(paths: StatePaths) -> StackConfig:
    """The configuration a running stack wrote into its state directory."""
    data = json.loads(paths.config_file.read_text(encoding="utf-8"))
    return StackConfig.model_validate(data)


def write_running_config(paths: StatePaths, config: StackConfig) -> None:
    paths.config_file.write_text(config.model_dump_json(indent=2), encoding="utf-8")
