"""Scenario modules: loaded, validated, and every mistake named with file, field and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from datadrill.engine.loader import discover, load_scenario
from datadrill.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
HEADER = "from datadrill.model import *\n"
GOOD = """
SCENARIO = Scenario(
    name="ok",
    slos=(SLO("q", sli=QuerySuccess(), objective=0.999),),
    schedule=(DeleteCatalogEntry(at_s=1),),
)
"""


def _write(tmp_path: Path, body: str, name: str = "s.py") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def test_the_shipped_scenarios_load() -> None:
    paths = discover(ROOT / "scenarios")
    names = {load_scenario(p).name for p in paths}
    assert {"metadata-loss", "metadata-files-loss", "metadata-loss-reregister", "calibration"} <= names


def test_a_good_module_loads(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, GOOD))
    assert scenario.name == "ok"
    assert scenario.faults[0].kind == "metadata.catalog_entry"


@pytest.mark.parametrize(
    ("body", "field", "value", "allowed"),
    [
        (
            GOOD.replace("at_s=1", "at_s=-3"),
            "DeleteCatalogEntry.at_s (line 6)",
            "-3",
            "greater than or equal to 0",
        ),
        (GOOD.replace("objective=0.999", "objective=1.5"), "SLO.objective (line 5)", "1.5", "less than 1"),
        (
            GOOD.replace("QuerySuccess()", "Freshness(max_age_s=10, colour='red')"),
            "Freshness.colour",
            "red",
            "unknown field",
        ),
        (
            GOOD.replace('name="ok"', 'name="Not A Slug"'),
            "Scenario.name",
            "Not A Slug",
            "should match pattern",
        ),
        (
            GOOD.replace("DeleteCatalogEntry(at_s=1)", "DeleteCatalogEntry(at_s=1, table='orders')"),
            "DeleteCatalogEntry.table",
            "orders",
            "should match pattern",
        ),
        (
            GOOD.replace(
                "schedule=(DeleteCatalogEntry(at_s=1),)",
                "schedule=(DeleteCatalogEntry(at_s=1),),"
                " production=ProductionVolume(events_per_s=1000, table_rows=10**9, workers=0)",
            ),
            "ProductionVolume.workers",
            "0",
            "greater than or equal to 1",
        ),
        (
            GOOD.replace("schedule=(DeleteCatalogEntry(at_s=1),)", "schedule=(TakeCatalogBackup(at_s=0),)"),
            "Scenario",
            "whole object",
            "at least one fault",
        ),
    ],
)
def test_mistakes_name_file_field_value_and_allowed(
    tmp_path: Path, body: str, field: str, value: str, allowed: str
) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    message = str(info.value)
    assert str(path) in message
    assert field in message
    assert value in message
    assert allowed in message


def test_restore_of_a_backup_never_taken(tmp_path: Path) -> None:
    body = GOOD.replace(
        "schedule=(DeleteCatalogEntry(at_s=1),),",
        "schedule=(DeleteCatalogEntry(at_s=1),), "
        "recovery=Runbook(steps=(RestoreCatalogBackup(backup='nightly'),)),",
    )
    with pytest.raises(ConfigError, match="restores backup 'nightly' but the schedule takes no backups"):
        load_scenario(_write(tmp_path, body))


def test_replay_needs_the_sink_paused(tmp_path: Path) -> None:
    body = GOOD.replace(
        "schedule=(DeleteCatalogEntry(at_s=1),),",
        "schedule=(DeleteCatalogEntry(at_s=1),), recovery=Runbook(steps=(ReplayKafka(),)),",
    )
    with pytest.raises(ConfigError, match="pause the sink before it"):
        load_scenario(_write(tmp_path, body))


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 3.*not valid Python"):
        load_scenario(_write(tmp_path, "\nSCENARIO = (\n"))


def test_module_that_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 2.*NameError.*raised when loaded"):
        load_scenario(_write(tmp_path, "SCENARIO = Scenaryo()\n"))


def test_missing_scenario_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must define SCENARIO"):
        load_scenario(_write(tmp_path, "X = 1\n"))


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.py")
    (tmp_path / "s.yaml").write_text("x: 1")
    with pytest.raises(ConfigError, match="Python module"):
        load_scenario(tmp_path / "s.yaml")


def test_discover_skips_helpers(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.py")
    _write(tmp_path, GOOD, "_helpers.py")
    assert [p.name for p in discover(tmp_path)] == ["a.py"]
