"""System binaries some tests need, and skipping those tests, with the reason, where the
binary is absent: a PostgreSQL server (tests marked ``postgres``), Chromium (tests
marked ``chromium``) and Prometheus with promtool (tests marked ``prometheus``).

``make test`` installs both when it can (scripts/install-system-deps.sh, root with apt, as
in CI), so there they run; elsewhere they are skipped rather than failed. Both places look
where ``POSTGRES_GLOB``, ``CHROMIUM_BIN`` and ``PROMETHEUS_BIN`` say, by default the Debian packages' paths.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_POSTGRES_GLOB = "/usr/lib/postgresql/*/bin/postgres"
DEFAULT_CHROMIUM_BIN = "/usr/bin/chromium"
DEFAULT_PROMETHEUS_BIN = "/usr/bin/prometheus"
INSTALL = "`make test` as root installs it, or `sudo apt-get install {package}`"


def _postgres_glob() -> str:
    return os.environ.get("POSTGRES_GLOB", DEFAULT_POSTGRES_GLOB)


def _chromium_bin() -> Path:
    return Path(os.environ.get("CHROMIUM_BIN", DEFAULT_CHROMIUM_BIN))


def _prometheus_bin() -> Path:
    return Path(os.environ.get("PROMETHEUS_BIN", DEFAULT_PROMETHEUS_BIN))


def find_prometheus() -> Path | None:
    """The Prometheus server binary, if it and promtool (beside it) are installed."""
    path = _prometheus_bin()
    promtool = path.with_name("promtool")
    ok = all(p.is_file() and os.access(p, os.X_OK) for p in (path, promtool))
    return path if ok else None


def find_postgres_bindir() -> Path | None:
    """The directory of the PostgreSQL server binaries (the newest version), or None."""
    pattern = Path(_postgres_glob())
    found = sorted(Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor))))
    return found[-1].parent if found else None


def find_chromium() -> Path | None:
    path = _chromium_bin()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def missing_reason(marker: str) -> str | None:
    """Why the tests with this marker cannot run here, or None when they can."""
    if marker == "postgres" and find_postgres_bindir() is None:
        return (
            f"PostgreSQL server binaries not found ({_postgres_glob()}); needs the Debian package "
            "postgresql: " + INSTALL.format(package="postgresql")
        )
    if marker == "chromium" and find_chromium() is None:
        return f"{_chromium_bin()} not found; needs the Debian package chromium: " + INSTALL.format(
            package="chromium"
        )
    if marker == "prometheus" and find_prometheus() is None:
        return (
            f"{_prometheus_bin()} (and promtool beside it) not found; needs the Debian package "
            "prometheus: " + INSTALL.format(package="prometheus")
        )
    return None


def pytest_configure(config: pytest.Config) -> None:
    """No calibration in any test, in process or in the CLI processes tests start (they
    inherit the environment). A run with a production volume calibrates the projection's
    cost models first when this machine has none cached (:mod:`datadrill.engine.calibration`,
    10-30 s of both cores at 1 M rows): on a fresh CI machine that lands inside whichever
    test runs such a scenario first, and it would cache a loaded test machine's figures in
    the user's cache. Tests of the calibration pass their own environment, sizes and cache
    directory, or hand the runner a calibration."""
    os.environ["DATADRILL_CALIBRATION"] = "off"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {marker: missing_reason(marker) for marker in ("postgres", "chromium", "prometheus")}
    for item in items:
        for marker, reason in reasons.items():
            if reason is not None and item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


def _found(path: Path | None, marker: str) -> Path:
    if path is None:  # the marker skips the test before it gets here
        pytest.fail(f"{missing_reason(marker)}; a test that needs it must be marked {marker}")
    return path


@pytest.fixture(scope="session")
def postgres_bindir() -> Path:
    """The PostgreSQL server binaries; for tests marked ``postgres``."""
    return _found(find_postgres_bindir(), "postgres")


@pytest.fixture(scope="session")
def chromium_bin() -> Path:
    """The Chromium executable; for tests marked ``chromium``."""
    return _found(find_chromium(), "chromium")


@pytest.fixture(scope="session")
def prometheus_bin() -> Path:
    """The Prometheus server binary (promtool is beside it); for tests marked ``prometheus``."""
    return _found(find_prometheus(), "prometheus")
