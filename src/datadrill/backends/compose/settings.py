"""What a compose stack is made of: broker count, host ports, pinned images, credentials.

Every client outside the compose network goes through Toxiproxy: each Kafka broker
advertises its own proxy's address, and PostgreSQL and Trino are reached through proxies
too, so a network fault can never be bypassed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Pinned by version (never "latest"): a game day must be repeatable.
IMAGES: dict[str, str] = {
    "kafka": "apache/kafka:3.9.1",
    "schema-registry": "confluentinc/cp-schema-registry:7.7.1",
    "postgres": "postgres:16.4-alpine",
    "minio": "minio/minio:RELEASE.2024-10-13T13-34-11Z",
    "minio-init": "minio/mc:RELEASE.2024-10-08T09-37-26Z",
    "trino": "trinodb/trino:464",
    "toxiproxy": "ghcr.io/shopify/toxiproxy:2.12.0",
}

# Every broker is also a KRaft controller, so the broker count is the quorum's voter count.
# A quorum needs a majority of its voters: 2 voters cannot lose one (the survivor is no
# majority, the metadata log stops), so BrokerLoss would hang the cluster instead of
# testing failover. 1 (no failover to test) and 3 (survives one loss) are honest.
BROKER_COUNTS = (1, 3)

# JVM heaps, bounded so the whole stack fits the README's "~4 GB" (the images' defaults:
# Kafka 1 GB per broker, Trino 80% of the host's memory).
KAFKA_HEAP_OPTS = "-Xms384m -Xmx384m"
SCHEMA_REGISTRY_HEAP_OPTS = "-Xms256m -Xmx256m"
TRINO_MAX_HEAP = "-Xmx1G"


class ComposeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    brokers: int = Field(3, description="Kafka brokers (KRaft, each also a controller): 1 or 3")
    project: str = Field("datadrill", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # Host ports, all published by the toxiproxy container except the admin UIs.
    toxiproxy_api_port: int = Field(8474, ge=1024, le=65535)
    kafka_proxy_base_port: int = Field(19091, ge=1024, le=65000, description="broker N is at base + N - 1")
    postgres_proxy_port: int = Field(15432, ge=1024, le=65535)
    postgres_port: int = Field(15433, ge=1024, le=65535, description="direct, for the harness only")
    source_proxy_port: int = Field(
        15434, ge=1024, le=65535, description="the source database for the platform (a SourceOutage cuts it)"
    )
    trino_proxy_port: int = Field(18080, ge=1024, le=65535)
    schema_registry_port: int = Field(18081, ge=1024, le=65535)
    minio_port: int = Field(19000, ge=1024, le=65535)
    database_user: str = "drill"
    # Throwaway credentials of containers bound to 127.0.0.1 (not secrets).
    database_password: str = "drill"  # noqa: S105
    catalog_database: str = "catalog"
    source_database: str = "source"
    s3_access_key: str = "drill"
    s3_secret_key: str = "drilldrill"  # noqa: S105 - MinIO wants at least 8 characters
    bucket: str = "warehouse"
    # KRaft cluster id: 16 bytes, base64url without padding.
    kafka_cluster_id: str = "ZGF0YWRyaWxsLWthZmthMQ"

    @field_validator("brokers")
    @classmethod
    def _quorum(cls, value: int) -> int:
        if value not in BROKER_COUNTS:
            raise ValueError(
                f"brokers = {value}: allowed are 1 or 3 (each broker is a KRaft controller; "
                "2 voters cannot lose one)"
            )
        return value

    def broker_names(self) -> list[str]:
        return [f"kafka-{n}" for n in range(1, self.brokers + 1)]

    def broker_proxy_port(self, broker: int) -> int:
        return self.kafka_proxy_base_port + broker - 1

    @property
    def bootstrap_servers(self) -> str:
        """What clients on the host use: every broker's proxy."""
        return ",".join(f"127.0.0.1:{self.broker_proxy_port(n)}" for n in range(1, self.brokers + 1))

    @property
    def catalog_uri(self) -> str:
        """The pyiceberg SQL catalog on PostgreSQL, through its proxy."""
        return (
            f"postgresql+psycopg2://{self.database_user}:{self.database_password}"
            f"@127.0.0.1:{self.postgres_proxy_port}/{self.catalog_database}"
        )

    @property
    def direct_catalog_uri(self) -> str:
        """The catalog without the proxy: reverts and checks (see ExternalConfig)."""
        return (
            f"postgresql+psycopg2://{self.database_user}:{self.database_password}"
            f"@127.0.0.1:{self.postgres_port}/{self.catalog_database}"
        )

    def external(self) -> dict[str, object]:
        """The ``[external]`` section that points datadrill's platform at this stack."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "brokers": self.brokers,
            "catalog_uri": self.catalog_uri,
            "direct_catalog_uri": self.direct_catalog_uri,
            "trino_url": self.trino_url,
            "toxiproxy_url": self.toxiproxy_url,
            "schema_registry_url": self.schema_registry_url,
            "warehouse": f"s3://{self.bucket}",
            "s3_endpoint": self.s3_endpoint,
            "s3_access_key_id": self.s3_access_key,
            "s3_secret_access_key": self.s3_secret_key,
            "compose_project": self.project,
        }

    @property
    def source_uri(self) -> str:
        """The ``source`` database of the same PostgreSQL, direct: the harness's path and the
        ``[source] uri`` of ``--source postgresql`` (the platform goes through the "source"
        proxy, at :attr:`source_proxy_port`)."""
        return (
            f"postgresql://{self.database_user}:{self.database_password}"
            f"@127.0.0.1:{self.postgres_port}/{self.source_database}"
        )

    @property
    def trino_url(self) -> str:
        return f"http://127.0.0.1:{self.trino_proxy_port}"

    @property
    def trino_host_port(self) -> tuple[str, int]:
        return "127.0.0.1", self.trino_proxy_port

    @property
    def schema_registry_url(self) -> str:
        return f"http://127.0.0.1:{self.schema_registry_port}"

    @property
    def toxiproxy_url(self) -> str:
        return f"http://127.0.0.1:{self.toxiproxy_api_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.minio_port}"
