"""The public surface of ``datadrill``: exactly these names, all resolvable, cheap to import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import datadrill

EXPECTED_ALL = [
    "ConfigError",
    "ControlError",
    "DrillError",
    "EmbeddedStack",
    "KafkaMockUnavailable",
    "QueryFailed",
    "Stack",
    "StackAlreadyRunning",
    "StackClient",
    "StackConfig",
    "StackError",
    "StackNotRunning",
    "StackProcessDied",
    "StackStartFailed",
    "WaitTimeout",
    "__version__",
    "load_config",
]

HEAVY_MODULES = ("confluent_kafka", "pyiceberg", "duckdb")


def test_all_is_pinned() -> None:
    assert datadrill.__all__ == EXPECTED_ALL


def test_all_is_sorted_and_unique() -> None:
    assert datadrill.__all__ == sorted(set(datadrill.__all__))


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(datadrill, name) is not None


def test_lazy_exports_are_the_real_classes() -> None:
    from datadrill.stack.client import StackClient
    from datadrill.stack.port import Stack

    assert datadrill.StackClient is StackClient
    assert datadrill.EmbeddedStack is StackClient
    assert datadrill.Stack is Stack


def test_version_is_a_string() -> None:
    assert isinstance(datadrill.__version__, str)
    assert datadrill.__version__.count(".") >= 2


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        datadrill.Nope  # noqa: B018


def test_import_datadrill_does_not_import_heavy_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import datadrill\n"
        f"heavy = {list(HEAVY_MODULES)!r}\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
