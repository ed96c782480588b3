"""Faults are plugins: built-ins and third-party entry points share one registry, and a
scenario may schedule a plugin's spec."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from datadrill.faults import registry
from datadrill.faults.base import FaultPlugin
from datadrill.faults.registry import PluginError, plugin_for, plugins

PLUGIN_MODULE = textwrap.dedent(
    """
    from typing import Literal
    from pydantic.dataclasses import dataclass

    @dataclass(frozen=True)
    class FillDisk:
        at_s: float
        duration_s: float = 1.0
        kind: Literal["acme.fill_disk"] = "acme.fill_disk"

        def describe(self) -> str:
            return "disk filled"

    class FillDiskFault:
        kind = "acme.fill_disk"
        spec_type = FillDisk

        def prepare(self, spec, context):
            return {}

        def apply(self, spec, context, data):
            return {}

        def revert(self, data, context):
            return "disk emptied"

        def exclusive_key(self, spec):
            return "disk"

        def confirm(self, spec, context, data, within_s):
            return "disk full"

        def target(self, spec, context):
            return "the data disk"

    class NotAPlugin:
        kind = "acme.broken"
    """
)


def _install(tmp_path: Path, entry: str) -> None:
    (tmp_path / "acme_faults.py").write_text(PLUGIN_MODULE)
    dist = tmp_path / "acme_faults-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-faults\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[datadrill.faults]\n{entry}\n")


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    plugins.cache_clear()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_faults", None)
        plugins.cache_clear()


def test_builtins_follow_the_protocol() -> None:
    for kind, plugin in plugins().items():
        assert isinstance(plugin, FaultPlugin)
        assert plugin.kind == kind


def test_a_third_party_fault_registers_through_an_entry_point(isolated: Path) -> None:
    _install(isolated, "fill_disk = acme_faults:FillDiskFault")
    plugin = plugin_for("acme.fill_disk")
    assert plugin.kind == "acme.fill_disk"
    from datadrill.model import SLO, QuerySuccess, Scenario

    spec = plugin.spec_type(at_s=1)
    scenario = Scenario(name="disk", slos=(SLO("q", sli=QuerySuccess(), objective=0.99),), schedule=(spec,))
    assert scenario.faults == (spec,)


def test_a_broken_plugin_is_named(isolated: Path) -> None:
    _install(isolated, "broken = acme_faults:NotAPlugin")
    with pytest.raises(
        PluginError, match=r"'broken' \(acme_faults:NotAPlugin\) does not implement FaultPlugin"
    ):
        plugins()


def test_an_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(PluginError, match=r"known kinds: .*metadata\.catalog_entry"):
        plugin_for("acme.nothing")


def test_entry_point_group_name() -> None:
    assert registry.ENTRY_POINT_GROUP == "datadrill.faults"
