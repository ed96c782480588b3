"""datadrill's pytest plugin: resilience suites as ordinary pytest.

Registered through the ``pytest11`` entry point, so installing datadrill is enough. It is
cheap to import: Kafka, DuckDB and the stack are imported only when a drill runs.

- ``pytest scenarios/`` collects scenario modules (a module with a top-level ``SCENARIO``)
  as tests; a run that is not PASSED fails with a short summary (the reasons, each SLO
  observed vs objective, time to detect and recover) and the report's path.
- Fixtures: ``drill_stack`` (session-scoped stack) and ``drill`` (runs a scenario module or
  an inline :class:`~datadrill.model.Scenario` and returns its measurements).
- Marker: ``@pytest.mark.drill`` (scenario items carry it, so ``-m "not drill"`` skips them).
- Options: ``--drill-stack`` (``embedded``: a throwaway stack for the session; or the state
  directory of a stack started with ``datadrill stack up``), ``--drill-report-dir``,
  ``--drill-seed``.
- JUnit XML (``--junitxml``) carries ``time_to_detect_s``, ``time_to_recover_s``, the
  verdict and the report path as properties of each drill test.

Example::

    def test_metadata_loss(drill):
        report = drill.run("scenarios/metadata_loss.py")
        assert report.ttr_s is not None and report.ttr_s < 60
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from datadrill.model.report import RunReport
    from datadrill.model.scenario import Scenario
    from datadrill.stack.port import Stack

EMBEDDED = "embedded"
# Backends a session stack can be started on; anything else is a running stack's state dir.
BACKENDS = ("embedded", "external", "compose")
# A scenario module assigns SCENARIO at the top level; nothing else needs importing to tell.
_SCENARIO_ASSIGNMENT = re.compile(r"^SCENARIO\s*(:[^=]*)?=", re.MULTILINE)


@dataclass(frozen=True)
class DrillSettings:
    stack: str  # "embedded" or a state directory
    report_dir: Path
    seed: int


_SETTINGS = pytest.StashKey[DrillSettings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("datadrill", "datadrill game days")
    group.addoption(
        "--drill-stack",
        default=EMBEDDED,
        help="'embedded' (default), 'external' or 'compose': a throwaway stack of that backend for "
        "the session; or the state "
        "directory of a stack started with 'datadrill stack up'",
    )
    group.addoption(
        "--drill-report-dir",
        default="drill-reports",
        help="where each drill's reports go, one directory per test (default: drill-reports)",
    )
    group.addoption(
        "--drill-seed", default="0", help="seed recorded with every run (a whole number, default 0)"
    )


def _settings(config: pytest.Config) -> DrillSettings:
    stack = str(config.getoption("--drill-stack"))
    if stack == "compose":
        # Refused before any test runs, as `datadrill run --stack compose` is.
        from datadrill.backends.compose.services import docker_problem

        problem = docker_problem()
        if problem is not None:
            raise pytest.UsageError(
                f"--drill-stack compose: {problem}; use 'embedded' or the state directory of a "
                "running stack"
            )
    if stack not in BACKENDS:
        state_dir = Path(stack)
        if not (state_dir / "stack.json").is_file():
            raise pytest.UsageError(
                f"--drill-stack {stack}: no running stack there (no stack.json); use 'embedded' "
                "or the state directory of a stack started with 'datadrill stack up'"
            )
    raw_seed = str(config.getoption("--drill-seed"))
    try:
        seed = int(raw_seed)
    except ValueError:
        raise pytest.UsageError(
            f"--drill-seed {raw_seed}: expected a whole number, e.g. --drill-seed 42"
        ) from None
    if seed < 0:
        raise pytest.UsageError(f"--drill-seed {raw_seed}: expected a whole number >= 0")
    report_dir = Path(str(config.getoption("--drill-report-dir")))
    if report_dir.exists() and not report_dir.is_dir():
        raise pytest.UsageError(f"--drill-report-dir {report_dir}: exists and is not a directory")
    return DrillSettings(stack=stack, report_dir=report_dir, seed=seed)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "drill: a datadrill game day (runs a scenario on a stack)")
    config.stash[_SETTINGS] = _settings(config)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def drill_stack(pytestconfig: pytest.Config) -> Iterator[Stack]:
    """The stack drills run on: attached, or started for the session and stopped after it."""
    from datadrill.session import stack_session
    from datadrill.stack.client import StackClient

    settings = pytestconfig.stash[_SETTINGS]
    if settings.stack in BACKENDS:
        # A throwaway stack of that backend for the session (compose: needs Docker).
        with stack_session(backend=settings.stack, flag="--drill-stack") as session:
            yield session.stack
        return
    yield StackClient.attach(Path(settings.stack))


class DrillFailed(AssertionError):
    """A drill whose verdict is not PASSED; the message is the short summary."""


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:120] or "drill"


def summarize(report: RunReport) -> str:
    """The few lines a failing test shows: the drill's verdict and why (its expectations,
    a stop condition, a fault that did not land), then what the fault cost each SLO — said
    apart, so a burned objective is not read as a failed drill."""
    from datadrill.reporting.formatting import verdict_lines

    headline, *rest = verdict_lines(report)
    return "\n".join([f"drill '{report.scenario}' {headline}", *(f"  {line}" for line in rest)])


class Drill:
    """Runs scenarios for one test on the session's stack and writes their reports."""

    def __init__(self, stack: Stack, settings: DrillSettings, node: pytest.Item) -> None:
        self.stack = stack
        self.settings = settings
        self.node = node
        self.reports: list[RunReport] = []
        self.seed = settings.seed  # --drill-seed, e.g. for platform_machine(seed=drill.seed)

    def run(self, scenario: Scenario | str | Path, *, must_pass: bool = True) -> RunReport:
        """Run a scenario module (path) or an inline Scenario; return its measurements.

        With ``must_pass`` (the default) a verdict other than PASSED fails the test with
        the short summary; otherwise the report is returned whatever it says.
        """
        from datadrill.engine.loader import load_scenario
        from datadrill.engine.runner import Runner
        from datadrill.model.report import Verdict
        from datadrill.reporting import write_reports

        loaded = load_scenario(Path(scenario)) if isinstance(scenario, str | Path) else scenario
        run_dir = self.settings.report_dir / _safe_name(self.node.nodeid)
        if self.reports:
            run_dir = run_dir / f"{len(self.reports) + 1}-{loaded.name}"
        # Drills on a shared stack take turns (pytest-xdist workers, several sessions): the
        # stack's run lease admits one at a time and the others wait for it.
        report = Runner(
            loaded, stack=self.stack, run_dir=run_dir, seed=self.settings.seed, wait_for_stack=True
        ).run()
        written = write_reports(report, run_dir)
        self.reports.append(report)
        props = self.node.user_properties
        props.append(("drill_scenario", loaded.name))
        props.append(("drill_verdict", report.verdict.value))
        props.append(("time_to_detect_s", "" if report.ttd_s is None else f"{report.ttd_s:.3f}"))
        props.append(("time_to_recover_s", "" if report.ttr_s is None else f"{report.ttr_s:.3f}"))
        props.append(("drill_report", str(written.get("md", run_dir))))
        if must_pass and report.verdict is not Verdict.PASSED:
            raise DrillFailed(f"{summarize(report)}\n  report: {written.get('md', run_dir)}")
        return report


@pytest.fixture
def drill(request: pytest.FixtureRequest, drill_stack: Stack) -> Drill:
    """Run a scenario on the session's stack: ``drill.run(path_or_scenario) -> RunReport``."""
    return Drill(drill_stack, request.config.stash[_SETTINGS], request.node)


def pytest_itemcollected(item: pytest.Item) -> None:
    # Marked at collection, so "-m drill" and "-m 'not drill'" select by it.
    if "drill" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.drill)


# -- scenario modules as tests ---------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".py" or file_path.name.startswith(("test_", "_", "conftest")):
        return None
    try:
        text = file_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if "datadrill" not in text or not _SCENARIO_ASSIGNMENT.search(text):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        path = self.path

        # A real test function, so the drill fixture (and the session stack) come the
        # ordinary way, and -k, -m, --junitxml and xdist treat it like any other test.
        def drill_scenario(drill: Drill) -> None:
            drill.run(path)

        yield ScenarioItem.from_parent(self, name=path.stem, callobj=drill_scenario)


class ScenarioItem(pytest.Function):
    """One scenario module, run on the session's stack."""

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from datadrill.errors import ConfigError

        if isinstance(excinfo.value, DrillFailed | ConfigError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"drill: {self.path.name}"
