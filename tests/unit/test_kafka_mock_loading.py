"""Finding a librdkafka with the mock cluster API (loading only; no cluster is created)."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest

from datadrill.backends.kafka import mock as kafka_mock
from datadrill.backends.kafka.mock import LibraryCandidate, load_librdkafka
from datadrill.errors import KafkaMockUnavailable, StackError


@pytest.fixture
def libc_path() -> str:
    path = ctypes.util.find_library("c")
    assert path, "the C library is always present on Linux"
    return path


def _use(monkeypatch: pytest.MonkeyPatch, candidates: list[LibraryCandidate]) -> None:
    monkeypatch.setattr(kafka_mock, "_candidates", lambda: list(candidates))


def test_unusable_candidates_are_all_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, libc_path: str
) -> None:
    missing = str(tmp_path / "librdkafka-missing.so.1")
    _use(
        monkeypatch,
        [LibraryCandidate(missing, "test: absent"), LibraryCandidate(libc_path, "test: libc")],
    )
    with pytest.raises(KafkaMockUnavailable) as info:
        load_librdkafka()
    message = str(info.value)
    assert missing in message
    assert "test: absent" in message
    assert "cannot load" in message
    assert libc_path in message
    assert "test: libc" in message
    assert "rd_kafka_mock_cluster_new" in message
    assert "confluent-kafka" in message  # says how to fix it
    assert isinstance(info.value, StackError)


def test_library_without_mock_api_lists_missing_symbols(
    monkeypatch: pytest.MonkeyPatch, libc_path: str
) -> None:
    _use(monkeypatch, [LibraryCandidate(libc_path, "test: libc")])
    with pytest.raises(KafkaMockUnavailable) as info:
        load_librdkafka()
    problem = str(info.value).split(f"{libc_path} (test: libc): ", 1)[1]
    assert problem.startswith("missing rd_kafka_conf_new, ")
    for symbol in kafka_mock._REQUIRED_SYMBOLS:
        assert symbol in problem


def test_first_good_candidate_wins_after_bad_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, libc_path: str
) -> None:
    real = kafka_mock._candidates()
    assert real, "confluent-kafka is installed, so a bundled librdkafka exists"
    good = real[0]
    _use(
        monkeypatch,
        [LibraryCandidate(str(tmp_path / "nope.so"), "absent"), LibraryCandidate(libc_path, "libc"), good],
    )
    lib, chosen = load_librdkafka()
    assert chosen == good
    assert hasattr(lib, "rd_kafka_mock_cluster_new")


def test_no_candidates_says_what_was_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, [])
    with pytest.raises(KafkaMockUnavailable) as info:
        load_librdkafka()
    message = str(info.value)
    assert "rd_kafka_mock_cluster_new" in message
    assert "librdkafka*.so*" in message
    assert "confluent_kafka.libs" in message
    assert "system 'rdkafka' library" in message


def test_real_candidates_load_the_bundled_library() -> None:
    lib, candidate = load_librdkafka()
    assert candidate.origin == "bundled with confluent-kafka"
    assert Path(candidate.path).is_file()
    assert "confluent_kafka.libs" in candidate.path
    for symbol in kafka_mock._REQUIRED_SYMBOLS:
        assert hasattr(lib, symbol), symbol


def test_bundled_candidates_come_before_the_system_library() -> None:
    candidates = kafka_mock._candidates()
    origins = [c.origin for c in candidates]
    assert origins[0] == "bundled with confluent-kafka"
    if "system librdkafka" in origins:
        assert origins.index("system librdkafka") == len(origins) - 1
