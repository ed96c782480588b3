"""The pytest plugin loads in every pytest session of anyone who installs datadrill, so
importing it must not drag in Kafka, DuckDB, pyiceberg or Docker."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("confluent_kafka", "duckdb", "pyiceberg", "pyarrow", "docker", "testcontainers", "sqlalchemy")


def test_importing_the_plugin_is_cheap() -> None:
    code = f"import sys, datadrill.pytest_plugin; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_plugin_is_registered_for_pytest() -> None:
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "datadrill"]
    assert entry.value == "datadrill.pytest_plugin"
