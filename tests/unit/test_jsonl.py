"""JSON lines: durable appends, one torn-line policy, incremental reading."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from datadrill.errors import ConfigError
from datadrill.jsonl import (
    JsonlAppender,
    JsonlTail,
    append_record,
    iter_records,
    read_records,
    write_atomically,
)


def _lines(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(_lines({"n": 1}, {"n": 2}) + '{"n": 3, "pay', encoding="utf-8")
    assert read_records(path) == [{"n": 1}, {"n": 2}]


def test_a_torn_multibyte_character_in_the_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(_lines({"n": 1}).encode() + '{"note": "é'.encode()[:-1])
    assert read_records(path) == [{"n": 1}]


def test_a_whole_last_record_without_its_newline_counts(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(_lines({"n": 1}) + '{"n": 2}', encoding="utf-8")
    assert list(iter_records(path)) == [(1, {"n": 1}), (2, {"n": 2})]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (_lines({"n": 1}) + '{"n": 2, "x\n' + _lines({"n": 3}), 2),  # damage in the middle
        (_lines({"n": 1}) + "{not json}\n", 2),  # a whole line (it has its newline) that is not JSON
        (_lines({"n": 1}) + "[1, 2]\n", 2),  # JSON, but not an object
        (_lines({"n": 1}) + "\n\n" + '"text"', 4),  # numbered as in an editor; blank lines count
    ],
)
def test_any_other_malformed_line_is_an_error_naming_file_and_line(
    tmp_path: Path, text: str, line: int
) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_records(path, expected="a test record")
    assert caught.value.source == str(path)
    assert caught.value.field == f"line {line}"
    assert "a test record" in str(caught.value)


def test_a_missing_file_is_an_error_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such journal file"):
        read_records(tmp_path / "none.jsonl", what="journal file")
    assert read_records(tmp_path / "none.jsonl", missing_ok=True) == []
    with pytest.raises(ConfigError, match="is a directory"):
        read_records(tmp_path)


def test_appends_are_fsynced_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "sub" / "f.jsonl"
    records = [{"n": i, "text": "ünïcode", "nested": {"a": [1, None, True]}} for i in range(5)]
    with JsonlAppender(path) as out:
        for count, record in enumerate(records, start=1):
            out.append(record)
            assert len(synced) == count  # on disk before append returned
            assert read_records(path) == records[:count]
    assert path.read_text(encoding="utf-8") == "".join(json.dumps(r) + "\n" for r in records)


def test_appending_continues_an_existing_file_and_close_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    append_record(path, {"b": 1, "a": 2}, sort_keys=True)
    out = JsonlAppender(path)
    out.append({"b": 3, "a": 4})
    out.close()
    out.close()
    with pytest.raises(ValueError, match="after close"):
        out.append({"n": 5})
    assert path.read_text(encoding="utf-8") == '{"a": 2, "b": 1}\n{"b": 3, "a": 4}\n'


def test_a_value_json_cannot_write_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    with JsonlAppender(path) as out, pytest.raises(TypeError):
        out.append({"path": object()})
    assert path.read_bytes() == b""
    append_record(path, {"path": Path("a/b")}, default=str)
    assert read_records(path) == [{"path": "a/b"}]


def test_an_append_after_a_dead_writers_torn_line_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(_lines({"n": 1}) + '{"n": 2, "trunc', encoding="utf-8")
    append_record(path, {"n": 3})
    assert path.read_text(encoding="utf-8") == _lines({"n": 1}, {"n": 3})


def test_an_append_after_a_whole_record_without_newline_ends_it(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(_lines({"n": 1}) + '{"n": 2}', encoding="utf-8")
    append_record(path, {"n": 3})
    assert read_records(path) == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_concurrent_appends_from_threads_give_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    shared = JsonlAppender(path)
    threads_n, per_thread = 8, 40
    # Lines longer than a write buffer, and writers that share one appender or open their own.
    payload = "x" * 20_000

    def write(worker: int) -> None:
        for i in range(per_thread):
            record = {"worker": worker, "i": i, "payload": payload}
            if worker % 2:
                shared.append(record)
            else:
                append_record(path, record)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared.close()
    records = read_records(path)
    assert len(records) == threads_n * per_thread
    assert all(r["payload"] == payload for r in records)
    for worker in range(threads_n):
        assert [r["i"] for r in records if r["worker"] == worker] == list(range(per_thread))


def test_write_atomically_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "schedule.jsonl"
    path.write_text("old\n", encoding="utf-8")
    write_atomically(path, [{"n": 1}, {"n": 2}])
    assert read_records(path) == [{"n": 1}, {"n": 2}]
    assert [p.name for p in tmp_path.iterdir()] == ["schedule.jsonl"]


def test_tail_reads_what_was_appended_since_it_last_looked(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail_from_start = JsonlTail(path, from_end=False)
    assert tail_from_start.read_new() == []  # no file yet
    append_record(path, {"n": 1})
    tail = JsonlTail(path)  # from the end: {"n": 1} belongs to the past
    assert tail.read_new() == []
    append_record(path, {"n": 2})
    with path.open("a", encoding="utf-8") as f:
        f.write('{"n": 3, "ha')  # still being written
    assert tail.read_new() == [{"n": 2}]
    assert tail.read_new() == []
    with path.open("a", encoding="utf-8") as f:
        f.write('lf": 1}\n')
    assert tail.read_new() == [{"n": 3, "half": 1}]
    assert tail_from_start.read_new() == [{"n": 1}, {"n": 2}, {"n": 3, "half": 1}]


def test_tail_names_the_line_of_a_malformed_record(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(_lines({"n": 1}, {"n": 2}), encoding="utf-8")
    tail = JsonlTail(path, expected="a supervisor event")
    with path.open("a", encoding="utf-8") as f:
        f.write(_lines({"n": 3}) + "oops\n")
    with pytest.raises(ConfigError) as caught:
        tail.read_new()
    assert caught.value.field == "line 4"
    assert "a supervisor event" in str(caught.value)


def test_tail_starts_over_on_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(_lines({"n": 1}, {"n": 2}), encoding="utf-8")
    tail = JsonlTail(path)
    path.write_text(_lines({"n": 9}), encoding="utf-8")
    assert tail.read_new() == [{"n": 9}]
