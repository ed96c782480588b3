"""bench/soak.py's pure helpers: /proc parsing, the process tree, the RSS slope, the
scenario selection, the expected-verdict table and how the soak is judged. No process is
started; the script is loaded from its file, as bench/ is not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", BENCH / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_soak"] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


soak = _load()


def test_stat_with_spaces_and_parentheses_in_the_command_name() -> None:
    stat = soak.parse_stat("4242 (python (x) y) Z 17 4242 4242 0 -1 4194560")
    assert (stat.state, stat.ppid) == ("Z", 17)


def test_status_gives_rss_and_threads() -> None:
    text = "Name:\tpython\nVmRSS:\t  123456 kB\nRssAnon:\t 1 kB\nThreads:\t17\n"
    status = soak.parse_status(text)
    assert status.rss_bytes == 123456 * 1024
    assert status.threads == 17


def test_status_of_a_zombie_has_no_rss() -> None:
    assert soak.parse_status("Name:\tsink\nState:\tZ (zombie)\nThreads:\t1\n").rss_bytes == 0


def test_environ_value() -> None:
    raw = b"PATH=/usr/bin\0DATADRILL_SOAK_RUN=abc:3\0X=DATADRILL_SOAK_RUN=no\0"
    assert soak.environ_value(raw, "DATADRILL_SOAK_RUN") == "abc:3"
    assert soak.environ_value(raw, "HOME") is None


def test_descendants_and_ancestors() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    assert soak.descendants(10, parents) == {11, 12, 13}
    assert soak.descendants(12, parents) == set()
    assert soak.ancestors(12, parents) == {12, 11, 10, 1}


def test_descendants_survive_a_cycle() -> None:
    # pids are reused: a map read while processes come and go can hold a loop
    assert soak.descendants(1, {2: 1, 3: 2, 1: 3}) == {1, 2, 3}


def test_slope_is_the_least_squares_change_per_run() -> None:
    assert soak.slope([10.0, 12.0, 14.0, 16.0]) == pytest.approx(2.0)
    assert soak.slope([5.0, 5.0, 5.0]) == pytest.approx(0.0)
    assert soak.slope([0.0, 3.0, 0.0, 3.0]) == pytest.approx(0.6)
    assert soak.slope([1.0]) != soak.slope([1.0])  # NaN: no slope from one value


def test_every_shipped_scenario_has_an_expected_verdict() -> None:
    shipped = {p.stem for p in (BENCH.parent / "scenarios").glob("*.py") if not p.name.startswith("_")}
    assert shipped == set(soak.EXPECTED_VERDICTS)
    verdicts = {"passed", "SLO violated", "not detected", "not recovered", "aborted", "error"}
    assert set(soak.EXPECTED_VERDICTS.values()) <= verdicts
    assert soak.expected_verdict(Path("elsewhere/new_one.py"), {}) == soak.DEFAULT_EXPECTED
    assert soak.expected_verdict(Path("x/lag_spike.py"), {"lag_spike": "not detected"}) == "not detected"


def test_select_scenarios_from_paths_and_globs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a.py", "b.py", "c.py", "_helper.py", "notes.txt"):
        (tmp_path / name).write_text("")
    assert [p.name for p in soak.select_scenarios([], default_dir=tmp_path)] == ["a.py", "b.py", "c.py"]
    monkeypatch.chdir(tmp_path)
    chosen = soak.select_scenarios(["c.py", "*.py"])
    assert [p.name for p in chosen] == ["c.py", "_helper.py", "a.py", "b.py"]  # in order, each once
    absolute = soak.select_scenarios([str(tmp_path / "[ab].py")])
    assert [p.name for p in absolute] == ["a.py", "b.py"]
    with pytest.raises(ValueError, match=r"--scenarios 'nope\*\.py' matches no \.py file"):
        soak.select_scenarios(["nope*.py"])


def _sample(rss_mib: float = 100, fds: int = 50, threads: int = 20, **kw: object) -> object:
    fields: dict[str, object] = {
        "label": "x",
        "round": 1,
        "rss_bytes": int(rss_mib * 2**20),
        "fds": fds,
        "threads": threads,
        "descendants": 3,
        "zombies": 0,
        "tree_rss_bytes": 0,
    }
    fields.update(kw)
    return soak.Sample(**fields)


def _run(verdict: str = "passed", expected: str = "passed") -> object:
    return soak.RunRecord("lag_spike", 1, verdict, expected, 0, 30.0, ("why",))


def test_a_quiet_soak_meets_every_goal() -> None:
    samples = [_sample(80), _sample(100), _sample(110), _sample(120), _sample(124)]
    found = soak.judge([_run()] * 4, samples, rounds=2, per_round=2)
    assert found.problems == []
    assert found.notes == []


def test_growth_is_measured_from_the_end_of_round_1() -> None:
    # Round 1 (samples 1-2) may grow from start-up; after it RSS 100 → 126 MiB is +26%.
    samples = [_sample(50), _sample(90), _sample(100), _sample(110), _sample(126)]
    (problem,) = soak.judge([_run()] * 4, samples, rounds=2, per_round=2).problems
    assert problem.startswith("RSS grew 26% after round 1 (100.0 MiB → 126.0 MiB)")
    samples = [_sample(fds=40), _sample(), _sample(), _sample(), _sample(fds=61, threads=26)]
    problems = soak.judge([_run()] * 4, samples, rounds=2, per_round=2).problems
    assert problems == [
        "open descriptors grew by 11 after round 1 (50 → 61), allowed 10",
        "threads grew by 6 after round 1 (20 → 26), allowed 5",
    ]


def test_one_round_is_not_judged_for_growth() -> None:
    samples = [_sample(10), _sample(100), _sample(1000)]
    found = soak.judge([_run()] * 2, samples, rounds=1, per_round=2)
    assert found.problems == []
    assert found.notes and "--runs >= 2" in found.notes[0]


def test_unexpected_verdicts_and_leftovers_are_problems() -> None:
    samples = [
        _sample(),
        _sample(leftovers=("7 python -m datadrill.cli run x.py",)),
        _sample(leftovers=("7 python -m datadrill.cli run x.py",)),
    ]
    runs = [_run(), _run("SLO violated")]
    problems = soak.judge(runs, samples, rounds=1, per_round=2).problems
    assert problems == [
        "lag_spike round 1: verdict 'SLO violated', expected 'passed': why",
        "1 process(es) left behind by runs: 7 python -m datadrill.cli run x.py",
    ]


def test_the_stack_leaking_children_is_a_problem() -> None:
    samples = [_sample(descendants=3), _sample(descendants=4, zombies=1)]
    problems = soak.judge([_run()], samples, rounds=1, per_round=1).problems
    assert problems == [
        "the stack process has 4 live descendants, 3 when it started: it leaks child processes",
        "the stack process has 1 unreaped children (zombies)",
    ]
