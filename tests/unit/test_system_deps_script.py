"""scripts/install-system-deps.sh (what `make test` runs first) and the skip it leads to.

The script runs under a PATH of stubs only (``id``, and ``apt-get`` where wanted; all else
it uses is built into bash), with ``POSTGRES_GLOB`` and ``CHROMIUM_BIN`` pointed into a
temporary directory, so nothing is installed and nothing real is looked at. The skip side
runs tests/conftest.py in an inner pytest (pytester) against the same variables.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parents[1]
SCRIPT = TESTS.parent / "scripts" / "install-system-deps.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _binaries(root: Path, *, postgres: bool, chromium: bool) -> dict[str, str]:
    """POSTGRES_GLOB and CHROMIUM_BIN under root, the binaries there or not."""
    root.mkdir(parents=True, exist_ok=True)
    if postgres:
        bindir = root / "postgresql" / "15" / "bin"
        bindir.mkdir(parents=True)
        _stub(bindir, "postgres", "exit 0")
    if chromium:
        _stub(root, "chromium", "exit 0")
    # Prometheus (server and promtool) present: these tests are about the other two.
    _stub(root, "prometheus", "exit 0")
    _stub(root, "promtool", "exit 0")
    return {
        "POSTGRES_GLOB": str(root / "postgresql" / "*" / "bin" / "postgres"),
        "CHROMIUM_BIN": str(root / "chromium"),
        "PROMETHEUS_BIN": str(root / "prometheus"),
    }


def _run(
    tmp_path: Path, *, uid: int, apt_exit: int | None, **present: bool
) -> subprocess.CompletedProcess[str]:
    """The script as user uid; apt-get a stub exiting apt_exit (None: no apt-get at all)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    _stub(stubs, "id", f"echo {uid}")
    if apt_exit is not None:
        _stub(stubs, "apt-get", f'echo "$@" >> {tmp_path / "apt.log"}\nexit {apt_exit}')
    env = {"PATH": str(stubs), **_binaries(tmp_path / "root", **present)}
    return subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def _apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


def _assert_skip_lines(result: subprocess.CompletedProcess[str]) -> None:
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    postgres, chromium = lines
    assert "postgresql not installed" in postgres and "tests marked postgres will be skipped" in postgres
    assert "sudo apt-get install postgresql" in postgres
    assert "chromium not installed" in chromium and "tests marked chromium will be skipped" in chromium
    assert "sudo apt-get install chromium" in chromium


def test_not_root_missing_both_says_what_is_skipped_and_exits_0(tmp_path: Path) -> None:
    result = _run(tmp_path, uid=1000, apt_exit=0, postgres=False, chromium=False)
    assert result.returncode == 0, result.stderr
    _assert_skip_lines(result)
    assert _apt_calls(tmp_path) == []


def test_root_without_apt_says_what_is_skipped_and_exits_0(tmp_path: Path) -> None:
    result = _run(tmp_path, uid=0, apt_exit=None, postgres=False, chromium=False)
    assert result.returncode == 0, result.stderr
    _assert_skip_lines(result)


def test_one_missing_one_line(tmp_path: Path) -> None:
    result = _run(tmp_path, uid=1000, apt_exit=None, postgres=True, chromium=False)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert "chromium not installed" in line


def test_root_with_apt_failing_is_an_error(tmp_path: Path) -> None:
    result = _run(tmp_path, uid=0, apt_exit=100, postgres=False, chromium=True)
    assert result.returncode != 0
    assert _apt_calls(tmp_path) == ["update -qq"]


def test_root_with_apt_installs_what_is_missing(tmp_path: Path) -> None:
    # The stub "installs" nothing, so the binaries are still absent afterwards: an error too.
    result = _run(tmp_path, uid=0, apt_exit=0, postgres=False, chromium=True)
    assert result.returncode != 0
    assert _apt_calls(tmp_path) == ["update -qq", "install -y -qq --no-install-recommends postgresql"]
    assert "did not provide the binaries" in result.stderr


def test_nothing_missing_does_nothing(tmp_path: Path) -> None:
    result = _run(tmp_path, uid=0, apt_exit=0, postgres=True, chromium=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert _apt_calls(tmp_path) == []


# -- the skip: tests/conftest.py in an inner pytest ------------------------------------------

INNER_TESTS = """
    import pytest

    @pytest.mark.postgres
    def test_postgres(postgres_bindir):
        assert (postgres_bindir / "postgres").is_file()

    @pytest.mark.chromium
    def test_chromium(chromium_bin):
        assert chromium_bin.name == "chromium"

    def test_needs_neither():
        pass
    """


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest((TESTS / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyprojecttoml(
        textwrap.dedent(
            """
            [tool.pytest.ini_options]
            addopts = "--strict-markers -ra"
            markers = ["postgres: needs PostgreSQL", "chromium: needs Chromium"]
            filterwarnings = ["error"]
            """
        )
    )
    pytester.makepyfile(test_inner=textwrap.dedent(INNER_TESTS))
    return pytester


def test_marked_tests_are_skipped_naming_binary_and_package(
    inner: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _binaries(tmp_path, postgres=False, chromium=False).items():
        monkeypatch.setenv(name, value)
    result = inner.runpytest()
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED*PostgreSQL server binaries not found ({tmp_path}/postgresql/*/bin/postgres)*"
            "Debian package postgresql*sudo apt-get install postgresql*",
            f"SKIPPED*{tmp_path}/chromium not found*Debian package chromium*sudo apt-get install chromium*",
        ],
        consecutive=False,
    )


def test_marked_tests_run_where_the_binaries_are(
    inner: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _binaries(tmp_path, postgres=True, chromium=True).items():
        monkeypatch.setenv(name, value)
    inner.runpytest().assert_outcomes(passed=3)
