"""Loading scenario modules: a Python file under ``scenarios/`` that defines ``SCENARIO``.

Any mistake while loading (a wrong field, a bad value, a syntax error, no SCENARIO) becomes
one :class:`ConfigError` naming the file, the field (with its line), the value and what is
allowed.

With the stack's config (``load_scenario(path, config=load_config(...))``) the components
its faults and steps name are checked against the config's too, so a typo is refused
before any stack starts.

Example::

    scenario = load_scenario(Path("scenarios/metadata_loss.py"))
    scenario = load_scenario(Path("scenarios/hang.py"), config=load_config(Path("datadrill.toml")))
    # ConfigError: scenarios/hang.py: schedule[0].component = 'enrichr' is invalid: a component
    # of this stack: workload, relay, sink, enricher
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from pydantic import ValidationError

import datadrill.model
from datadrill.errors import ConfigError
from datadrill.model.scenario import Scenario

if TYPE_CHECKING:
    from datadrill.config import StackConfig

SCENARIO_VARIABLE = "SCENARIO"


def _line_in(path: Path, tb: TracebackType | None) -> int | None:
    """The last line of ``path`` in a traceback: where the scenario built the bad value."""
    line = None
    for frame in traceback.extract_tb(tb):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    return line


def _argument_name(model: str, index: int) -> str:
    """The field a positional argument of a model class fills: ``SLO("", ...)`` fills
    ``name``. pydantic names it by its position only."""
    cls = getattr(datadrill.model, model, None)
    if cls is not None and dataclasses.is_dataclass(cls):
        names = [field.name for field in dataclasses.fields(cls)]
        if 0 <= index < len(names):
            return names[index]
    return f"(argument {index + 1})"


def _from_validation(path: Path, exc: ValidationError) -> ConfigError:
    detail = exc.errors()[0]
    parts = list(detail["loc"])
    if parts and isinstance(parts[0], int):
        parts[0] = _argument_name(exc.title, parts[0])
    loc = ".".join(str(part) for part in parts)
    field = f"{exc.title}.{loc}" if loc else exc.title
    line = _line_in(path, exc.__traceback__)
    if line is not None:
        field += f" (line {line})"
    value = detail.get("input")
    if detail["type"] == "unexpected_keyword_argument":
        allowed = f"unknown field {loc!r} of {exc.title}"
        value = detail.get("input")
    elif detail["type"] == "missing_argument" or detail["type"] == "missing":
        allowed = "required field is missing"
        value = None
    else:
        allowed = detail["msg"].removeprefix("Value error, ")
    if isinstance(value, dict) or type(value).__name__ == "ArgsKwargs":
        value = "(the whole object)"
    return ConfigError(str(path), field, value, allowed)


def load_scenario(path: Path, *, config: StackConfig | None = None) -> Scenario:
    """Import a scenario module and return its validated ``SCENARIO``; with ``config``, the
    components it names must be the config's (reference and declared)."""
    if not path.is_file():
        raise ConfigError(str(path), "(file)", str(path), "no such scenario file")
    if path.suffix != ".py":
        raise ConfigError(str(path), "(file)", path.name, "a scenario is a Python module (.py)")
    module_name = f"datadrill_scenario_{path.stem}_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(str(path), "(file)", path.name, "cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ValidationError as exc:
        raise _from_validation(path, exc) from None
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno is not None else "(module)"
        raise ConfigError(str(path), where, (exc.text or "").strip(), f"not valid Python: {exc.msg}") from None
    except SystemExit as exc:
        # sys.exit() in a scenario module would end datadrill itself, with the module's code.
        line = _line_in(path, exc.__traceback__)
        where = f"line {line}" if line is not None else "(module)"
        allowed = f"the module called exit({exc.code!r}) when loaded; a scenario module defines SCENARIO"
        raise ConfigError(str(path), where, "SystemExit", allowed) from None
    except Exception as exc:  # noqa: BLE001 - anything a user module raises is bad input
        line = _line_in(path, exc.__traceback__)
        where = f"line {line}" if line is not None else "(module)"
        raise ConfigError(
            str(path), where, type(exc).__name__, f"the module raised when loaded: {exc}"
        ) from None
    finally:
        sys.modules.pop(module_name, None)
    scenario = getattr(module, SCENARIO_VARIABLE, None)
    if not isinstance(scenario, Scenario):
        raise ConfigError(
            str(path),
            SCENARIO_VARIABLE,
            type(scenario).__name__ if scenario is not None else None,
            "the module must define SCENARIO = datadrill.model.Scenario(...)",
        )
    _check_registered_kinds(path, scenario)
    if config is not None:
        from datadrill.engine.preflight import check_config_components, check_config_source

        check_config_components(scenario, config, source=str(path))
        check_config_source(scenario, config, source=str(path))
    return scenario


def _check_registered_kinds(path: Path, scenario: Scenario) -> None:
    """A plugin's SLI or step passes the model on its shape alone; its kind must also have
    a probe or an implementation registered (installed, or ``register_probe``/``register_step``)."""
    from datadrill.model.recovery import Runbook
    from datadrill.probes.registry import kinds as probe_kinds
    from datadrill.recovery.registry import kinds as step_kinds

    known = probe_kinds()
    for index, slo in enumerate(scenario.slos):
        if slo.sli.kind not in known:
            raise ConfigError(
                str(path),
                f"slos[{index}].sli.kind",
                slo.sli.kind,
                f"no probe is registered for this SLI kind (plugins register under the datadrill.probes "
                f"entry-point group); known kinds: {', '.join(sorted(known))}",
            )
    if isinstance(scenario.recovery, Runbook):
        known = step_kinds()
        for index, step in enumerate(scenario.recovery.steps):
            if step.kind not in known:
                raise ConfigError(
                    str(path),
                    f"recovery.steps[{index}].kind",
                    step.kind,
                    f"no implementation is registered for this step kind (plugins register under the "
                    f"datadrill.recovery entry-point group); known kinds: {', '.join(sorted(known))}",
                )


def discover(directory: Path) -> list[Path]:
    """Scenario modules in ``directory`` (files starting with '_' are helpers)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.py") if not p.name.startswith("_"))
