"""The compose backend: real Kafka (KRaft), Schema Registry, PostgreSQL, MinIO, Trino and
Toxiproxy, from ``docker-compose.yml``, driven through testcontainers.

- :mod:`settings`: what can be chosen (broker count, host ports, pinned images).
- :mod:`render`: the compose file and every service's configuration, generated from the
  settings (the repository's ``docker-compose.yml`` and ``compose/`` are the default
  rendering, and a test keeps them equal).
- :mod:`readiness`: when a service is really ready (Trino answers and has an active
  worker; Kafka lists every broker; the catalog schema exists).
- :mod:`backend`: bring it up and down; without a Docker engine it says so and stops.
"""
