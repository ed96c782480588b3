"""The compose stack for real: needs a Docker engine, and is skipped (with the reason in
the test summary) where none answers."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from datadrill.stacks.compose.backend import ComposeBackend, docker_problem
from datadrill.stacks.compose.settings import ComposeSettings

_NO_ENGINE = docker_problem()

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(_NO_ENGINE is not None, reason=f"no Docker engine answers here: {_NO_ENGINE}"),
]


@pytest.mark.timeout(1200)
def test_the_compose_stack_comes_up_ready_behind_its_proxies(tmp_path: Path) -> None:
    settings = ComposeSettings(brokers=1)
    backend = ComposeBackend(settings, tmp_path / "compose")
    try:
        states = backend.up(timeout_s=900)
        assert all(s.ready for s in states), states
        with urllib.request.urlopen(f"{settings.toxiproxy_url}/proxies", timeout=10) as response:
            proxies = json.loads(response.read())
        assert {"kafka-1", "catalog", "query"} <= set(proxies)
        import trino

        cursor = trino.dbapi.connect(host="127.0.0.1", port=settings.trino_proxy_port, user="test").cursor()
        cursor.execute("SHOW SCHEMAS FROM iceberg")
        assert cursor.fetchall()
    finally:
        backend.down()
