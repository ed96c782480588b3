"""Soak: every scenario, round after round, on ONE embedded stack; do the verdicts hold and
does the stack process leak? Goals: every verdict as expected, no leftover process, and
from the end of round 1 to the end of the last round the stack process's RSS grows by at
most 25%, its open descriptors by at most 10 and its threads by at most 5.

Each run is `datadrill run SCENARIO --state-dir X --report-dir DIR` in a fresh interpreter,
as a user runs it, so the runner's own memory stays out of the stack process's figures.
After each run the stack process is read from /proc: RSS, open descriptors, threads, its
live descendants; and any process the run left behind is counted.

    python bench/soak.py [--runs 5] [--scenarios scenarios/lag_spike.py 'scenarios/meta*.py']
                         [--state-dir DIR] [--report-dir DIR] [--json FILE]

Exit 0 when every goal is met, 1 when one is not, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datadrill.config import StackConfig

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"

# The verdict each shipped scenario gives on a healthy embedded stack, by module name. All
# of them are built to pass: tests/integration/test_scenarios.py asserts "passed" for
# calibration, metadata_loss and its two variants, and tests/integration/test_faults.py
# (test_fault_scenario_passes_and_leaves_nothing_behind) for the other eight. The faults
# break SLIs on purpose, but every scenario's runbook or automatic recovery brings them
# back inside its expectations. A scenario designed to fail goes here with its verdict.
EXPECTED_VERDICTS: dict[str, str] = {
    "broker_loss": "passed",  # a replicated cluster rides through; no detection expected
    "calibration": "passed",
    "catalog_outage": "passed",
    # The two CDC scenarios need a PostgreSQL source and the CDC relay (stack up --source
    # postgresql --relay cdc); on another stack their faults are refused before the run.
    "cdc_replication_lag": "passed",
    "cdc_slot_loss": "passed",  # the re-snapshot brings the dropped slot's gap back
    "connector_crash": "passed",
    # Backup older than Kafka's retention: restore, replay what Kafka kept, backfill the
    # reserve, repair the rest from the source; the CDC re-snapshot is measured beside it.
    "incident_replay": "passed",
    "kafka_errors": "passed",  # retries absorb the errors; no detection expected
    "lag_spike": "passed",
    "metadata_files_loss": "passed",
    "metadata_loss": "passed",
    "metadata_loss_reregister": "passed",
    "network_query_path": "passed",
    "schema_drift_enforced": "passed",
    "schema_drift_unenforced": "passed",  # reconciliation detects and repairs the bad rows
}
DEFAULT_EXPECTED = "passed"

# Growth allowed from the end of round 1 to the end of the last round. Round 1 is the
# warm-up. Most of it is the mock Kafka cluster, which lives in the stack process and keeps
# each partition's log in memory up to librdkafka's retention (5 MiB a partition): measured
# on an idle stack at 1000 orders/s, RSS rises 181 → 217 MiB in ~160 s (~160k orders) and
# then stays flat. A full round (12 scenarios, ~8 min) fills it; the DuckDB caches of the
# query service and the allocator's arenas also reach their working size. After it, RSS
# should stay flat but for allocator noise and a table that keeps growing, a few MiB on
# a ~220 MiB process. 25% (~55 MiB) sits well above that, while a leak of 1-2 MiB per run
# over the 48 runs after round 1 of a full soak exceeds it.
RSS_GROWTH_TOLERANCE = 0.25
KAFKA_WARM_S = 240.0  # the fill above takes ~160 s at 1000 orders/s, longer at lower rates
# Descriptors and threads are read three times 0.5 s apart and the smallest count is kept,
# so a request in flight (a control-API connection and its handler thread, a query) does
# not count; a leak stays in every read. What is left is a few connections a component
# holds open across a restart: 10 descriptors and 5 threads. One leaked per run is 48
# after round 1 of a full soak.
FD_GROWTH_TOLERANCE = 10
THREAD_GROWTH_TOLERANCE = 5

RUN_TIMEOUT_S = 900.0  # the longest scenario gives up after 180 s plus a 60 s steady state
LEFTOVER_GRACE_S = 5.0  # how long a run's children may take to exit after it
READS = 3  # reads per sample, READ_GAP_S apart
READ_GAP_S = 0.5

# Every `datadrill run` gets this variable, ``<soak id>:<run number>``; children inherit it,
# so a process left behind by a run is found even after it was re-parented, and processes
# of other people's runs on the same machine are never counted.
TAG_VARIABLE = "DATADRILL_SOAK_RUN"


# --- /proc, as pure functions over its text ------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, Z, ...
    ppid: int


def parse_stat(text: str) -> ProcStat:
    """The state and parent of a /proc/<pid>/stat line. The command name is in parentheses
    and may itself hold spaces and parentheses, so fields are counted from its last ')'.

    Example::

        parse_stat("42 (python (x)) S 7 42 42 0 -1")  # ProcStat(state='S', ppid=7)
    """
    fields = text.rsplit(")", 1)[1].split()
    return ProcStat(state=fields[0], ppid=int(fields[1]))


@dataclass(frozen=True)
class ProcStatus:
    rss_bytes: int
    threads: int


def parse_status(text: str) -> ProcStatus:
    """VmRSS and Threads of a /proc/<pid>/status text. A kernel thread or a zombie has no
    VmRSS line: 0.

    Example::

        parse_status("VmRSS:\\t  2048 kB\\nThreads:\\t4\\n")  # ProcStatus(rss_bytes=2097152, threads=4)
    """
    rss = 0
    threads = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            number, unit = value.split()
            if unit != "kB":
                raise ValueError(f"VmRSS in {unit!r}, expected kB: {line!r}")
            rss = int(number) * 1024
        elif key == "Threads":
            threads = int(value)
    return ProcStatus(rss_bytes=rss, threads=threads)


def environ_value(raw: bytes, name: str) -> str | None:
    """The value of ``name`` in a /proc/<pid>/environ blob (NUL-separated NAME=value)."""
    prefix = name.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def descendants(root: int, parents: Mapping[int, int]) -> set[int]:
    """Every process below ``root`` in a pid → parent-pid map (not ``root`` itself).

    Example::

        descendants(1, {2: 1, 3: 2, 4: 9})  # {2, 3}
    """
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def ancestors(pid: int, parents: Mapping[int, int]) -> set[int]:
    """``pid`` and every process above it."""
    found = {pid}
    while (pid := parents.get(pid, 0)) > 0 and pid not in found:
        found.add(pid)
    return found


# --- figures -----------------------------------------------------------------------------


def slope(values: Sequence[float]) -> float:
    """The least-squares slope of ``values`` against their index (change per step); NaN
    for fewer than two values.

    Example::

        slope([10, 12, 14])  # 2.0
    """
    n = len(values)
    if n < 2:
        return float("nan")
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    covariance = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(values))
    variance = sum((i - mean_x) ** 2 for i in range(n))
    return covariance / variance


def expected_verdict(path: Path, table: Mapping[str, str] = EXPECTED_VERDICTS) -> str:
    """The verdict ``path``'s scenario is expected to give (``DEFAULT_EXPECTED`` for a
    module the table does not know)."""
    return table.get(path.stem, DEFAULT_EXPECTED)


def select_scenarios(patterns: Sequence[str], *, default_dir: Path = SCENARIOS) -> list[Path]:
    """Scenario modules from paths and glob patterns, in the order given, each once; every
    module of ``default_dir`` when there are none. Raises ValueError naming a pattern that
    matches no .py file.

    Example::

        select_scenarios(["scenarios/lag_spike.py", "scenarios/meta*.py"])
    """
    if not patterns:
        return sorted(p for p in default_dir.glob("*.py") if not p.name.startswith("_"))
    chosen: list[Path] = []
    for pattern in patterns:
        as_path = Path(pattern)
        if as_path.is_absolute():  # Path.glob takes relative patterns only
            base, relative = Path(as_path.anchor), str(as_path.relative_to(as_path.anchor))
        else:
            base, relative = Path(), pattern
        matches = sorted(m for m in base.glob(relative) if m.suffix == ".py" and m.is_file())
        if not matches:
            raise ValueError(f"--scenarios {pattern!r} matches no .py file")
        for match in matches:
            if match.resolve() not in {c.resolve() for c in chosen}:
                chosen.append(match)
    return chosen


@dataclass(frozen=True)
class Sample:
    """The stack process after a run (or before the first): RSS from the last read; counts
    as the smallest of the reads."""

    label: str  # "stack up" or "<scenario> round <n>"
    round: int  # 0 before the first run
    rss_bytes: int
    fds: int
    threads: int
    descendants: int  # live (not zombie) processes below the stack process
    zombies: int  # zombies below it (children it has not reaped)
    tree_rss_bytes: int  # the stack process and its live descendants
    leftovers: tuple[str, ...] = ()  # "<pid> <cmdline>" of processes runs left behind


@dataclass(frozen=True)
class RunRecord:
    scenario: str  # module name, e.g. "metadata_loss"
    round: int
    verdict: str  # the report's verdict, or "no report (exit N)"
    expected: str
    exit_code: int
    wall_s: float
    reasons: tuple[str, ...] = ()

    @property
    def as_expected(self) -> bool:
        return self.verdict == self.expected


@dataclass(frozen=True)
class Goals:
    rss_growth: float = RSS_GROWTH_TOLERANCE
    fd_growth: int = FD_GROWTH_TOLERANCE
    thread_growth: int = THREAD_GROWTH_TOLERANCE


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def judge(
    runs: Sequence[RunRecord],
    samples: Sequence[Sample],
    *,
    rounds: int,
    per_round: int,
    goals: Goals | None = None,
) -> Findings:
    """What the soak found. ``samples[0]`` is read before the first run, then one per run
    in order; growth is measured from the end of round 1 (``samples[per_round]``) to the
    last sample, so round 1 can warm up.

    Example::

        judge(runs, samples, rounds=5, per_round=12).problems  # [] when every goal is met
    """
    goals = goals or Goals()
    found = Findings()
    for run in runs:
        if not run.as_expected:
            why = f": {'; '.join(run.reasons)}" if run.reasons else ""
            found.problems.append(
                f"{run.scenario} round {run.round}: verdict {run.verdict!r}, expected {run.expected!r}{why}"
            )
    leftovers = sorted({entry for s in samples for entry in s.leftovers})
    if leftovers:
        found.problems.append(f"{len(leftovers)} process(es) left behind by runs: " + "; ".join(leftovers))
    if not samples:
        return found
    first, last = samples[0], samples[-1]
    if last.descendants > first.descendants:
        found.problems.append(
            f"the stack process has {last.descendants} live descendants, {first.descendants} when it "
            "started: it leaks child processes"
        )
    if last.zombies:
        found.problems.append(f"the stack process has {last.zombies} unreaped children (zombies)")
    if rounds < 2 or len(samples) <= per_round:
        found.notes.append("growth not judged: it is measured from the end of round 1, so needs --runs >= 2")
        return found
    warm = samples[per_round]
    if warm.rss_bytes and last.rss_bytes > warm.rss_bytes * (1 + goals.rss_growth):
        found.problems.append(
            f"RSS grew {last.rss_bytes / warm.rss_bytes - 1:.0%} after round 1 "
            f"({mib(warm.rss_bytes)} → {mib(last.rss_bytes)}), allowed {goals.rss_growth:.0%}"
        )
    if last.fds - warm.fds > goals.fd_growth:
        found.problems.append(
            f"open descriptors grew by {last.fds - warm.fds} after round 1 ({warm.fds} → {last.fds}), "
            f"allowed {goals.fd_growth}"
        )
    if last.threads - warm.threads > goals.thread_growth:
        found.problems.append(
            f"threads grew by {last.threads - warm.threads} after round 1 ({warm.threads} → "
            f"{last.threads}), allowed {goals.thread_growth}"
        )
    return found


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


# --- reading the machine -------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    stat: ProcStat
    cmdline: str
    tag: str | None  # the soak tag in its environment, if any


def read_processes() -> dict[int, Proc]:
    """Every process /proc shows now; one that exits while being read is left out."""
    found: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_stat((entry / "stat").read_text())
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            try:
                tag = environ_value((entry / "environ").read_bytes(), TAG_VARIABLE)
            except PermissionError:  # not ours to read, so not one of our runs
                tag = None
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        found[int(entry.name)] = Proc(int(entry.name), stat, cmdline.strip(), tag)
    return found


@dataclass(frozen=True)
class Read:
    rss_bytes: int
    fds: int
    threads: int
    descendants: frozenset[int]
    zombies: int
    tree_rss_bytes: int
    leftovers: frozenset[tuple[int, str]]


class StackWatch:
    """Reads the stack process ``pid`` and finds processes runs of this soak left behind:
    any process carrying the soak's tag, or naming the stack's state directory on its
    command line, that is not the stack, below it, or this script."""

    def __init__(self, pid: int, state_dir: Path, soak_id: str) -> None:
        self.pid = pid
        self.state_dir = str(state_dir.resolve())
        self.soak_id = soak_id

    def alive(self) -> bool:
        try:
            return parse_stat(Path(f"/proc/{self.pid}/stat").read_text()).state != "Z"
        except FileNotFoundError:
            return False

    def tag(self, run_number: int) -> str:
        return f"{self.soak_id}:{run_number}"

    def read(self) -> Read:
        procs = read_processes()
        parents = {pid: p.stat.ppid for pid, p in procs.items()}
        below = descendants(self.pid, parents)
        live = frozenset(p for p in below if procs[p].stat.state != "Z")
        status = parse_status(Path(f"/proc/{self.pid}/status").read_text())
        fds = sum(1 for _ in Path(f"/proc/{self.pid}/fd").iterdir())
        tree_rss = status.rss_bytes + sum(_rss(p) for p in live)
        ours = ancestors(os.getpid(), parents) | {self.pid} | below
        leftovers = frozenset(
            (p.pid, p.cmdline)
            for p in procs.values()
            if p.pid not in ours
            and p.stat.state != "Z"
            and (
                (p.tag or "").startswith(self.soak_id + ":")
                or ("datadrill" in p.cmdline and self.state_dir in p.cmdline)
            )
        )
        return Read(
            status.rss_bytes,
            fds,
            status.threads,
            live,
            len(below) - len(live),
            tree_rss,
            leftovers,
        )

    def sample(self, label: str, round_: int) -> Sample:
        """Three reads 0.5 s apart: RSS from the last, counts the smallest, leftovers those
        in every read (a process on its way out is not a leak)."""
        reads = []
        for i in range(READS):
            if i:
                time.sleep(READ_GAP_S)
            reads.append(self.read())
        last = reads[-1]
        leftovers = frozenset.intersection(*(r.leftovers for r in reads))
        return Sample(
            label=label,
            round=round_,
            rss_bytes=last.rss_bytes,
            fds=min(r.fds for r in reads),
            threads=min(r.threads for r in reads),
            descendants=min(len(r.descendants) for r in reads),
            zombies=min(r.zombies for r in reads),
            tree_rss_bytes=last.tree_rss_bytes,
            leftovers=tuple(f"{pid} {cmd[:160]}" for pid, cmd in sorted(leftovers)),
        )

    def wait_for_run_children(self, run_number: int, timeout_s: float) -> None:
        """Give what a finished run started ``timeout_s`` to exit."""
        deadline = time.monotonic() + timeout_s
        tag = self.tag(run_number)
        while time.monotonic() < deadline:
            if not any(p.tag == tag and p.stat.state != "Z" for p in read_processes().values()):
                return
            time.sleep(0.25)


def _rss(pid: int) -> int:
    try:
        return parse_status(Path(f"/proc/{pid}/status").read_text()).rss_bytes
    except (FileNotFoundError, ProcessLookupError):
        return 0


# --- running ------------------------------------------------------------------------------


def run_scenario(path: Path, *, state_dir: Path, report_dir: Path, tag: str, round_: int) -> RunRecord:
    """``datadrill run`` in a fresh interpreter, its output in ``report_dir``/run.log."""
    report_dir.mkdir(parents=True, exist_ok=True)
    log_path = report_dir / "run.log"
    command = [
        sys.executable,
        "-m",
        "datadrill.cli",
        "run",
        str(path),
        "--state-dir",
        str(state_dir),
        "--report-dir",
        str(report_dir),
    ]
    env = {**os.environ, TAG_VARIABLE: tag}
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            code = process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    wall_s = time.monotonic() - started
    expected = expected_verdict(path)
    report_path = report_dir / "report.json"
    if not report_path.is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        return RunRecord(path.stem, round_, f"no report (exit {code})", expected, code, wall_s, tuple(tail))
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    verdict = str(report["verdict"])
    return RunRecord(path.stem, round_, verdict, expected, code, wall_s, tuple(report.get("reasons", ())))


@contextlib.contextmanager
def soak_stack(state_dir: Path | None, config: StackConfig | None = None) -> Iterator[tuple[int, Path, str]]:
    """(stack pid, state dir, origin) of the stack running in ``state_dir``, or of one
    started there (default: a temporary directory; ``config``: the defaults) and stopped
    afterwards."""
    from datadrill.config import parse_config
    from datadrill.session import stack_session

    with contextlib.ExitStack() as exits:
        if state_dir is None:
            tmp = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="datadrill-soak-")))
            state_dir = tmp / ".datadrill"
        state_dir = state_dir.resolve()
        session = exits.enter_context(
            stack_session(
                state_dir=state_dir,
                start_in=state_dir,
                config=config or parse_config({}, source="bench/soak.py"),
                timeout_s=120,
            )
        )
        pid = session.stack.pid
        if pid is None:
            raise RuntimeError(f"the stack in {state_dir} has no pid in its state file")
        yield pid, state_dir, session.origin


def print_table(runs: Sequence[RunRecord], scenarios: Iterable[Path]) -> None:
    print()
    print(f"{'scenario':26} {'runs':>4}  {'expected':14} {'as expected':>11}  {'wall median':>11}  verdicts")
    for path in scenarios:
        mine = [r for r in runs if r.scenario == path.stem]
        if not mine:
            continue
        ok = sum(r.as_expected for r in mine)
        median = statistics.median(r.wall_s for r in mine)
        verdicts = ", ".join(sorted({r.verdict for r in mine}))
        mark = "y" if ok == len(mine) else "n"
        print(
            f"{path.stem:26} {len(mine):4}  {mine[0].expected:14} {mark:>4} {ok:>2}/{len(mine):<2}  "
            f"{median:9.1f} s  {verdicts}"
        )


def print_resources(samples: Sequence[Sample], per_round: int, goals: Goals) -> None:
    first, last = samples[0], samples[-1]
    after = [s.rss_bytes for s in samples[1:]]
    warm_rss = [s.rss_bytes for s in samples[per_round:]]
    print()
    print(f"stack process, read before the first run and after each of {len(samples) - 1} runs:")
    line = f"  RSS          first {mib(first.rss_bytes):>10}  last {mib(last.rss_bytes):>10}"
    line += f"  max {mib(max(s.rss_bytes for s in samples)):>10}"
    print(line)
    print(
        f"  RSS slope    {slope(after) / 1024:+.0f} KiB/run over every run, "
        f"{slope(warm_rss) / 1024:+.0f} KiB/run from the end of round 1"
    )
    if len(samples) > per_round:
        warm = samples[per_round]
        growth = last.rss_bytes / warm.rss_bytes - 1 if warm.rss_bytes else float("nan")
        print(
            f"  RSS after round 1 {mib(warm.rss_bytes)} → {mib(last.rss_bytes)}: {growth:+.1%} "
            f"(goal ≤ +{goals.rss_growth:.0%})"
        )
    fds = [s.fds for s in samples]
    threads = [s.threads for s in samples]
    warm_fds = samples[per_round].fds if len(samples) > per_round else None
    warm_threads = samples[per_round].threads if len(samples) > per_round else None
    print(
        f"  fds          first {fds[0]:>6}  last {fds[-1]:>6}  max {max(fds):>6}  after round 1 {warm_fds}"
        f" (goal: grows ≤ {goals.fd_growth} after round 1)"
    )
    print(
        f"  threads      first {threads[0]:>6}  last {threads[-1]:>6}  max {max(threads):>6}  after round 1 "
        f"{warm_threads} (goal: grows ≤ {goals.thread_growth} after round 1)"
    )
    print(
        f"  descendants  first {first.descendants:>6}  last {last.descendants:>6}  "
        f"zombies last {last.zombies} (goal: no more than at start, no zombie)"
    )
    print(
        f"  stack tree RSS (with its components) first {mib(first.tree_rss_bytes)}, last {mib(last.tree_rss_bytes)}"
    )
    leftover_max = max(len(s.leftovers) for s in samples)
    print(f"  processes left behind by runs: at most {leftover_max} at once (goal: 0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="Rounds: each runs every scenario once.")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=[],
        metavar="PATH_OR_GLOB",
        help="Scenario modules or glob patterns (default: scenarios/*.py).",
    )
    parser.add_argument(
        "--state-dir", type=Path, help="Use the stack running here, or start one here (default: a temp dir)."
    )
    parser.add_argument("--report-dir", type=Path, help="Keep each run's reports here (default: discarded).")
    parser.add_argument("--json", type=Path, dest="json_file", help="Write every figure to this file.")
    parser.add_argument(
        "--cdc",
        action="store_true",
        help="Start the stack with a PostgreSQL source and the CDC relay (the CDC scenarios need "
        "them; without it they are left out).",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    try:
        scenarios = select_scenarios(args.scenarios)
    except ValueError as exc:
        parser.error(str(exc))
    if not scenarios:
        parser.error(f"no scenario module in {SCENARIOS}")

    from datadrill.config import parse_config
    from datadrill.engine.loader import load_scenario
    from datadrill.engine.preflight import check_config_source
    from datadrill.errors import ConfigError, DrillError

    cdc = {"source": {"server": "postgresql"}, "relay": {"mode": "cdc"}} if args.cdc else {}
    config = parse_config(cdc, source="bench/soak.py")
    runnable = []
    for path in scenarios:  # bad input before a stack starts
        try:
            scenario = load_scenario(path)
        except DrillError as exc:
            parser.error(f"{path}: {exc}")
        try:
            check_config_source(scenario, config, source=str(path))
        except ConfigError:
            print(f"left out {path.stem}: it needs a PostgreSQL source and the CDC relay (--cdc)")
            continue
        runnable.append(path)
    scenarios = runnable
    unknown = [p.stem for p in scenarios if p.stem not in EXPECTED_VERDICTS]
    if unknown:
        print(f"no expected verdict recorded for {', '.join(unknown)}: expecting {DEFAULT_EXPECTED!r}")

    goals = Goals()
    runs: list[RunRecord] = []
    samples: list[Sample] = []
    stack_died = ""
    per_round = len(scenarios)
    started = time.monotonic()
    with contextlib.ExitStack() as exits:
        if args.report_dir is not None:
            reports = args.report_dir.resolve()
        else:
            reports = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="datadrill-soak-reports-")))
        pid, state_dir, origin = exits.enter_context(soak_stack(args.state_dir, config))
        watch = StackWatch(pid, state_dir, soak_id=uuid.uuid4().hex[:12])
        up = (
            "attached to the running"
            if origin == "running"
            else f"started in {time.monotonic() - started:.1f} s:"
        )
        print(f"{up} embedded stack, pid {pid}; {len(scenarios)} scenarios × {args.runs} rounds")
        samples.append(watch.sample("stack up", 0))
        print(
            f"{'':26} {'round':>5}  {'verdict':14} {'wall':>7}  {'RSS':>10} {'fds':>5} {'threads':>7}"
            f" {'desc':>4} {'left':>4}"
        )
        s0 = samples[0]
        print(
            f"{'(stack up)':26} {0:>5}  {'':14} {'':>7}  {mib(s0.rss_bytes):>10} {s0.fds:>5} "
            f"{s0.threads:>7} {s0.descendants:>4} {len(s0.leftovers):>4}"
        )
        number = 0
        for round_ in range(1, args.runs + 1):
            for path in scenarios:
                number += 1
                if not watch.alive():
                    stack_died = f"the stack process {pid} died before {path.stem} round {round_}"
                    break
                record = run_scenario(
                    path,
                    state_dir=state_dir,
                    report_dir=reports / f"{path.stem}-round{round_}",
                    tag=watch.tag(number),
                    round_=round_,
                )
                runs.append(record)
                if not watch.alive():
                    stack_died = f"the stack process {pid} died during {path.stem} round {round_}"
                    break
                watch.wait_for_run_children(number, LEFTOVER_GRACE_S)
                try:
                    sample = watch.sample(f"{path.stem} round {round_}", round_)
                except FileNotFoundError:  # /proc/<pid> went away while being read
                    stack_died = f"the stack process {pid} died after {path.stem} round {round_}"
                    break
                samples.append(sample)
                verdict = record.verdict + ("" if record.as_expected else " (!)")
                print(
                    f"{path.stem:26} {round_:>5}  {verdict:14} {record.wall_s:6.1f}s  "
                    f"{mib(sample.rss_bytes):>10} {sample.fds:>5} {sample.threads:>7} "
                    f"{sample.descendants:>4} {len(sample.leftovers):>4}",
                    flush=True,
                )
            if stack_died:
                break

    total_s = time.monotonic() - started
    findings = judge(runs, samples, rounds=args.runs, per_round=per_round, goals=goals)
    round_1_s = sum(r.wall_s for r in runs if r.round == 1)
    if args.runs >= 2 and round_1_s < KAFKA_WARM_S:
        findings.notes.append(
            f"round 1 took {round_1_s:.0f} s, less than the ~{KAFKA_WARM_S:.0f} s the mock Kafka logs "
            "take to fill: RSS growth after it still includes that fill (up to ~36 MiB)"
        )
    if stack_died:
        findings.problems.insert(0, stack_died)
    print_table(runs, scenarios)
    print_resources(samples, per_round, goals)
    print()
    print(f"{len(runs)} runs in {total_s / 60:.1f} min including stack start-up and stop")
    for note in findings.notes:
        print(f"note: {note}")
    for problem in findings.problems:
        print(f"NOT met: {problem}")
    print(f"goals: {'met' if not findings.problems else 'NOT met'}")
    if args.json_file is not None:
        document = {
            "rounds": args.runs,
            "scenarios": [p.stem for p in scenarios],
            "goals": asdict(goals),
            "total_s": total_s,
            "runs": [asdict(r) | {"as_expected": r.as_expected} for r in runs],
            "samples": [asdict(s) for s in samples],
            "rss_slope_bytes_per_run": _finite(slope([s.rss_bytes for s in samples[1:]])),
            "rss_slope_after_round_1_bytes_per_run": _finite(
                slope([s.rss_bytes for s in samples[per_round:]])
            ),
            "problems": findings.problems,
            "notes": findings.notes,
        }
        args.json_file.write_text(json.dumps(document, indent=2, allow_nan=False, default=str) + "\n")
    return 1 if findings.problems else 0


if __name__ == "__main__":
    sys.exit(main())
