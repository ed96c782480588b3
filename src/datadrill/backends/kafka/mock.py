"""librdkafka's mock Kafka cluster, driven through ctypes.

The mock speaks the real Kafka wire protocol on real 127.0.0.1 sockets, so any Kafka
client in any process can talk to it. It lives inside the process that creates it (the
stack process), which is why the stack exposes a control interface for everything below.

We load the librdkafka that confluent-kafka bundles (the same build its client uses), and
fall back to a system librdkafka. The mock API is experimental upstream, so every symbol is
checked before use and a missing one is reported by name.

Example::

    cluster = MockCluster.start(brokers=3)
    cluster.create_topic("orders.v1", partitions=6, replication_factor=3)
    cluster.bootstrap_servers   # '127.0.0.1:40121,127.0.0.1:38551,127.0.0.1:41017'
    cluster.broker_down(2)
    cluster.close()
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datadrill.errors import KafkaMockUnavailable, StackError

_RD_KAFKA_PRODUCER = 0
_UNKNOWN_TOPIC_OR_PART = 3  # rd_kafka_resp_err_t RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
_REQUIRED_SYMBOLS = (
    "rd_kafka_conf_new",
    "rd_kafka_conf_set",
    "rd_kafka_new",
    "rd_kafka_destroy",
    "rd_kafka_err2str",
    "rd_kafka_mock_cluster_new",
    "rd_kafka_mock_cluster_destroy",
    "rd_kafka_mock_cluster_bootstraps",
    "rd_kafka_mock_topic_create",
    "rd_kafka_mock_broker_set_down",
    "rd_kafka_mock_broker_set_up",
    "rd_kafka_mock_broker_set_rtt",
    "rd_kafka_mock_push_request_errors_array",
    "rd_kafka_mock_broker_push_request_error_rtts",
    "rd_kafka_mock_clear_request_errors",
    "rd_kafka_mock_partition_set_leader",
    "rd_kafka_mock_group_initial_rebalance_delay_ms",
)


@dataclass(frozen=True)
class LibraryCandidate:
    path: str
    origin: str


def _candidates() -> list[LibraryCandidate]:
    found: list[LibraryCandidate] = []
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is not None and spec.origin is not None:
        # Wheels keep their bundled shared libraries in '<package>.libs' beside the package.
        libs_dir = Path(spec.origin).parent.parent / "confluent_kafka.libs"
        found.extend(
            LibraryCandidate(str(p), "bundled with confluent-kafka")
            for p in sorted(libs_dir.glob("librdkafka*.so*"))
        )
    system = ctypes.util.find_library("rdkafka")
    if system:
        found.append(LibraryCandidate(system, "system librdkafka"))
    return found


def load_librdkafka() -> tuple[ctypes.CDLL, LibraryCandidate]:
    """Load the first librdkafka that exports the whole mock API we use."""
    problems: list[str] = []
    candidates = _candidates()
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate.path)
        except OSError as exc:
            problems.append(f"{candidate.path} ({candidate.origin}): cannot load: {exc}")
            continue
        missing = [name for name in _REQUIRED_SYMBOLS if not hasattr(lib, name)]
        if missing:
            problems.append(f"{candidate.path} ({candidate.origin}): missing {', '.join(missing)}")
            continue
        return lib, candidate
    looked = (
        "; ".join(problems)
        if problems
        else ("no librdkafka*.so* in confluent_kafka.libs and no system 'rdkafka' library")
    )
    raise KafkaMockUnavailable(
        "no librdkafka exporting the rd_kafka_mock_* API was found. Looked for "
        f"{', '.join(_REQUIRED_SYMBOLS[5:8])}, ... in: {looked}. "
        "Install confluent-kafka>=2.16 (its wheel bundles librdkafka with the mock cluster)."
    )


def _declare(lib: ctypes.CDLL) -> None:
    vp, cp, i32, i16 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int16
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_new.argtypes = []
    lib.rd_kafka_conf_set.restype = ctypes.c_int
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, ctypes.c_size_t]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_destroy.restype = None
    lib.rd_kafka_destroy.argtypes = [vp]
    lib.rd_kafka_err2str.restype = cp
    lib.rd_kafka_err2str.argtypes = [ctypes.c_int]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.restype = None
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, ctypes.c_int, ctypes.c_int]
    for name in ("rd_kafka_mock_broker_set_down", "rd_kafka_mock_broker_set_up"):
        getattr(lib, name).restype = ctypes.c_int
        getattr(lib, name).argtypes = [vp, i32]
    lib.rd_kafka_mock_broker_set_rtt.restype = ctypes.c_int
    lib.rd_kafka_mock_broker_set_rtt.argtypes = [vp, i32, ctypes.c_int]
    lib.rd_kafka_mock_push_request_errors_array.restype = None
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [
        vp,
        i16,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int),
    ]
    # Variadic: argtypes stay unset and every argument is passed as an explicit ctypes type.
    lib.rd_kafka_mock_broker_push_request_error_rtts.restype = ctypes.c_int
    lib.rd_kafka_mock_clear_request_errors.restype = None
    lib.rd_kafka_mock_clear_request_errors.argtypes = [vp, i16]
    lib.rd_kafka_mock_partition_set_leader.restype = ctypes.c_int
    lib.rd_kafka_mock_partition_set_leader.argtypes = [vp, cp, i32, i32]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.restype = None
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [vp, i32]
    # Newer than the rest (librdkafka 2.16 has them): declared when present, and a cluster
    # without them says so by name when asked (see MockCluster._optional).
    if hasattr(lib, "rd_kafka_mock_partition_delete_records"):
        lib.rd_kafka_mock_partition_delete_records.restype = ctypes.c_int
        lib.rd_kafka_mock_partition_delete_records.argtypes = [vp, cp, i32, ctypes.c_int64]
    if hasattr(lib, "rd_kafka_mock_topic_delete"):
        lib.rd_kafka_mock_topic_delete.restype = ctypes.c_int
        lib.rd_kafka_mock_topic_delete.argtypes = [vp, cp]


class MockCluster:
    """An in-process librdkafka mock cluster. Thread-safe; close it exactly once."""

    def __init__(self, lib: ctypes.CDLL, library: LibraryCandidate, brokers: int) -> None:
        self._lib = lib
        self.library = library
        self.broker_ids = tuple(range(1, brokers + 1))
        self._lock = threading.Lock()
        conf = lib.rd_kafka_conf_new()
        errstr = ctypes.create_string_buffer(512)
        # The handle exists only for the mock's bookkeeping; keep it quiet (it has no brokers).
        for key, value in ((b"log_level", b"3"), (b"bootstrap.servers", b"")):
            lib.rd_kafka_conf_set(conf, key, value, errstr, len(errstr))
        rk = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
        if not rk:
            raise StackError(f"rd_kafka_new failed: {errstr.value.decode(errors='replace')}")
        self._rk: int | None = rk
        cluster = lib.rd_kafka_mock_cluster_new(rk, brokers)
        if not cluster:
            lib.rd_kafka_destroy(rk)
            raise StackError(f"rd_kafka_mock_cluster_new({brokers}) returned NULL")
        self._cluster: int | None = cluster
        self.bootstrap_servers: str = lib.rd_kafka_mock_cluster_bootstraps(cluster).decode()

    @classmethod
    def start(cls, *, brokers: int) -> MockCluster:
        lib, library = load_librdkafka()
        _declare(lib)
        return cls(lib, library, brokers)

    @property
    def broker_addresses(self) -> dict[int, str]:
        """Broker id → host:port. The mock lists brokers in id order."""
        return dict(zip(self.broker_ids, self.bootstrap_servers.split(","), strict=True))

    def _handle(self) -> int:
        if self._cluster is None:
            raise StackError("the mock cluster is closed")
        return self._cluster

    def _check(self, err: int, what: str) -> None:
        if err != 0:
            reason = self._lib.rd_kafka_err2str(err).decode(errors="replace")
            raise StackError(f"{what} failed: {reason} (error code {err})")

    def _check_broker(self, broker_id: int) -> None:
        if broker_id not in self.broker_ids:
            raise StackError(f"unknown broker {broker_id}; brokers are {list(self.broker_ids)}")

    def create_topic(self, name: str, *, partitions: int, replication_factor: int) -> None:
        with self._lock:
            err = self._lib.rd_kafka_mock_topic_create(
                self._handle(), name.encode(), partitions, replication_factor
            )
        self._check(err, f"creating topic {name!r}")

    def broker_down(self, broker_id: int) -> None:
        self._check_broker(broker_id)
        with self._lock:
            err = self._lib.rd_kafka_mock_broker_set_down(self._handle(), broker_id)
        self._check(err, f"taking broker {broker_id} down")

    def broker_up(self, broker_id: int) -> None:
        self._check_broker(broker_id)
        with self._lock:
            err = self._lib.rd_kafka_mock_broker_set_up(self._handle(), broker_id)
        self._check(err, f"bringing broker {broker_id} up")

    def set_broker_rtt(self, broker_id: int, rtt_ms: int) -> None:
        """Delay every response of ``broker_id`` (-1: all brokers) by ``rtt_ms``."""
        if broker_id != -1:
            self._check_broker(broker_id)
        with self._lock:
            err = self._lib.rd_kafka_mock_broker_set_rtt(self._handle(), broker_id, rtt_ms)
        self._check(err, f"setting broker {broker_id} RTT")

    def push_request_errors(self, api_key: int, errors: list[int]) -> None:
        """The next ``len(errors)`` requests of ``api_key`` to any broker fail with these."""
        array = (ctypes.c_int * len(errors))(*errors)
        with self._lock:
            self._lib.rd_kafka_mock_push_request_errors_array(self._handle(), api_key, len(errors), array)

    def push_broker_request_errors(
        self, broker_id: int, api_key: int, errors_and_rtts: list[tuple[int, int]]
    ) -> None:
        """Per-broker errors, each answered after its own delay in milliseconds."""
        self._check_broker(broker_id)
        args: list[ctypes.c_int] = []
        for err, rtt in errors_and_rtts:
            args.extend((ctypes.c_int(err), ctypes.c_int(rtt)))
        with self._lock:
            rc = self._lib.rd_kafka_mock_broker_push_request_error_rtts(
                ctypes.c_void_p(self._handle()),
                ctypes.c_int32(broker_id),
                ctypes.c_int16(api_key),
                ctypes.c_size_t(len(errors_and_rtts)),
                *args,
            )
        self._check(rc, f"pushing request errors to broker {broker_id}")

    def clear_request_errors(self, api_key: int) -> None:
        with self._lock:
            self._lib.rd_kafka_mock_clear_request_errors(self._handle(), api_key)

    def set_partition_leader(self, topic: str, partition: int, broker_id: int) -> None:
        if broker_id != -1:
            self._check_broker(broker_id)
        with self._lock:
            err = self._lib.rd_kafka_mock_partition_set_leader(
                self._handle(), topic.encode(), partition, broker_id
            )
        self._check(err, f"moving leader of {topic}[{partition}] to broker {broker_id}")

    def missing(self, symbol: str) -> str:
        """Why this cluster cannot call ``symbol`` ("" when its library exports it)."""
        if hasattr(self._lib, symbol):
            return ""
        return (
            f"{self.library.path} ({self.library.origin}) does not export {symbol}; "
            "confluent-kafka>=2.16 bundles a librdkafka that does"
        )

    def _optional(self, symbol: str) -> Any:
        why = self.missing(symbol)
        if why:
            raise StackError(why)
        return getattr(self._lib, symbol)

    def delete_records(self, topic: str, partition: int, before_offset: int) -> None:
        """Delete the partition's records below ``before_offset`` (its log start moves
        there), as retention or the admin API's DeleteRecords would. An offset beyond the
        high watermark fails with OFFSET_OUT_OF_RANGE."""
        delete = self._optional("rd_kafka_mock_partition_delete_records")
        with self._lock:
            err = delete(self._handle(), topic.encode(), partition, before_offset)
        self._check(err, f"deleting records of {topic}[{partition}] below offset {before_offset}")

    def delete_topic(self, topic: str, *, missing_ok: bool = False) -> None:
        """Delete the topic and its records; fetches of it fail with UNKNOWN_TOPIC_OR_PART."""
        delete = self._optional("rd_kafka_mock_topic_delete")
        with self._lock:
            err = delete(self._handle(), topic.encode())
        if missing_ok and err == _UNKNOWN_TOPIC_OR_PART:
            return
        self._check(err, f"deleting topic {topic!r}")

    def set_group_initial_rebalance_delay(self, delay_ms: int) -> None:
        with self._lock:
            self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._handle(), delay_ms)

    def close(self) -> None:
        """Destroy the cluster and its handle. Idempotent."""
        with self._lock:
            cluster, rk = self._cluster, self._rk
            self._cluster = self._rk = None
        if cluster is not None:
            self._lib.rd_kafka_mock_cluster_destroy(cluster)
        if rk is not None:
            self._lib.rd_kafka_destroy(rk)
