"""Bad input: one clear message, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli

pytestmark = pytest.mark.integration


def test_unknown_option(tmp_path: Path) -> None:
    result = run_cli("stack", "up", "--brokers-please", "4", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--brokers-please" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_config_names_file_field_value_and_allowed(tmp_path: Path) -> None:
    config = tmp_path / "drill.toml"
    config.write_text("[kafka]\nbrokers = 0\n")
    result = run_cli("stack", "up", "--config", str(config), "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert str(config) in message.replace(" ", "") or config.name in message
    assert "kafka.brokers" in message and "0" in message and "greater than or equal to 1" in message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s" / "stack.json").exists()


def test_unknown_config_field_lists_allowed(tmp_path: Path) -> None:
    config = tmp_path / "drill.toml"
    config.write_text("[workload]\nrat = 10\n")
    result = run_cli("stack", "up", "--config", str(config), "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "workload.rat" in message and "canary_interval_s" in message and "rate" in message


def test_toml_syntax_error(tmp_path: Path) -> None:
    config = tmp_path / "drill.toml"
    config.write_text("[kafka\nbrokers = 3\n")
    result = run_cli("stack", "up", "--config", str(config), "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    assert "not valid TOML" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_value(tmp_path: Path) -> None:
    result = run_cli("stack", "up", "--contract-format", "xml", "--state-dir", str(tmp_path / "s"))
    assert result.returncode == 2
    assert "contract.format" in result.stderr and "xml" in result.stderr


def test_unreachable_postgres_dsn(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    result = run_cli(
        "stack",
        "up",
        "--catalog-uri",
        "postgresql://drill:secret@127.0.0.1:1/catalog",
        "--state-dir",
        str(tmp_path / "s"),
    )
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "catalog.uri" in message and "cannot connect to PostgreSQL" in message
    assert "secret" not in message  # passwords are never echoed
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "s" / "stack.json").exists()
