"""`datadrill stack up | status | down` against real stacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, start_stack, stop_stack
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration


def test_status_lists_every_component_with_endpoint_and_health(stack: StackClient) -> None:
    result = run_cli("stack", "status", "--json", "--state-dir", str(stack.paths.root))
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(result.stdout)
    by_name = {c["name"]: c for c in status["components"]}
    expected = {
        "kafka",
        "kafka-broker-1",
        "kafka-broker-2",
        "kafka-broker-3",
        "catalog",
        "query-engine",
        "source-db",
        "workload",
        "relay",
        "sink",
        "control",
    }
    assert expected <= set(by_name)
    assert all(c["healthy"] for c in status["components"]), status
    for broker in (1, 2, 3):
        host, port = by_name[f"kafka-broker-{broker}"]["endpoint"].split(":")
        assert host == "127.0.0.1" and int(port) > 0
    assert by_name["control"]["endpoint"].startswith("http://127.0.0.1:")


def test_status_table_for_people(stack: StackClient) -> None:
    result = run_cli("stack", "status", "--state-dir", str(stack.paths.root))
    assert result.returncode == 0, result.stderr
    assert "all components healthy" in result.stdout
    assert "kafka-broker-2" in result.stdout


def test_second_up_in_same_directory_says_where(stack: StackClient) -> None:
    result = run_cli("stack", "up", "--state-dir", str(stack.paths.root))
    assert result.returncode == 1
    assert "already running" in result.stderr
    assert str(stack.paths.root) in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr


def test_data_flows_into_the_table(stack: StackClient) -> None:
    from conftest import sink_rows
    from datadrill.engine.wait import wait_until

    before = sink_rows(stack)
    wait_until(lambda: sink_rows(stack) > before + 100, timeout=60, what="rows in dwh.orders")


def test_two_stacks_side_by_side_and_down_leaves_nothing(stack: StackClient, tmp_path: Path) -> None:
    second = start_stack(tmp_path / "other")
    try:
        assert second.bootstrap_servers != stack.bootstrap_servers
        assert second.state["control_url"] != stack.state["control_url"]
        assert second.status().healthy
        assert stack.status().healthy
    finally:
        stop_stack(second)  # asserts no process of its group survives
    gone = run_cli("stack", "status", "--state-dir", str(tmp_path / "other"))
    assert gone.returncode == 1
    assert "no stack is running" in gone.stderr
    # The first stack is untouched.
    assert stack.status().healthy


def test_down_without_a_stack_is_harmless(tmp_path: Path) -> None:
    result = run_cli("stack", "down", "--state-dir", str(tmp_path / "nothing"))
    assert result.returncode == 0
    assert "no stack was running" in result.stdout
