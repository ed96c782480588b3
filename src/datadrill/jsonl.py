"""JSON lines, the one way datadrill writes and reads them: the run journal, the fault
ledger, the supervisor's ``events.jsonl`` and the search's schedule journals.

Writing: one ``json.dumps`` line per record, appended, flushed and fsync'd before
:meth:`JsonlAppender.append` returns, under an exclusive ``flock`` so threads and processes
writing the same file never interleave.

The torn-line policy, the same for every file: a writer killed mid-record leaves a last
line without its newline. A last line that does not end in a newline and does not parse
was being written when its writer died: readers ignore it, and the next append removes it
(under the lock, so it can only be a dead writer's). A last line that parses but lacks its
newline is a whole record (only the newline was lost): it counts, and the next append
ends it. Any other malformed line is damage, not a crash: a :class:`ConfigError` naming the
file and the line number.

Example::

    with JsonlAppender(run_dir / "journal.jsonl") as out:
        out.append({"type": "run_started", "t": 0.0})
    for number, record in iter_records(run_dir / "journal.jsonl"):
        ...
    tail = JsonlTail(events_file)      # from the end: only what is appended from now on
    new_records = tail.read_new()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from datadrill.errors import ConfigError

_SNIPPET = 80
_SCAN_CHUNK = 64 * 1024


def _encode(record: Mapping[str, Any], *, sort_keys: bool, default: Callable[[Any], Any] | None) -> bytes:
    return (json.dumps(record, sort_keys=sort_keys, default=default) + "\n").encode("utf-8")


def _snippet(raw: bytes) -> str:
    return raw[:_SNIPPET].decode("utf-8", errors="replace")


def _parse(raw: bytes) -> Any:
    """The JSON value of one line; ValueError (JSONDecodeError, UnicodeDecodeError) if none."""
    return json.loads(raw.decode("utf-8"))


def _heal(handle: BinaryIO) -> None:
    """End or remove a last line a dead writer left without its newline. Called under the
    exclusive lock: no live writer is mid-record, so an unterminated line is a dead one's."""
    fd = handle.fileno()
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = size
    while start > 0:
        chunk_start = max(0, start - _SCAN_CHUNK)
        newline = os.pread(fd, start - chunk_start, chunk_start).rfind(b"\n")
        if newline >= 0:
            start = chunk_start + newline + 1
            break
        start = chunk_start
    torn = os.pread(fd, size - start, start)
    try:
        whole = isinstance(_parse(torn), dict)
    except ValueError:
        whole = False
    if whole:
        handle.write(b"\n")  # the record was complete; only its newline was lost
    else:
        os.ftruncate(fd, start)  # never a record: readers ignore it, appends must not follow it


class JsonlAppender:
    """Appends records to a JSON-lines file, one fsync'd line each; safe across threads and
    processes (an exclusive ``flock`` per record). ``close`` is idempotent.

    Example::

        with JsonlAppender(path, sort_keys=True) as out:
            out.append({"event": "process_exited", "name": "sink"})
    """

    def __init__(
        self, path: Path, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None
    ) -> None:
        self.path = path
        self._sort_keys = sort_keys
        self._default = default
        path.parent.mkdir(parents=True, exist_ok=True)
        # Append mode: every write lands at the end, whoever else appends. Read access is
        # for healing a torn last line.
        self._handle: BinaryIO = path.open("a+b")
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line; it is on disk when this returns."""
        # Serialised before the lock: a record that cannot be written changes nothing.
        line = _encode(record, sort_keys=self._sort_keys, default=self._default)
        with self._lock:
            if self._handle.closed:
                raise ValueError(f"{self.path}: append after close")
            fd = self._handle.fileno()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                _heal(self._handle)
                self._handle.write(line)
                self._handle.flush()
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def append_record(
    path: Path,
    record: Mapping[str, Any],
    *,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """Open, append one fsync'd record, close: for writers that hold no file open between
    records (the fault ledger, the supervisor's event log)."""
    with JsonlAppender(path, sort_keys=sort_keys, default=default) as out:
        out.append(record)


def write_atomically(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Replace ``path`` with ``records``, all or nothing (a temporary file, fsync'd, then
    renamed over it): for files written whole, such as a saved schedule."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        for record in records:
            handle.write(_encode(record, sort_keys=False, default=None))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def _read_bytes(path: Path, *, what: str, missing_ok: bool) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return b""
        raise ConfigError(str(path), "(file)", str(path), f"no such {what}") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "(file)", str(path), f"is a directory, not a {what}") from None


def _record(path: Path, number: int, raw: bytes, expected: str) -> dict[str, Any]:
    try:
        record = _parse(raw)
    except ValueError:
        raise ConfigError(str(path), f"line {number}", _snippet(raw), expected) from None
    if not isinstance(record, dict):
        raise ConfigError(str(path), f"line {number}", _snippet(raw), expected)
    return record


def iter_records(
    path: Path, *, what: str = "JSON-lines file", expected: str = "a JSON object", missing_ok: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for every record in ``path``, numbered from 1; blank lines
    are skipped, a torn last line is ignored (see the module docstring).

    ``what`` names the file in "no such ..." errors; ``expected`` says what a line should
    be in the error for a malformed one. A missing file is an error unless ``missing_ok``.
    """
    data = _read_bytes(path, what=what, missing_ok=missing_ok)
    lines = data.split(b"\n")
    # After a final newline split() leaves b""; otherwise the last piece is unterminated.
    unterminated = lines.pop()
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield number, _record(path, number, raw, expected)
    if unterminated.strip():
        try:
            record = _parse(unterminated)
        except ValueError:
            return  # a dead writer's torn line
        if not isinstance(record, dict):
            raise ConfigError(str(path), f"line {len(lines) + 1}", _snippet(unterminated), expected)
        yield len(lines) + 1, record


def read_records(
    path: Path, *, what: str = "JSON-lines file", expected: str = "a JSON object", missing_ok: bool = False
) -> list[dict[str, Any]]:
    """Every record in ``path`` (see :func:`iter_records`)."""
    return [record for _, record in iter_records(path, what=what, expected=expected, missing_ok=missing_ok)]


class JsonlTail:
    """Reads a JSON-lines file incrementally: each :meth:`read_new` returns the records
    appended since the last call. A line still being written is left for the next call.

    ``from_end`` (the default) skips what the file holds already: only records appended
    from now on are returned. A file that shrinks was replaced: it is read from its start.

    Example::

        tail = JsonlTail(paths.events_file)
        exits = [e for e in tail.read_new() if e.get("event") == "process_exited"]
    """

    def __init__(self, path: Path, *, from_end: bool = True, expected: str = "a JSON object") -> None:
        self.path = path
        self._expected = expected
        self.offset = 0
        self.lines = 0  # complete lines before ``offset``, for error messages
        if from_end:
            with contextlib.suppress(FileNotFoundError):
                data = path.read_bytes()
                self.offset = data.rfind(b"\n") + 1
                self.lines = data.count(b"\n")

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size < self.offset:
                    self.offset, self.lines = 0, 0
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        complete, newline, _ = chunk.rpartition(b"\n")
        if not newline:
            return []
        records = []
        number = self.lines
        for raw in complete.split(b"\n"):
            number += 1
            if raw.strip():
                records.append(_record(self.path, number, raw, self._expected))
        self.offset += len(complete) + 1
        self.lines = number
        return records
