"""Bad input, generated: command lines, config files, scenario modules and journals that
are wrong, each given to the ``datadrill`` command. Every one gets

- exit code 2 and no traceback;
- one ``error:`` line naming what was wrong (the file, the field or option, the value),
  followed at most by click's one-line hint for a mistake on the command line itself;
- nothing started and nothing written: no stack process, no state file, no fault ledger,
  no reports; the working directory holds exactly what it held before.

The bulk runs the real entry point, :func:`datadrill.cli.main.main`, in this process, in a
temporary working directory, with starting a stack or any process made impossible: a case
that would start one is not bad input, and fails the test. A handful run
``python -m datadrill.cli`` for real, to show that no traceback reaches a terminal.

Every generated case has at least one defect; the valid pieces it is mixed with are
checked to be valid on their own (``test_the_valid_pieces_are_valid``), so a failure is
the defect's. Run with::

    pytest tests/unit/test_cli_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import typer.main
from hypothesis import example, given, settings
from hypothesis import strategies as st

import datadrill.model
from datadrill.cli.main import main

# -- the working directory every case runs in -------------------------------------------

GOOD_SCENARIO = """\
from datadrill.model import *

SCENARIO = Scenario(
    name="fuzz",
    slos=(SLO("queries", sli=QuerySuccess(), objective=0.999),),
    schedule=(HideTable(at_s=1, duration_s=2),),
)
"""

GOOD_CONFIG = """\
[kafka]
brokers = 3
topic = "orders.v1"

[workload]
rate = 100.0
"""

# Present in the working directory of every case: valid inputs to mix with bad ones, and
# things that are there but are the wrong kind of thing.
FIXTURE_FILES: dict[str, str] = {
    "good.py": GOOD_SCENARIO,
    "good.toml": GOOD_CONFIG,
    "afile": "a file, not a directory\n",
    "scen/good.py": GOOD_SCENARIO,
    "adir/.keep": "",
}

ERROR = "error: "
HINT = re.compile(r"Try '[^']+ --help' for help\.")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Case:
    """A command line, the files it needs (path in the working directory → content) and
    what the error must say: one of ``names`` (what was wrong), and all of ``also`` (the
    file it is about, what is allowed)."""

    argv: tuple[str, ...]
    names: tuple[str, ...]
    files: tuple[tuple[str, str | bytes], ...] = ()
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


class StackWouldStart(AssertionError):
    """The case got as far as starting a stack or a process: it is not bad input, or bad
    input is noticed too late."""


def _refuse(*args: object, **kwargs: object) -> None:
    raise StackWouldStart(f"would start a stack or a process: {args[:2]!r}")


def _populate(root: Path, files: Sequence[tuple[str, str | bytes]]) -> None:
    for name, content in (*FIXTURE_FILES.items(), *files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _snapshot(root: Path) -> dict[str, int]:
    """Every file and directory under ``root`` with its size (-1 for a directory), but
    Python's bytecode cache, which importing a scenario module may write."""
    return {
        str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1)
        for p in root.rglob("*")
        if "__pycache__" not in p.parts
    }


@contextlib.contextmanager
def _working_directory(files: Sequence[tuple[str, str | bytes]]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="datadrill-fuzz-") as tmp:
        root = Path(tmp)
        _populate(root, files)
        previous = Path.cwd()
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(previous)


_build_command = typer.main.get_command
_commands: dict[int, Any] = {}


def _command_built_once(typer_app: typer.Typer) -> Any:
    """Typer builds the click command from the functions' signatures on every call of the
    app: nine tenths of a case's time. A process does it once; so do these tests."""
    if id(typer_app) not in _commands:
        _commands[id(typer_app)] = _build_command(typer_app)
    return _commands[id(typer_app)]


