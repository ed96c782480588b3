"""examples/own_pipeline/ as a user runs it: a copy of the directory, `datadrill stack up`
there (the enricher starts beside the reference platform), the three scenarios through the
CLI, their reports read back. Each must pass and verify the enricher's own table; the
crash loop restarts the enricher three times; the reset moves its group back to the
earliest offsets and the table still holds every order once.

Timings are the scenarios' own generous expectations, never asserted here to the second."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_pipeline"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("own_pipeline")
    shutil.copytree(EXAMPLE, workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".datadrill", "__pycache__"))
    up = run_cli("stack", "up", cwd=workdir, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield workdir
    finally:
        run_cli("stack", "down", cwd=workdir, timeout=120)


def _run(workdir: Path, scenario: str) -> dict[str, Any]:
    out = workdir / "reports" / scenario
    result = run_cli("run", f"scenarios/{scenario}.py", "--report-dir", str(out), cwd=workdir, timeout=600)
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return report


def _events(workdir: Path) -> list[dict[str, Any]]:
    lines = (workdir / ".datadrill" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _verified_enriched_table(report: dict[str, Any]) -> None:
    integrity = report["integrity"]
    assert integrity["verified"], integrity
    assert integrity["compared_rows"] > 0
    assert "dwh.orders_enriched" in integrity["detail"]


def test_the_enricher_runs_on_the_stack(pipeline: Path) -> None:
    status = run_cli("stack", "status", "--json", cwd=pipeline)
    assert status.returncode == 0, status.stderr
    assert "enricher" in status.stdout
    log = (pipeline / ".datadrill" / "logs" / "enricher.log").read_text(encoding="utf-8")
    assert "enricher ready" in log
    assert any(e["event"] == "component_ready" and e.get("component") == "enricher" for e in _events(pipeline))


def test_hang(pipeline: Path) -> None:
    report = _run(pipeline, "hang")
    assert report["verdict"] == "passed"
    _verified_enriched_table(report)


def test_crash_loop(pipeline: Path) -> None:
    before = sum(1 for e in _events(pipeline) if e["event"] == "process_exited" and e["component"] == "enricher")
    report = _run(pipeline, "crash_loop")
    assert report["verdict"] == "passed"
    kills = [e for e in _events(pipeline) if e["event"] == "process_exited" and e["component"] == "enricher"]
    assert len(kills) - before == 3
    _verified_enriched_table(report)
    assert all(e["cause"] == "killed by SIGKILL" for e in kills[before:])


def test_reset_offsets_reprocesses_without_doubling(pipeline: Path) -> None:
    report = _run(pipeline, "reset_offsets")
    assert report["verdict"] == "passed"
    _verified_enriched_table(report)
    steps = [phase for phase in report["phases"] if "offsets" in json.dumps(phase)]
    assert steps, report["phases"]