def run_in_process(argv: Sequence[str]) -> Outcome:
    """``datadrill ARGV`` through the real entry point, in the current directory, with
    nothing able to start a stack or a process."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code: Any = None
    with (
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        mock.patch.object(sys, "argv", ["datadrill", *argv]),
        mock.patch.object(typer.main, "get_command", _command_built_once),
        mock.patch.dict(os.environ),
        mock.patch("datadrill.session.start_stack", _refuse),
        mock.patch("subprocess.Popen", _refuse),
    ):
        os.environ.pop("DATADRILL_STATE_DIR", None)
        try:
            main()
        except SystemExit as exc:
            code = exc.code
    return Outcome(
        code if isinstance(code, int) else (0 if code is None else 1),
        ANSI.sub("", stdout.getvalue()),
        ANSI.sub("", stderr.getvalue()),
    )


def assert_refused(case: Case, outcome: Outcome, before: dict[str, int], after: dict[str, int]) -> None:
    """Exit 2, one error line naming what was wrong (and click's hint), no traceback,
    nothing written."""
    shown = f"datadrill {' '.join(case.argv)}\n--- stdout\n{outcome.stdout}--- stderr\n{outcome.stderr}"
    assert "Traceback" not in outcome.stdout + outcome.stderr, shown
    assert outcome.code == 2, f"exit code {outcome.code}, not 2:\n{shown}"
    lines = outcome.stderr.strip().splitlines()
    assert lines and lines[0].startswith(ERROR), f"no 'error:' line first:\n{shown}"
    assert len(lines) == 1 or (len(lines) == 2 and HINT.fullmatch(lines[1])), f"not one line:\n{shown}"
    line = lines[0]
    assert any(name in line for name in case.names), f"names none of {case.names}:\n{shown}"
    for needed in case.also:
        assert needed in line, f"does not say {needed!r}:\n{shown}"
    assert after == before, f"wrote {sorted(set(after.items()) ^ set(before.items()))}:\n{shown}"


def check(case: Case) -> None:
    with _working_directory(case.files) as root:
        before = _snapshot(root)
        outcome = run_in_process(case.argv)
        after = _snapshot(root)
        # Spelled out, though the snapshot covers them: what a started run would leave.
        assert not (root / "reports").exists()
        assert not list(root.rglob("stack.json")) and not list(root.rglob("stack.pid"))
        assert not list(root.rglob("fault-ledger.jsonl"))
    assert_refused(case, outcome, before, after)


FUZZ = settings(derandomize=True, deadline=None, max_examples=250, database=None)

# -- tokens of a command line: valid ones and defects ---------------------------------

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=10)

KNOWN_OPTIONS = {
    "--help", "--stack", "--config", "--seed", "--report-dir", "--state-dir", "--dry-run", "--wait",
    "--lease", "--format", "--output", "--rate", "--catalog-uri", "--contract-format",
    "--election-delay", "--timeout", "--backend", "--brokers", "--json",
}  # fmt: skip


@dataclass(frozen=True)
class Group:
    """Tokens that go together (an option and its value); ``names`` says what an error
    about them names, empty for a valid group."""

    args: tuple[str, ...]
    names: tuple[str, ...] = ()
    positional: bool = False


def ok(*args: str) -> Group:
    return Group(args)


def bad(*args: str, names: Sequence[str] | None = None) -> Group:
    return Group(args, tuple(names) if names is not None else (args[0],))


def bad_value(option: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[Group]:
    return values.map(lambda value: Group((option, value), (option,)))


unknown_options = st.one_of(
    st.from_regex(r"--[a-z][a-z-]{1,12}[a-z]", fullmatch=True).filter(
        lambda o: o not in KNOWN_OPTIONS and not o.startswith("--no-")
    ),
    st.sampled_from([f"-{c}" for c in "abcdefgijklmnpqrstuvwxyz"]),
).flatmap(
    lambda option: st.sampled_from([bad(option), bad(option, "3", names=[option])]),
)

not_integers = st.sampled_from(["x", "1.5", "", "7s", "seven", "0x10", "1e3", "nan", "--"])
state_dir_files = st.sampled_from([bad("--state-dir", "afile"), bad("--state-dir", "afile/sub")])
missing_value = st.sampled_from(["--seed", "--lease", "--stack", "--config", "--state-dir"])
bad_backends = words.filter(lambda w: w not in {"embedded", "compose"})

# A positional argument naming a scenario module: a valid one, or not a scenario file.
good_scenario_arg = st.just(Group(("good.py",), positional=True))
bad_scenario_args = st.sampled_from(["missing.py", "afile", "adir", "good.toml", "nested/missing.py"]).map(
    lambda path: Group((path,), (path,), positional=True)
)

RUN_GOOD = [
    ok("--stack", "embedded"),
    ok("--seed", "7"),
    ok("--seed", "-3"),
    ok("--report-dir", "out"),
    ok("--state-dir", "state"),
    ok("--lease", "5"),
    ok("--lease", "3600"),
    ok("--config", "good.toml"),
    ok("--wait"),
    ok("--dry-run"),
]
run_bad = st.one_of(
    bad_backends.map(lambda name: Group(("--stack", name), (name,))),
    bad_value("--seed", not_integers),
    bad_value("--lease", st.sampled_from(["-3", "0", "0.5", "3601", "1e9", "x", "nan", "inf", "-inf"])),
    state_dir_files,
    st.sampled_from(
        [
            bad("--report-dir", "afile"),
            bad("--report-dir", "afile/sub"),
            bad("--config", "missing.toml", names=["missing.toml"]),
            bad("--config", "adir", names=["adir"]),
            bad("--dry-run=yes", names=["--dry-run"]),
        ]
    ),
)

STACK_UP_GOOD = [
    ok("--state-dir", "state"),
    ok("--rate", "50"),
    ok("--timeout", "30"),
    ok("--contract-format", "json"),
    ok("--election-delay", "1"),
    ok("--backend", "embedded"),
    ok("--config", "good.toml"),
    ok("--brokers", "3"),
]
stack_up_bad = st.one_of(
    bad_backends.filter(lambda w: w != "external").map(lambda name: Group(("--backend", name), (name,))),
    st.just(bad("--backend", "external", names=["external"])),  # no [external] section configured
    bad_value("--rate", st.sampled_from(["-1", "2e6", "nan", "inf", "x"])).map(
        lambda g: Group(g.args, ("--rate", "workload.rate"))
    ),
    bad_value("--election-delay", st.sampled_from(["-1", "601", "nan", "x"])).map(
        lambda g: Group(g.args, ("--election-delay", "kafka.election_delay_s"))
    ),
    words.filter(lambda w: w not in {"avro", "json"}).map(
        lambda fmt: Group(("--contract-format", fmt), ("contract.format",))
    ),
    st.sampled_from(
        ["mysql://u@h/db", "sqlite://relative", "http://x", "postgresql://u:p@10.1.2.3:5432/c"]
    ).map(lambda uri: Group(("--catalog-uri", uri), ("catalog.uri",))),
    bad_value("--timeout", st.sampled_from(["0", "-5", "x", "nan", "inf"])),
    bad_value("--brokers", st.sampled_from(["0", "4", "-1", "x", "1.5"])),
    st.sampled_from(
        [bad("--config", "missing.toml", names=["missing.toml"]), bad("--config", "adir", names=["adir"])]
    ),
    state_dir_files,
)

STATUS_GOOD = [ok("--state-dir", "state"), ok("--json"), ok("--backend", "embedded")]
status_bad = st.one_of(
    bad_backends.map(lambda name: Group(("--backend", name), (name,))),
    st.just(Group(("--backend", "external"), ("external",))),  # no [external] section configured
    state_dir_files,
)

DOWN_GOOD = [ok("--state-dir", "state"), ok("--backend", "embedded"), ok("--brokers", "3")]
down_bad = st.one_of(
    bad_backends.filter(lambda w: w != "external").map(lambda name: Group(("--backend", name), (name,))),
    bad_value("--brokers", st.sampled_from(["0", "4", "x"])),
    state_dir_files,
)

cleanup_bad = st.one_of(state_dir_files, words.map(lambda w: Group((w,), (w,), positional=True)))

REPORT_GOOD = [ok("--format", f) for f in ("md", "html", "json", "junit")] + [ok("-o", "out.md")]
report_bad = words.filter(lambda w: w not in {"md", "html", "json", "junit"}).map(
    lambda fmt: Group(("--format", fmt), ("--format",))
)

# A positional journal that is not one: missing, a directory without a journal, or a file
# of garbage written by the case (see ``garbage_journals``).
bad_journal_paths = st.sampled_from(["missing.jsonl", "adir", "afile", "good.toml"]).map(
    lambda path: Group((path,), (path,), positional=True)
)


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    good: st.SearchStrategy[Group] | None
    bad: st.SearchStrategy[Group]
    positional_good: st.SearchStrategy[Group] | None = None
    positional_bad: st.SearchStrategy[Group] | None = None
    positional_required: bool = False
    positional_many: bool = False
    missing_names: tuple[str, ...] = ()


COMMANDS = [
    Command(
        ("list",),
        None,
        words.map(lambda w: Group((w,), (w,), positional=True)),
        positional_good=st.just(Group(("scen",), positional=True)),
        positional_bad=st.sampled_from(["nosuchdir", "afile", "good.py"]).map(
            lambda path: Group((path,), (path,), positional=True)
        ),
    ),
    Command(
        ("validate",),
        None,
        bad_scenario_args,
        positional_good=good_scenario_arg,
        positional_bad=bad_scenario_args,
        positional_required=True,
        positional_many=True,
        missing_names=("scenarios",),
    ),
    Command(
        ("run",),
        st.sampled_from(RUN_GOOD),
        run_bad,
        positional_good=good_scenario_arg,
        positional_bad=bad_scenario_args,
        positional_required=True,
        positional_many=True,
        missing_names=("scenarios",),
    ),
    Command(("cleanup",), st.just(ok("--state-dir", "state")), cleanup_bad),
    Command(
        ("report",),
        st.sampled_from(REPORT_GOOD),
        report_bad,
        positional_bad=bad_journal_paths,
        positional_required=True,
        missing_names=("journal",),
    ),
    Command(
        ("replay",),
        st.just(ok("--state-dir", "state")),
        state_dir_files,
        positional_bad=bad_journal_paths,
        positional_required=True,
        missing_names=("journal",),
    ),
    Command(("stack", "up"), st.sampled_from(STACK_UP_GOOD), stack_up_bad),
    Command(("stack", "status"), st.sampled_from(STATUS_GOOD), status_bad),
    Command(("stack", "down"), st.sampled_from(DOWN_GOOD), down_bad),
]


@st.composite
def bad_command_lines(draw: st.DrawFn) -> Case:
    """A command with valid and invalid tokens mixed, at least one of them invalid."""
    command = draw(st.sampled_from(COMMANDS))
    # One value per option: click keeps the last one given, which could hide a defect.
    defects = draw(st.lists(command.bad, max_size=2, unique_by=lambda g: g.args[0]))
    if draw(st.integers(0, 4)) == 0:
        defects.append(draw(unknown_options))
    goods = (
        draw(st.lists(command.good, max_size=3, unique_by=lambda g: g.args[0]))
        if command.good is not None
        else []
    )
    options = [g for g in goods if g.args[0] not in {d.args[0] for d in defects}]
    positionals: list[Group] = []
    if command.positional_good is not None or command.positional_bad is not None:
        choices = [s for s in (command.positional_good, command.positional_bad) if s is not None]
        count = draw(st.integers(0, 3 if command.positional_many else 1))
        positionals = [draw(st.one_of(choices)) for _ in range(count)]
    missing = command.positional_required and not positionals
    if not defects and not missing and not any(g.names for g in positionals):
        if command.positional_bad is not None and draw(st.booleans()):
            positionals.append(draw(command.positional_bad))
        else:
            defect = draw(command.bad)
            defects.append(defect)
            options = [g for g in options if g.args[0] != defect.args[0]]
    # Options and defects in any order; positional arguments keep theirs among them.
    groups = draw(st.permutations([*options, *[d for d in defects if not d.positional]]))
    for group in [*positionals, *[d for d in defects if d.positional]]:
        groups.insert(draw(st.integers(0, len(groups))), group)
    names = {n for g in [*defects, *positionals] for n in g.names}
    if command.positional_required and not any(g.positional for g in groups):
        names.update(command.missing_names)
    if not command.positional_many:
        # A positional argument after the one a command takes is an "unexpected extra argument".
        names.update(a for g in [g for g in groups if g.positional][1:] for a in g.args)
    # An option missing its value swallows the next token, whatever it is.
    if draw(st.booleans()) and defects:
        option = draw(missing_value)
        groups.append(Group((option,), (option,)))
        names.add(option)
    argv = tuple(a for g in groups for a in g.args)
    return Case((*command.path, *argv), tuple(sorted(names)))


@FUZZ
@given(bad_command_lines())
# Regressions, each a bug this test found. A state directory that is a file: a traceback
# (NotADirectoryError), exit 1.
@example(Case(("cleanup", "--state-dir", "afile"), ("--state-dir",)))
@example(Case(("stack", "status", "--state-dir", "afile/sub"), ("--state-dir",), also=("afile is a file",)))
@example(Case(("stack", "down", "--state-dir", "afile"), ("--state-dir",)))
# A report directory that is a file: noticed only after the drill ran on a started stack.
@example(Case(("run", "good.py", "--report-dir", "afile"), ("--report-dir",)))
# A timeout of 0 s (or nan) started a stack and gave up on it at once.
@example(Case(("stack", "up", "--timeout", "0"), ("--timeout",)))
# --brokers out of 1-3 was ignored unless the backend was compose: exit 0, or a stack started.
@example(Case(("stack", "down", "--brokers", "0"), ("--brokers",)))
@example(Case(("stack", "up", "--brokers", "7"), ("--brokers",)))
# A scenario directory that does not exist: exit 1 ("no scenario modules"), as if empty.
@example(Case(("list", "nosuchdir"), ("nosuchdir",), also=("(directory)",)))
# Command-line mistakes were a five-line box; a wrong value was not shown.
@example(Case(("run", "good.py", "--seed", "x"), ("--seed",), also=("'x'", "valid integer")))
@example(Case(("validate", "good.py", "--frob"), ("--frob",)))
def test_bad_command_lines(case: Case) -> None:
    check(case)


# -- config files ------------------------------------------------------------------------

INT_FIELDS = {
    ("kafka", "brokers"): (1, 9),
    ("kafka", "partitions"): (1, 256),
    ("kafka", "replication_factor"): (1, 9),
    ("kafka", "group_initial_rebalance_delay_ms"): (0, 300_000),
    ("relay", "batch_max_records"): (1, 1_000_000),
    ("relay", "poll_interval_ms"): (1, 10_000),
    ("sink", "batch_max_records"): (1, 5_000_000),
    ("sink", "batch_max_wait_ms"): (1, 600_000),
    ("sink", "snapshots_to_keep"): (1, 100_000),
}
# (lowest, whether the lowest itself is refused, highest)
FLOAT_FIELDS = {
    ("kafka", "election_delay_s"): (0.0, False, 600.0),
    ("workload", "rate"): (0.0, False, 1_000_000.0),
    ("workload", "canary_interval_s"): (0.0, True, 3600.0),
    ("supervisor", "backoff_initial_s"): (0.0, True, 60.0),
    ("supervisor", "backoff_max_s"): (0.0, True, 600.0),
}
STR_FIELDS = [("kafka", "topic"), ("catalog", "uri"), ("catalog", "table"), ("sink", "group_id")]
CHOICE_FIELDS = {
    ("contract", "format"): ("avro", "json"),
    ("sink", "guarantee"): ("exactly_once", "offsets_first"),
}
SECTIONS = {
    "kafka": {"brokers", "topic", "partitions", "replication_factor", "election_delay_s",
              "group_initial_rebalance_delay_ms"},
    "catalog": {"uri", "table"},
    "contract": {"format"},
    "workload": {"rate", "canary_interval_s"},
    "relay": {"batch_max_records", "poll_interval_ms"},
    "sink": {"group_id", "batch_max_records", "batch_max_wait_ms", "snapshots_to_keep", "guarantee"},
    "supervisor": {"backoff_initial_s", "backoff_max_s"},
    "safety": {"allow_hosts"},
    "external": set(),  # its fields are tried by the valid [external] below
}  # fmt: skip

# Valid settings to surround a defect with: none constrains another.
VALID_SETTINGS: list[tuple[tuple[str, str], Any]] = [
    (("kafka", "topic"), "orders.fuzz"),
    (("kafka", "partitions"), 12),
    (("kafka", "election_delay_s"), 0.5),
    (("workload", "rate"), 20),
    (("workload", "canary_interval_s"), 2.5),
    (("relay", "poll_interval_ms"), 50),
    (("sink", "group_id"), "fuzz-sink"),
    (("sink", "snapshots_to_keep"), 5),
    (("contract", "format"), "json"),
    (("catalog", "table"), "dwh.fuzz"),
    (("safety", "allow_hosts"), ["127.0.0.1"]),
]
VALID_EXTERNAL = {"bootstrap_servers": "127.0.0.1:9092", "catalog_uri": "postgresql://u:p@127.0.0.1:5432/c"}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def render_toml(sections: dict[str, Any]) -> str:
    """Top-level keys first (TOML puts them before any table), then a table per section."""
    lines = [f"{key} = {toml_value(value)}" for key, value in sections.items() if not isinstance(value, dict)]
    for section, settings_ in sections.items():
        if isinstance(settings_, dict):
            lines.append(f"\n[{section}]")
            lines.extend(f"{key} = {toml_value(value)}" for key, value in settings_.items())
    return "\n".join(lines) + "\n"


def _parses(text: str) -> bool:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return True


text_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
not_a_number = st.one_of(
    words.map(str),  # TOML strings: "nan" and "inf" among them, refused by every bound
    st.lists(st.integers(0, 9), min_size=1, max_size=2),
    st.just({"a": 1}),
    st.booleans(),
)


@st.composite
def config_defects(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[str, ...], tuple[str, ...]]:
    """One wrong thing in a config (as data), what the error must name (one of) and say
    (all of)."""
    kind = draw(st.integers(0, 10))
    value: Any
    if kind == 0:  # an int field out of range, fractional, or not a number
        (section, key), (low, high) = draw(st.sampled_from(sorted(INT_FIELDS.items())))
        value = draw(
            st.one_of(
                st.integers(max_value=low - 1),
                st.integers(min_value=high + 1),
                st.integers(low, high).map(lambda n: n + 0.5),
                not_a_number,
            )
        )
        return {section: {key: value}}, (f"{section}.{key}",), ()
    if kind == 1:  # a float field out of range, infinite, NaN or not a number
        (section, key), (lowest, open_low, highest) = draw(st.sampled_from(sorted(FLOAT_FIELDS.items())))
        below = st.floats(max_value=lowest, exclude_max=not open_low, allow_nan=False)
        above = st.floats(min_value=highest, exclude_min=True, allow_nan=False)
        value = draw(st.one_of(below, above, st.just(math.nan), not_a_number))
        return {section: {key: value}}, (f"{section}.{key}",), ()
    if kind == 2:  # a string field of another type, or empty where that is refused
        section, key = draw(st.sampled_from(STR_FIELDS))
        value = draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.just(["x"])))
        return {section: {key: value}}, (f"{section}.{key}",), ()
    if kind == 3:  # a choice outside the allowed ones
        (section, key), allowed = draw(st.sampled_from(sorted(CHOICE_FIELDS.items())))
        value = draw(st.one_of(words.filter(lambda w: w not in allowed), st.integers(), st.booleans()))
        return {section: {key: value}}, (f"{section}.{key}",), ()
    if kind == 4:  # an unknown key in a known section
        section = draw(st.sampled_from(sorted(SECTIONS)))
        key = draw(text_words.filter(lambda k: k not in SECTIONS[section]))
        value = draw(st.one_of(st.integers(), words))
        if section == "external":
            return {section: {**VALID_EXTERNAL, key: value}}, (f"{section}.{key}",), ()
        return {section: {key: value}}, (f"{section}.{key}",), ()
    if kind == 5:  # an unknown section, or a top-level key
        name = draw(text_words.filter(lambda k: k not in SECTIONS))
        value = draw(st.one_of(st.just({"x": 1}), st.integers(), words))
        return {name: value}, (name,), ()
    if kind == 6:  # a section that is not a table
        section = draw(st.sampled_from(sorted(SECTIONS)))
        return {section: draw(st.one_of(st.integers(), words, st.just([1])))}, (section,), ()
    if kind == 7:  # settings that contradict each other
        if draw(st.booleans()):
            brokers = draw(st.integers(1, 8))
            factor = draw(st.integers(brokers + 1, 9))
            return {"kafka": {"brokers": brokers, "replication_factor": factor}}, ("replication_factor",), ()
        longest = draw(st.floats(0.01, 59.0))
        first = draw(st.floats(longest, 60.0, exclude_min=True))
        return (
            {"supervisor": {"backoff_initial_s": first, "backoff_max_s": longest}},
            ("backoff_initial_s",),
            (),
        )
    if kind == 8:  # a table name or a catalog URI of the wrong shape, a host not allowed
        if draw(st.booleans()):
            table = draw(
                st.sampled_from(["orders", "a.b.c", "1x.y", "", "dwh.", ".x", "dwh.or ders", "dwh-1.x"])
            )
            return {"catalog": {"table": table}}, ("catalog.table",), ()
        uri = draw(
            st.sampled_from(
                [
                    "mysql://u@h/db",
                    "sqlite://relative",
                    "http://x",
                    "postgres://u@h/db",
                    "file:///x",
                    "postgresql://u:p@10.1.2.3:5432/c",
                    "postgresql://u:p@db.example.com/c",
                ]
            )
        )
        return {"catalog": {"uri": uri}}, ("catalog.uri",), ()
    if kind == 9:  # allow_hosts of the wrong type
        value = draw(st.one_of(words, st.integers(), st.just([1]), st.just({"a": "b"})))
        return {"safety": {"allow_hosts": value}}, ("safety.allow_hosts",), ()
    # an [external] cluster for the embedded stack, or one missing what it needs
    if draw(st.booleans()):
        return {"external": dict(VALID_EXTERNAL)}, ("external",), ()
    missing = draw(st.sampled_from(sorted(VALID_EXTERNAL)))
    return (
        {"external": {k: v for k, v in VALID_EXTERNAL.items() if k != missing}},
        (f"external.{missing}",),
        ("= None", "required field is missing"),
    )


BROKEN_TOML = [
    "[kafka\nbrokers = 3\n",
    "[kafka]\nbrokers = \n",
    "[kafka]\nbrokers = 3\nbrokers = 4\n",
    "[kafka]\n[kafka]\n",
    'topic = "unterminated\n',
    "= 3\n",
    "[kafka]\nbrokers = 3 3\n",
    "[workload]\nrate = 1.\n",
    "[[kafka]]\n[kafka]\n",
    "[kafka]\ntopic = 'a' 'b'\n",
]


@st.composite
def bad_configs(draw: st.DrawFn) -> tuple[str | bytes, tuple[str, ...], tuple[str, ...]]:
    """A config file's content, with valid settings around one defect, and what the error
    must name."""
    if draw(st.integers(0, 5)) == 0:  # not TOML at all
        how = draw(st.integers(0, 2))
        if how == 0:
            return draw(st.sampled_from(BROKEN_TOML)), ("not valid TOML",), ()
        if how == 1:  # a valid file with a stray character put in
            text = render_toml({"kafka": {"topic": "t", "partitions": 3}, "workload": {"rate": 5.0}})
            at = draw(st.integers(0, len(text)))
            broken = text[:at] + draw(st.sampled_from(list('[]="{},\\'))) + text[at:]
            if _parses(broken):
                broken = "[" + broken
            return broken, ("not valid TOML",), ()
        content = draw(st.sampled_from([b"\xff\xfe[kafka]\n", b'[kafka]\ntopic = "\xc3\x28"\n']))
        return content, ("not valid TOML",), ("not UTF-8",)
    data, names, also = draw(config_defects())
    merged: dict[str, Any] = {}
    for (section, key), value in draw(
        st.lists(st.sampled_from(VALID_SETTINGS), max_size=4, unique_by=lambda s: s[0])
    ):
        merged.setdefault(section, {})[key] = value
    for section, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **value}
        else:
            merged[section] = value
    return render_toml(merged), names, also


@st.composite
def bad_config_cases(draw: st.DrawFn) -> Case:
    """A bad config given to ``run`` or ``stack up``: with ``--config``, or as the
    ``datadrill.toml`` they read by default."""
    text, names, also = draw(bad_configs())
    explicit = draw(st.booleans())
    path = draw(st.sampled_from(["drill.toml", "conf/drill.toml"])) if explicit else "datadrill.toml"
    config = ("--config", path) if explicit else ()
    if draw(st.booleans()):
        options = draw(
            st.lists(
                st.sampled_from(
                    [("--seed", "3"), ("--state-dir", "state"), ("--lease", "30"), ("--report-dir", "out")]
                ),
                max_size=2,
                unique_by=lambda o: o[0],
            )
        )
        argv = ("run", "good.py", *config, *(a for o in options for a in o))
    else:
        options = draw(
            st.lists(
                st.sampled_from(
                    [
                        ("--state-dir", "state"),
                        ("--rate", "50"),
                        ("--timeout", "30"),
                        ("--contract-format", "json"),
                    ]
                ),
                max_size=2,
                unique_by=lambda o: o[0],
            )
        )
        argv = ("stack", "up", *config, *(a for o in options for a in o))
    return Case(argv, names, files=((path, text),), also=(path, *also))


@FUZZ
@given(bad_config_cases())
# Regressions. A config file that is not UTF-8: a traceback (UnicodeDecodeError).
@example(
    Case(
        ("stack", "up", "--config", "drill.toml"),
        ("not valid TOML",),
        files=(("drill.toml", b"\xff\xfe[kafka]\n"),),
        also=("drill.toml", "not UTF-8"),
    )
)
# A boolean for a number was read as 1 or 0: one broker (then a misleading error), a rate of
# 1 order per second on a started stack.
@example(
    Case(
        ("stack", "up"),
        ("kafka.brokers",),
        files=(("datadrill.toml", "[kafka]\nbrokers = true\n"),),
        also=("datadrill.toml", "not a boolean"),
    )
)
@example(
    Case(
        ("run", "good.py"),
        ("workload.rate",),
        files=(("datadrill.toml", "[workload]\nrate = true\n"),),
        also=("datadrill.toml", "not a boolean"),
    )
)
# A missing field showed the whole section as its value.
@example(
    Case(
        ("stack", "up", "--config", "drill.toml"),
        ("external.catalog_uri",),
        files=(("drill.toml", '[external]\nbootstrap_servers = "127.0.0.1:9092"\n'),),
        also=("drill.toml", "= None", "required field is missing"),
    )
)
def test_bad_config_files(case: Case) -> None:
    check(case)


# -- scenario modules --------------------------------------------------------------------

# Faults to surround a defect with: no two share a target, all end before max_duration_s.
VALID_FAULTS = [
    'KillComponent(at_s=1, component="relay")',
    "SchemaDrift(at_s=2, duration_s=3)",
    "KafkaRequestErrors(at_s=1, count=5)",
    "BrokerLatency(at_s=4, duration_s=2, rtt_ms=100)",
    "BrokerLoss(at_s=5, duration_s=2, broker=3)",
]
SLO_QUERIES = 'SLO("queries", sli=QuerySuccess(), objective=0.999)'


def scenario_source(schedule: Sequence[str], *, slos: Sequence[str] = (SLO_QUERIES,), **fields: str) -> str:
    rest = "".join(f"    {key}={value},\n" for key, value in fields.items())
    return (
        "from datadrill.model import *\n\n"
        "SCENARIO = Scenario(\n"
        '    name="fuzz",\n'
        f"    slos=({''.join(s + ', ' for s in slos)}),\n"
        f"    schedule=({''.join(f + ', ' for f in schedule)}),\n"
        f"{rest}"
        "    max_duration_s=120,\n"
        ")\n"
    )


MODEL_NAMES = set(dir(datadrill.model)) | set(dir(__builtins__))
wrong_numbers = st.one_of(
    st.sampled_from(['"5"', "None", "[1]", "True", '"fast"', "{}"]),
)
negative = st.one_of(
    st.integers(max_value=-1), st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False)
).map(repr)
# A fault with one field wrong: (kind, fields as written, what the error must name).
bad_faults = st.one_of(
    st.tuples(
        st.sampled_from(["HideTable", "LagSpike", "CatalogOutage", "BrokerLoss", "BrokerLatency"]),
        st.one_of(negative, wrong_numbers, st.just("float('nan')")),
    ).map(lambda kv: (f"{kv[0]}(at_s={kv[1]}, duration_s=1)", ("at_s",))),
    st.tuples(
        st.sampled_from(["HideTable", "LagSpike", "CatalogOutage", "BrokerLoss", "BrokerLatency"]),
        st.one_of(negative, wrong_numbers, st.just("0")),
    ).map(lambda kv: (f"{kv[0]}(at_s=1, duration_s={kv[1]})", ("duration_s",))),
    st.one_of(st.integers(max_value=0), st.integers(min_value=10), st.just(1.5), st.just('"1"')).map(
        lambda b: (f"BrokerLoss(at_s=1, duration_s=1, broker={b!r})", ("broker",))
    ),
    st.sampled_from(
        [
            ('KillComponent(at_s=1, component="database")', ("component",)),
            ("KillComponent(at_s=1, times=0)", ("times",)),
            ("KillComponent(at_s=1, times=1001, every_s=1)", ("times",)),
            ("KillComponent(at_s=1, every_s=-1)", ("every_s",)),
            ("KillComponent(at_s=1, times=3, every_s=0)", ("every_s",)),
            ('KillComponent(at_s=1, component="workload", moment="mid_commit")', ("mid_commit",)),
            ('KafkaRequestErrors(at_s=1, api="bogus")', ("api",)),
            ('KafkaRequestErrors(at_s=1, error="BROKEN_PIPE")', ("error",)),
            ("KafkaRequestErrors(at_s=1, count=0)", ("count",)),
            ("BrokerLatency(at_s=1, duration_s=1, rtt_ms=0)", ("rtt_ms",)),
            ("BrokerLatency(at_s=1, duration_s=1, broker=0)", ("broker",)),
            ('NetworkFault(at_s=1, duration_s=1, toxic="bogus")', ("toxic",)),
            ('NetworkFault(at_s=1, duration_s=1, toxic="latency", toxicity=2.0)', ("toxicity",)),
            ("NetworkFault(at_s=1, duration_s=1)", ("toxic",)),
            ('NetworkFault(at_s=1, duration_s=1, toxic="down", attributes={"latency": 5})', ("down",)),
            ('LagSpike(at_s=1, duration_s=1, mode="stop")', ("mode",)),
            ("LagSpike(at_s=1, duration_s=1, burst_factor=0.5)", ("burst_factor",)),
            ('SchemaDrift(at_s=1, change="explode")', ("change",)),
            ("HideTable(at_s=1)", ("duration_s",)),
            ("HideTable(duration_s=1)", ("at_s",)),
        ]
    ),
    st.sampled_from(["orders", "a.b.c", "", "1x.y", "dwh.or-ders"]).flatmap(
        lambda table: st.sampled_from(
            [
                (f"DeleteCatalogEntry(at_s=1, table={table!r})", ("table",)),
                (f"HideTable(at_s=1, duration_s=1, table={table!r})", ("table",)),
                (f"DeleteMetadataFiles(at_s=1, table={table!r})", ("table",)),
            ]
        )
    ),
    st.tuples(
        st.sampled_from(["HideTable", "BrokerLoss", "CatalogOutage"]),
        text_words.filter(
            lambda k: k.isidentifier() and k not in {"at_s", "duration_s", "table", "broker", "mode", "kind"}
        ),
    ).map(lambda kv: (f"{kv[0]}(at_s=1, duration_s=1, {kv[1]}=1)", (kv[1],))),
)
unknown_fault_names = st.from_regex(r"[A-Z][a-z]{2,8}[A-Z][a-z]{2,8}", fullmatch=True).filter(
    lambda name: name not in MODEL_NAMES
)


# Modules that are not Python, or fail or leave as they are imported.
BROKEN_MODULES: list[tuple[str | bytes, tuple[str, ...]]] = [
    ("SCENARIO = Scenario(\n", ("not valid Python",)),
    ("SCENARIO = ]\n", ("not valid Python",)),
    ("def (:\n", ("not valid Python",)),
    ("  x = 1\n", ("not valid Python",)),
    ('SCENARIO = "unterminated\n', ("not valid Python",)),
    (b"SCENARIO = '\xff\xfe'\n", ("not valid Python", "UTF-8", "utf-8")),
    (b"SCENARIO = 1\x00\n", ("null bytes",)),
    ("SCENARIO = 1 / 0\n", ("ZeroDivisionError",)),
    ("import nosuchmodule_fuzz\n", ("nosuchmodule_fuzz",)),
    ('raise RuntimeError("no scenario today")\n', ("no scenario today",)),
    ('raise ValueError("first line\\nsecond line")\n', ("first line",)),
    ("import sys\nsys.exit(0)\n", ("SystemExit", "exit")),
    ("import sys\nsys.exit('stop')\n", ("SystemExit", "exit")),
    ("raise SystemExit(3)\n", ("SystemExit", "exit")),
    ("import os\nos.chdir('..')\nSCENARIO = 1\n", ("SCENARIO",)),
]


@st.composite
def scenario_defects(draw: st.DrawFn) -> tuple[str | bytes, tuple[str, ...]]:
    """A scenario module with one thing wrong in it, and what the error must name."""
    extras = draw(st.lists(st.sampled_from(VALID_FAULTS), max_size=3, unique=True))
    kind = draw(st.integers(0, 11))
    if kind <= 2:  # a fault with a wrong field, among valid ones
        fault, names = draw(bad_faults)
        schedule = list(extras)
        schedule.insert(draw(st.integers(0, len(schedule))), fault)
        return scenario_source(schedule), names
    if kind == 3:  # a fault of a kind that does not exist, or not a fault at all
        if draw(st.booleans()):
            name = draw(unknown_fault_names)
            return scenario_source([*extras, f"{name}(at_s=1)"]), (name,)
        item = draw(st.sampled_from(["42", '"HideTable"', "None", SLO_QUERIES, "HideTable"]))
        return scenario_source([*extras, item]), ("schedule",)
    if kind == 4:  # faults overlapping on one target, or lasting past the run
        if draw(st.booleans()):
            first = draw(st.floats(0, 20))
            second = first + draw(st.floats(0, 4.9))
            fault = draw(
                st.sampled_from(
                    ["HideTable({})", "BrokerLoss(broker=2, {})", "LagSpike({})", "CatalogOutage({})"]
                )
            )
            pair = [
                fault.format(f"at_s={first!r}, duration_s=5"),
                fault.format(f"at_s={second!r}, duration_s=5"),
            ]
            return scenario_source([*extras, *pair]), ("overlap",)
        at = draw(st.floats(100, 200))
        return scenario_source([*extras, f"HideTable(at_s={at!r}, duration_s=30)"]), ("max_duration_s",)
    if kind == 5:  # a scenario field wrong
        key, value, names = draw(
            st.sampled_from(
                [
                    ("probe_interval_s", "0", ("probe_interval_s",)),
                    ("probe_interval_s", "61", ("probe_interval_s",)),
                    ("probe_interval_s", '"fast"', ("probe_interval_s",)),
                    ("stabilisation_s", "-1", ("stabilisation_s",)),
                    ("stabilisation_s", "500", ("stabilisation_s",)),
                    ("verify_integrity", '"maybe"', ("verify_integrity",)),
                    ("workload", "Workload(rate=-1)", ("rate",)),
                    ("workload", 'Workload(rate="fast")', ("rate",)),
                    ("steady_state", "SteadyState(warmup_s=-1)", ("warmup_s",)),
                    ("steady_state", "SteadyState(timeout_s=0)", ("timeout_s",)),
                    ("expectations", "Expectations(detect_within_s=0)", ("detect_within_s",)),
                    ("recovery", 'Runbook(steps=(RestoreCatalogBackup(backup="nope"),))', ("nope",)),
                    ("recovery", "Runbook(steps=(ReplayKafka(),))", ("replay_kafka",)),
                    ("stop_when", '(SLILimit(slo="nosuch", above=1.0),)', ("nosuch",)),
                    ("when", "3", ("when",)),
                    ("description", "42", ("description",)),
                ]
            )
        )
        return scenario_source(extras or VALID_FAULTS[:1], **{key: value}), names
    if kind == 6:  # SLOs wrong
        slos, names = draw(
            st.sampled_from(
                [
                    ((), ("slos",)),
                    ((SLO_QUERIES, SLO_QUERIES), ("unique",)),
                    (('SLO("q", sli=QuerySuccess(), objective=1.5)',), ("objective",)),
                    (('SLO("q", sli=QuerySuccess(), objective=0)',), ("objective",)),
                    (('SLO("", sli=QuerySuccess(), objective=0.9)',), ("name",)),
                    (('SLO("q", sli=Freshness(max_age_s=-1), objective=0.9)',), ("max_age_s",)),
                    (('SLO("q", sli="fresh", objective=0.9)',), ("sli",)),
                ]
            )
        )
        return scenario_source(extras or VALID_FAULTS[:1], slos=slos), names
    if kind == 7:  # an empty schedule, or one with only a backup
        schedule = draw(st.sampled_from([[], ["TakeCatalogBackup(at_s=1)"]]))
        return scenario_source(schedule), ("schedule", "fault")
    if kind == 8:  # no SCENARIO, or not a Scenario
        value = draw(st.sampled_from(["None", "42", '"fuzz"', "dict()", "Scenario", "[]"]))
        body = draw(st.sampled_from([f"SCENARIO = {value}\n", "scenario = 1\n", ""]))
        return "from datadrill.model import *\n\n" + body, ("SCENARIO",)
    # not Python, or Python that fails or leaves as it is imported
    return draw(st.sampled_from(BROKEN_MODULES))


@st.composite
def bad_scenario_cases(draw: st.DrawFn) -> Case:
    """A bad scenario module given to ``validate`` or ``run``, alone or with valid ones."""
    source, names = draw(scenario_defects())
    name = draw(st.sampled_from(["bad.py", "scenario.py", "nested/drill_1.py"]))
    others = draw(st.lists(st.just("good.py"), max_size=2))
    paths = [*others]
    paths.insert(draw(st.integers(0, len(paths))), name)
    if draw(st.booleans()):
        argv: tuple[str, ...] = ("validate", *paths)
    else:
        options = draw(
            st.lists(
                st.sampled_from([("--seed", "3"), ("--state-dir", "state"), ("--report-dir", "out")]),
                max_size=2,
                unique_by=lambda o: o[0],
            )
        )
        argv = ("run", *paths, *(a for o in options for a in o))
    return Case(argv, names, files=((name, source),), also=(name,))


@FUZZ
@given(bad_scenario_cases())
# Regressions. sys.exit() in a scenario module ended datadrill with the module's code: 0.
@example(
    Case(
        ("validate", "bad.py"),
        ("SystemExit",),
        files=(("bad.py", "import sys\nsys.exit(0)\n"),),
        also=("bad.py",),
    )
)
# A multi-line exception message made a multi-line error.
@example(
    Case(
        ("run", "bad.py"),
        ("first line",),
        files=(("bad.py", 'raise ValueError("first line\\nsecond line")\n'),),
        also=("bad.py", "second line"),
    )
)
# A positional argument was named by its position: "SLO.0".
@example(
    Case(
        ("validate", "bad.py"),
        ("SLO.name",),
        files=(
            (
                "bad.py",
                scenario_source(VALID_FAULTS[:1], slos=['SLO("", sli=QuerySuccess(), objective=0.9)']),
            ),
        ),
        also=("bad.py",),
    )
)
# A null byte: "line None".
@example(
    Case(
        ("validate", "bad.py"),
        ("null bytes",),
        files=(("bad.py", b"SCENARIO = 1\x00\n"),),
        also=("(module)",),
    )
)
def test_bad_scenario_modules(case: Case) -> None:
    check(case)


# -- journals: a run's (``report``) and a saved fault schedule's (``replay``) -----------------

garbage_lines = st.one_of(
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\n\r"), min_size=1, max_size=30
    ).filter(lambda line: line.strip() and not line.strip().startswith("{")),
    st.sampled_from(["[1, 2]", "3", "null", '"run_started"', "{", '{"type": "run_started"', "{}"]),
    st.sampled_from(
        [
            '{"type": "nosuch"}',  # unknown types are read (newer journals), but need a time
            '{"type": "run_started", "t": "x", "scenario": "s"}',
            '{"type": "sample", "t": 1}',
            '{"type": "fault_injected", "t": 1, "fault_id": "x", "kind": "k", "description": "d"}',
            '{"type": "phase_started", "t": 1, "name": "x", "kind": "bogus"}',
        ]
    ),
)


@st.composite
def garbage_journals(draw: st.DrawFn) -> str:
    """JSON lines with at least one line that is not a journal event, and a newline after
    it (a last line without one would be a torn write, which readers skip)."""
    good = '{"type": "run_started", "t": 0, "scenario": "fuzz"}'
    lines = draw(st.lists(st.just(good), max_size=2))
    lines.insert(draw(st.integers(0, len(lines))), draw(garbage_lines))
    return "\n".join(lines) + "\n"


HEADER: dict[str, Any] = {
    "type": "schedule",
    "version": 1,
    "seed": 7,
    "rate": 400.0,
    "sink_guarantee": "exactly_once",
}
GOOD_STEPS: list[dict[str, Any]] = [
    {"step": "inject", "fault": {"kind": "calibration.hide_table", "at_s": 0.0, "duration_s": 2.0}},
    {"step": "advance", "seconds": 1.5},
    {"step": "revert", "index": 0},
    {"step": "recover"},
]


# Steps with one thing wrong: (the step, what the error must name).
BAD_STEPS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"step": "jump"}, ("step",)),
    ({"step": "inject", "fault": {"kind": "nosuch.fault", "at_s": 0}}, ("fault.kind",)),
    ({"step": "inject"}, ("fault",)),
    (
        {
            "step": "inject",
            "fault": {"kind": "calibration.hide_table", "at_s": -1, "duration_s": 1},
        },
        ("at_s",),
    ),
    ({"step": "advance", "seconds": "x"}, ("seconds",)),
    ({"step": "advance", "seconds": -3}, ("seconds",)),
    ({"step": "advance"}, ("seconds",)),
    ({"step": "revert", "index": "x"}, ("index",)),
    ({"step": "revert"}, ("index",)),
    ({"step": "revert", "index": -1}, ("index",)),
    ({"step": "inject", "fault": "calibration.hide_table"}, ("fault",)),
]


@st.composite
def bad_schedules(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    """A schedule journal as the search saves it, with one thing wrong."""
    header: dict[str, Any] | None = dict(HEADER)
    steps = [dict(s) for s in draw(st.lists(st.sampled_from(GOOD_STEPS), max_size=3))]
    kind = draw(st.integers(0, 6))
    names: tuple[str, ...]
    if kind == 0:
        header, names = None, ("schedule header",)
    elif kind == 1:
        assert header is not None
        key, value, names = draw(
            st.sampled_from(
                [
                    ("version", 2, ("version",)),
                    ("version", "1", ("version",)),
                    ("seed", "x", ("seed",)),
                    ("seed", 1.5, ("seed",)),
                    ("rate", "fast", ("rate",)),
                    ("rate", -1, ("rate",)),
                    ("rate", float("nan"), ("rate",)),
                    ("sink_guarantee", "bogus", ("sink_guarantee", "sink.guarantee")),
                ]
            )
        )
        header[key] = value
    else:
        step, names = draw(st.sampled_from(BAD_STEPS))
        steps.insert(draw(st.integers(0, len(steps))), step)
    lines = ([header] if header is not None else []) + steps
    return "".join(json.dumps(line) + "\n" for line in lines), names


@st.composite
def bad_journal_cases(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(["journal.jsonl", "run/journal.jsonl", "failing-schedule.jsonl"]))
    if draw(st.booleans()):
        content = draw(garbage_journals())
        fmt = draw(
            st.lists(
                st.sampled_from([("--format", "md"), ("--format", "json"), ("-o", "out.md")]),
                max_size=2,
                unique_by=lambda o: o[0],
            )
        )
        target = (
            name.removesuffix("/journal.jsonl")
            if name.endswith("/journal.jsonl") and draw(st.booleans())
            else name
        )
        return Case(
            ("report", target, *(a for o in fmt for a in o)), (name,), files=((name, content),), also=(name,)
        )
    if draw(st.booleans()):
        content, names = draw(bad_schedules())
    else:
        content, names = draw(garbage_journals()), (name,)
    state = ("--state-dir", "state") if draw(st.booleans()) else ()
    return Case(("replay", name, *state), names, files=((name, content),), also=(name,))


def _schedule(**header: object) -> str:
    return json.dumps({**HEADER, **header}) + "\n" + "".join(json.dumps(step) + "\n" for step in GOOD_STEPS)


@FUZZ
@given(bad_journal_cases())
# Regressions. A schedule's seed, rate and steps were read only on a started stack: a
# traceback there, with the stack started for nothing.
@example(Case(("replay", "s.jsonl"), ("seed",), files=(("s.jsonl", _schedule(seed="x")),), also=("s.jsonl",)))
@example(
    Case(
        ("replay", "s.jsonl"),
        ("seconds",),
        files=(("s.jsonl", _schedule() + json.dumps({"step": "advance", "seconds": -3}) + "\n"),),
        also=("s.jsonl",),
    )
)
# A bad sink guarantee was blamed on "flags".
@example(
    Case(
        ("replay", "s.jsonl"),
        ("sink_guarantee",),
        files=(("s.jsonl", _schedule(sink_guarantee="bogus")),),
        also=("s.jsonl",),
    )
)
def test_bad_journals(case: Case) -> None:
    check(case)


# -- the valid pieces, and the real terminal ----------------------------------------------


def test_the_valid_pieces_are_valid() -> None:
    """What the cases mix their defects into is valid on its own: alone, each valid piece
    gets past every check (as far as starting a stack, where a command would), so a case's
    refusal is its defect's."""
    from datadrill.config import parse_config
    from datadrill.engine.loader import load_scenario

    settings_: dict[str, dict[str, Any]] = {}
    for (section, key), value in VALID_SETTINGS:
        settings_.setdefault(section, {})[key] = value
    parse_config(settings_, source="valid settings")
    parse_config(tomllib.loads(render_toml(settings_)), source="valid settings, as TOML")
    parse_config(tomllib.loads(GOOD_CONFIG), source="good.toml")
    with _working_directory([("all.py", scenario_source(VALID_FAULTS)), ("s.jsonl", _schedule())]):
        load_scenario(Path("all.py"))
        for argv in (
            ["validate", "good.py", "scen/good.py", "all.py"],
            ["list", "scen"],
            ["stack", "down", *(a for g in DOWN_GOOD for a in g.args)],
        ):
            outcome = run_in_process(argv)
            assert outcome.code == 0, (argv, outcome)
        for argv in (
            ["cleanup", "--state-dir", "state"],
            ["stack", "status", *(a for g in STATUS_GOOD for a in g.args)],
        ):
            outcome = run_in_process(argv)
            assert outcome.code == 1 and "no stack is running" in outcome.stdout + outcome.stderr, (
                argv,
                outcome,
            )
        started = [
            *(["run", "good.py", "all.py", *g.args] for g in RUN_GOOD),
            *(["stack", "up", *g.args] for g in STACK_UP_GOOD),
            ["replay", "s.jsonl", "--state-dir", "state"],
        ]
        for argv in started:
            with pytest.raises(StackWouldStart):
                run_in_process(argv)


# A handful for real: ``python -m datadrill.cli`` in a terminal-less process, nothing patched.
REAL = [
    Case(("run", "good.py", "--seed", "x"), ("--seed",), also=("'x'",)),
    Case(("nosuch",), ("nosuch",)),
    Case(("stack", "up", "--state-dir", "afile/state"), ("--state-dir",)),
    Case(("stack", "up", "--config", "drill.toml"), ("not valid TOML",), files=(("drill.toml", "[kafka\n"),)),
    Case(
        ("validate", "good.py", "bad.py"), ("SystemExit",), files=(("bad.py", "import sys\nsys.exit(0)\n"),)
    ),
    Case(
        ("run", "bad.py", "--state-dir", "state"),
        ("first line",),
        files=(("bad.py", 'raise ValueError("first line\\nsecond line")\n'),),
        also=("bad.py",),
    ),
]


@pytest.mark.parametrize("case", REAL, ids=[" ".join(case.argv) for case in REAL])
def test_no_traceback_reaches_a_terminal(case: Case) -> None:
    with _working_directory(case.files) as root:
        before = _snapshot(root)
        env = {k: v for k, v in os.environ.items() if k != "DATADRILL_STATE_DIR"}
        done = subprocess.run(
            [sys.executable, "-m", "datadrill.cli", *case.argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        after = _snapshot(root)
    outcome = Outcome(done.returncode, ANSI.sub("", done.stdout), ANSI.sub("", done.stderr))
    assert_refused(case, outcome, before, after)
