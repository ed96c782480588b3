"""The probes of the built-in SLIs. Each is parameterized by its ``Target``, so the same
probe measures the reference platform or a user's own pipeline."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import time
from typing import Any

from datadrill.errors import ConfigError, DrillError, QueryFailed
from datadrill.jsonl import JsonlTail
from datadrill.model import slo
from datadrill.platform.query import QueryEngine
from datadrill.probes.base import MartQueries, ProbeEnv, Sample


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class _MartQueryProbe:
    """Queries the mart the way dashboards do: over the network, through the stack's query
    path (and whatever fault sits on it). A query slower than ``timeout_s`` fails."""

    def __init__(self, env: ProbeEnv, timeout_s: float) -> None:
        self.env = env
        self.timeout_s = timeout_s
        self._engine: MartQueries | None = None

    @property
    def engine(self) -> MartQueries:
        if self._engine is None:
            self._engine = self.env.mart_queries(self.timeout_s)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


# Seconds per unit of an epoch number column (Target.event_time_unit).
_EPOCH_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
# An event time outside these bounds is a misread column (a wrong unit), not an age.
_EARLIEST_EVENT = dt.datetime(1990, 1, 1, tzinfo=dt.UTC).timestamp()
_MAX_AHEAD_S = 86_400.0


class EventTimeError(ValueError):
    """A column's value that is not an event time in the target's unit."""


def _epoch_s(value: Any, unit: str = "timestamp") -> float:
    """Seconds since the epoch of an event time as a Trino client returns it: an aware
    datetime (``timestamp with time zone``), a naive one (``timestamp``: taken as UTC), a
    date (its midnight UTC), or, for ``unit`` ``s``/``ms``/``us``/``ns``, a number.
    Raises :class:`EventTimeError` saying what was found instead."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        if unit not in _EPOCH_UNITS:
            raise EventTimeError(
                f"holds numbers ({value}), not timestamps: set Target(event_time_unit=...) to "
                "'s', 'ms', 'us' or 'ns'"
            )
        return float(value) / _EPOCH_UNITS[unit]
    if isinstance(value, str):
        try:
            return _epoch_s(dt.datetime.fromisoformat(value), unit)
        except ValueError:
            pass
    raise EventTimeError(f"holds {type(value).__name__} values ({value!r:.60}), not event times")


class FreshnessProbe(_MartQueryProbe):
    """now − max(event time) of the target's table, as a mart query sees it."""

    def __init__(self, sli: slo.Freshness, env: ProbeEnv) -> None:
        super().__init__(env, sli.timeout_s)
        self.sli = sli

    def measure(self) -> Sample:
        target = self.sli.target
        column = target.event_time_column
        try:
            # A plain max(): the same SQL on Trino and on the embedded engine; the client
            # hands back the timestamp with its zone (or the number, for an epoch column).
            rows = self.engine.rows(f"SELECT max({column}) FROM {target.table}", tables=(target.table,))
        except DrillError as exc:
            return Sample(None, False, _short(exc))
        newest = rows[0][0]
        if newest is None:
            return Sample(None, False, f"{target.table} is empty")
        try:
            event_s = _epoch_s(newest, target.event_time_unit)
        except EventTimeError as exc:
            return Sample(None, False, f"{target.table}.{column} {exc}")
        now = self.env.clock.wall()
        if event_s < _EARLIEST_EVENT or event_s > now + _MAX_AHEAD_S:
            # A wrong unit: milliseconds read as seconds lie far ahead (an age of 0, good
            # for ever), seconds read as milliseconds lie in 1970 (an age of decades).
            when = (
                dt.datetime.fromtimestamp(event_s, dt.UTC).isoformat()
                if abs(event_s) < 1e11
                else f"{event_s:.3g} s after the epoch, past the year 5000"
            )
            return Sample(
                None,
                False,
                f"{target.table}.{column}'s newest value {newest!r} read as "
                f"{target.event_time_unit} is {when}: is event_time_unit right?",
            )
        age = max(0.0, now - event_s)
        return Sample(age, age <= self.sli.max_age_s)


class QuerySuccessProbe(_MartQueryProbe):
    def __init__(self, sli: slo.QuerySuccess, env: ProbeEnv) -> None:
        super().__init__(env, sli.timeout_s)
        self.sli = sli
        self.query = sli.sql()

    def measure(self) -> Sample:
        try:
            self.engine.rows(self.query, tables=(self.sli.target.table,))
        except DrillError as exc:
            return Sample(0.0, False, _short(exc))
        return Sample(1.0, True)


class CanaryLatencyProbe(_MartQueryProbe):
    """Canaries written to the source and not yet seen in the table are tracked; the value
    is the worst of the latencies of canaries that just became visible and the age of the
    oldest canary still missing (so a stalled pipeline shows a growing latency)."""

    def __init__(self, sli: slo.CanaryLatency, env: ProbeEnv) -> None:
        super().__init__(env, sli.timeout_s)
        self.sli = sli
        self._pending: dict[int, int] = {}  # order id -> emitted CLOCK_MONOTONIC ns
        self._fetched_up_to: int | None = None

    def _fetch_new_canaries(self) -> None:
        with self.env.source_db() as db:
            if self._fetched_up_to is None:
                # Start with canaries emitted from now on: older ones say nothing of this run.
                (latest,) = db.execute("SELECT COALESCE(MAX(order_id), 0) FROM canaries").fetchone()
                self._fetched_up_to = int(latest)
                return
            rows = db.execute(
                "SELECT order_id, emitted_mono_ns FROM canaries WHERE order_id > ? ORDER BY order_id",
                (self._fetched_up_to,),
            ).fetchall()
        for order_id, emitted in rows:
            self._pending[int(order_id)] = int(emitted)
            self._fetched_up_to = int(order_id)

    def measure(self) -> Sample:
        self._fetch_new_canaries()
        now_ns = time.monotonic_ns()
        latencies: list[float] = []
        if self._pending:
            low = min(self._pending)
            try:
                rows = self.engine.rows(
                    f"SELECT {self.sli.target.key_column} FROM {self.sli.target.table} "
                    f"WHERE is_canary AND {self.sli.target.key_column} >= ?",
                    [low],
                    tables=(self.sli.target.table,),
                )
            except DrillError as exc:
                return Sample(None, False, _short(exc))
            for (order_id,) in rows:
                emitted = self._pending.pop(int(order_id), None)
                if emitted is not None:
                    latencies.append((now_ns - emitted) / 1e9)
        if self._pending:
            latencies.append((now_ns - min(self._pending.values())) / 1e9)
        value = max(latencies) if latencies else 0.0
        return Sample(value, value <= self.sli.max_latency_s)


def group_lag(consumer: Any, partitions: list[Any], *, timeout_s: float) -> int:
    """Σ over ``partitions`` of (high watermark − the consumer's group's committed offset);
    a partition the group never committed counts from its low watermark."""
    lag = 0
    for tp in consumer.committed(partitions, timeout=timeout_s):
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
        position = tp.offset if tp.offset >= 0 else low
        lag += max(0, high - position)
    return lag


class ConsumerLagProbe:
    """Σ over every partition of ``target.topic`` of (high watermark − ``target.group``'s
    committed offset); a partition the group has not committed on counts from its low
    watermark. The group's offsets are read with an OffsetFetch (the probe never joins the
    group, so it takes no partition from its members). A topic that does not exist is a
    bad sample that says so (never a lag of 0)."""

    def __init__(self, sli: slo.ConsumerLag, env: ProbeEnv) -> None:
        from confluent_kafka import Consumer

        self.sli = sli
        self._consumer = Consumer(
            {
                "bootstrap.servers": env.bootstrap_servers,
                "group.id": sli.target.group,
                "enable.auto.commit": False,
                "allow.auto.create.topics": False,
                "client.id": "datadrill-lag-probe",
            }
        )
        self._partitions: list[Any] | None = None

    def _topic_partitions(self) -> list[Any] | str:
        """The topic's partitions, or why there are none."""
        from confluent_kafka import TopicPartition

        topic = self.sli.target.topic
        metadata = self._consumer.list_topics(topic, timeout=5)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            error = described.error if described is not None else None
            reason = error.str() if error is not None else "no partitions"
            return f"topic {topic}: {reason} (the group {self.sli.target.group} has nothing to consume)"
        return [TopicPartition(topic, p) for p in sorted(described.partitions)]

    def measure(self) -> Sample:
        from confluent_kafka import KafkaException

        target = self.sli.target
        try:
            if self._partitions is None:
                found = self._topic_partitions()
                if isinstance(found, str):
                    return Sample(None, False, found)
                self._partitions = found
            committed = self._consumer.committed(self._partitions, timeout=5)
            lag = 0
            uncommitted = 0
            for tp in committed:
                low, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                if tp.offset < 0:
                    uncommitted += 1
                lag += max(0, high - (tp.offset if tp.offset >= 0 else low))
        except KafkaException as exc:
            self._partitions = None  # the topic may have changed (deleted, re-created)
            return Sample(None, False, _short(exc))
        good = lag <= self.sli.max_messages
        if good or not uncommitted:
            return Sample(float(lag), good)
        # Said when bad: a group that never committed (a wrong group name, a consumer that
        # commits elsewhere) shows the whole topic as lag.
        return Sample(
            float(lag),
            False,
            f"{lag:,} behind; the group {target.group} has committed no offset on {uncommitted} of "
            f"{len(committed)} partitions of {target.topic} (counted from their low watermarks)",
        )

    def close(self) -> None:
        self._consumer.close()


_ERROR_COUNTERS = {"sink": ("commit_errors", "rejected"), "relay": ("rejected", "failed_batches")}
# (a dead-lettered record is also counted as rejected by the relay)


class ConnectorErrorRateProbe:
    """Errors per second from the connectors' heartbeat counters (restarts reset them), plus
    one per Kafka Connect task failure of the relay or the sink (the supervisor's
    ``process_failed``: a failed task reports no counters of its own)."""

    def __init__(self, sli: slo.ConnectorErrorRate, env: ProbeEnv) -> None:
        self.sli = sli
        self.env = env
        self._last: dict[str, tuple[int, int]] = {}  # component -> (pid, total)
        self._last_t: float | None = None
        # Only failures from now on: earlier ones belong to other runs.
        self._events = JsonlTail(env.events_file, from_end=True, expected="a supervisor event")

    def _totals(self) -> dict[str, tuple[int, int]]:
        totals = {}
        for name, counters in _ERROR_COUNTERS.items():
            try:
                beat = json.loads((self.env.heartbeat_dir / f"{name}.heartbeat.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            totals[name] = (int(beat.get("pid", 0)), sum(int(beat.get(c, 0)) for c in counters))
        return totals

    def measure(self) -> Sample:
        now = self.env.clock.monotonic()
        totals = self._totals()
        errors = 0
        for name, (pid, total) in totals.items():
            last_pid, last_total = self._last.get(name, (pid, total))
            # A restarted process counts from zero again.
            errors += total if pid != last_pid else max(0, total - last_total)
        errors += sum(
            1
            for e in self._events.read_new()
            if e.get("event") == "process_failed" and e.get("component") in _ERROR_COUNTERS
        )
        elapsed = now - self._last_t if self._last_t is not None else None
        self._last, self._last_t = totals, now
        rate = errors / elapsed if elapsed else 0.0
        return Sample(rate, rate <= self.sli.max_per_s)

    def close(self) -> None:
        return


# Supervisor events that count as a connector restart: an exit (the supervisor restarts it)
# and a Kafka Connect task failure (FAILED until someone restarts it).
_RESTART_EVENTS = frozenset({"process_exited", "process_failed"})


class RestartRateProbe:
    """Exits and Connect task failures in the last ``window_s``, per minute: of the SLI's
    ``component``, or of every supervised component when it names none."""

    def __init__(self, sli: slo.RestartRate, env: ProbeEnv) -> None:
        self.sli = sli
        self.window_s = sli.window_s
        self.env = env
        # Only exits from now on: earlier ones belong to other runs.
        self._events = JsonlTail(env.events_file, from_end=True, expected="a supervisor event")
        self._exits: list[float] = []

    def measure(self) -> Sample:
        for event in self._events.read_new():
            if event.get("event") not in _RESTART_EVENTS:
                continue
            if self.sli.component and event.get("component") != self.sli.component:
                continue
            self._exits.append(float(event["mono"]))
        now = self.env.clock.monotonic()
        self._exits = [t for t in self._exits if now - t <= self.window_s]
        per_min = len(self._exits) * 60.0 / self.window_s
        return Sample(per_min, per_min <= self.sli.max_per_min)

    def close(self) -> None:
        return


class ConnectorHealthProbe:
    """0 while the connector or one of its tasks is not RUNNING, as Kafka Connect's REST API
    reports it (paused, stopped, failed, restarting), else 1. A Connect API that does not
    answer counts as bad, with its error."""

    def __init__(self, sli: slo.ConnectorHealth, env: ProbeEnv) -> None:
        if env.connect is None:
            raise DrillError(f"ConnectorHealth({sli.component!r}) needs a stack with a Kafka Connect API")
        self.sli = sli
        self.connect = env.connect
        # A declared `connector = "NAME"` component is that connector of the cluster.
        self.connector = env.connector_names.get(sli.component, sli.component)
        try:
            self.connect().status(self.connector)
        except DrillError as exc:
            # A connector Connect does not know is the scenario's mistake, said before the run.
            if getattr(exc, "status", None) == 404:
                raise ConfigError(
                    "scenario", "ConnectorHealth.component", sli.component, f"a connector Kafka Connect knows ({exc})"
                ) from None

    def measure(self) -> Sample:
        try:
            status = self.connect().status(self.connector)
        except DrillError as exc:
            return Sample(None, False, _short(exc))
        if status.running:
            return Sample(1.0, True)
        return Sample(0.0, False, status.describe())

    def close(self) -> None:
        return


# Omitted keys looked up per statement when dating holes (a parameter list, both engines).
_HOLE_KEYS_PER_QUERY = 500
# The column in which a sink records each row's Kafka partition (the reference sink does):
# with it, holes are dated against the slowest partition's newest row.
_PARTITION_COLUMN = "kafka_partition"


class DataIntegrityProbe:
    """Reconciles source against sink every ``every_s`` seconds (between runs the last
    value stands). Duplicates, differing rows and rows with no source row count; so do
    holes (``sli.holes``): omissions below the sink's newest key written more than
    ``hole_grace_s`` before now and before the sink's newest row (with a ``kafka_partition``
    column, the newest row of its slowest partition). Younger omissions may still be in
    flight (the topic's partitions land unevenly) and never count."""

    def __init__(self, sli: slo.DataIntegrity, env: ProbeEnv) -> None:
        self.env = env
        self.sli = sli
        self._last: Sample | None = None
        self._last_at = float("-inf")
        self._low_key: int | None = None  # scope "run": keys above the sink's newest at the start
        # (column, unit) dating source rows for holes; None: holes not counted. Checked
        # against the columns the source query really returns on the first reconciliation.
        self._hole_column = sli.hole_time_column
        self._hole_column_checked = False
        self._partitioned: bool | None = None  # does the table record kafka_partition?

    def measure(self) -> Sample:
        import contextlib

        from datadrill.integrity.reconcile import reconcile
        from datadrill.integrity.targets import probe_sink, target_sides

        now = self.env.clock.monotonic()
        if self._last is not None and now - self._last_at < self.sli.every_s:
            return self._last
        target = self.sli.target
        try:
            # Counts and hashes where the table lives: the stack's Trino, or in process.
            sink = probe_sink(self.env.mart_queries, self.env.query_engine)
            newest = sink.max_key(target.table, target.key_column)
            if self._low_key is None:
                self._low_key = int(newest) + 1 if self.sli.scope == "run" else 0
            with contextlib.closing(self.env.source_db()) as db:
                source, table = target_sides(target, db, sink)
                result = reconcile(source, table, key_range=(min(self._low_key, int(newest)), int(newest)))
                holes: tuple[int, ...] = ()
                if result.omissions and self._hole_column is not None:
                    holes = self._holes(db, result.omissions, int(newest), frontier_s=self._frontier(sink))
        except DrillError as exc:
            sample = Sample(None, False, _short(exc))
        else:
            bad = len(result.duplicates) + len(result.discrepancies) + len(result.unexpected) + len(holes)
            good = bad <= self.sli.max_bad_rows
            sample = Sample(float(bad), good, None if good else self._findings(result, holes))
        self._last, self._last_at = sample, now
        return sample

    @staticmethod
    def _findings(result: Any, holes: tuple[int, ...]) -> str:
        parts = [
            f"{len(found):,} {label}" + (f" (e.g. {', '.join(map(str, found[:3]))})" if found else "")
            for label, found in (
                ("duplicated", result.duplicates),
                ("differing", result.discrepancies),
                ("not in source", result.unexpected),
                ("holes: source rows missing below the sink's newest key", holes),
            )
            if found
        ]
        return "; ".join(parts)

    def _frontier(self, sink: Any) -> float | None:
        """The newest event time of the table's slowest Kafka partition (seconds since the
        epoch): within a partition rows land in order, so a row older than it is no longer
        in flight. None when the table records no partition."""
        from datadrill.integrity.dialects import quote_identifier, quote_table

        target = self.sli.target
        if self._partitioned is None:
            columns = {name.lower() for name, _ in sink.describe(target.table)}
            self._partitioned = _PARTITION_COLUMN in columns and target.event_time_column.lower() in columns
        if not self._partitioned:
            return None
        partition = quote_identifier(_PARTITION_COLUMN)
        rows = sink.rows(
            f"SELECT {partition}, max({quote_identifier(target.event_time_column)}) "
            f"FROM {quote_table(target.table)} WHERE {partition} IS NOT NULL GROUP BY {partition}",
            table=target.table,
        )
        newest = [_epoch_s(when, target.event_time_unit) for _, when in rows if when is not None]
        return min(newest) if newest else None

    def _holes(
        self, db: Any, omissions: tuple[int, ...], newest: int, *, frontier_s: float | None = None
    ) -> tuple[int, ...]:
        """The omitted keys that are holes: dated in the source (``sli.hole_time_column``)
        more than ``hole_grace_s`` before now, before the sink's newest row, and before
        ``frontier_s`` (the slowest partition's newest row) when known."""
        from datadrill.integrity.dialects import quote_identifier, subquery
        from datadrill.platform.source_conn import SOURCE_ERRORS

        if self._hole_column is None:
            return ()
        column, unit = self._hole_column
        query = self.sli.target.source_query
        if not self._hole_column_checked:
            self._hole_column_checked = True
            try:
                described = db.execute(f"SELECT * FROM {subquery(query)} LIMIT 0").description or ()
            except SOURCE_ERRORS as exc:
                raise QueryFailed(f"source: query failed: {exc}") from exc
            if column.lower() not in {str(d[0]).lower() for d in described}:
                self._hole_column = None  # the statement says holes need it
                return ()
        key = quote_identifier(self.sli.target.key_column)
        dated: dict[int, float] = {}
        wanted = [*sorted(omissions), newest]
        for start in range(0, len(wanted), _HOLE_KEYS_PER_QUERY):
            chunk = wanted[start : start + _HOLE_KEYS_PER_QUERY]
            marks = ", ".join("?" for _ in chunk)
            sql = f"SELECT {key}, {quote_identifier(column)} FROM {subquery(query)} WHERE {key} IN ({marks})"
            try:
                rows = db.execute(sql, chunk).fetchall()
            except SOURCE_ERRORS as exc:
                raise QueryFailed(f"source: query failed: {exc}") from exc
            for found_key, when in rows:
                if when is None:
                    continue
                try:
                    dated[int(found_key)] = _epoch_s(when, unit)
                except EventTimeError as exc:
                    raise QueryFailed(f"source {column} {exc}") from None
        # Wall clock on purpose: the source stamps rows with the writer's wall clock (the
        # reference workload's created_at_us), so only a wall-clock now can age them.
        cutoff = self.env.clock.wall() - self.sli.hole_grace_s
        if newest in dated:
            # A row is a hole once rows written hole_grace_s after it have landed: during a
            # catch-up the partitions land unevenly, and the newest landed row says how far.
            cutoff = min(cutoff, dated[newest] - self.sli.hole_grace_s)
        if frontier_s is not None:
            cutoff = min(cutoff, frontier_s - self.sli.hole_grace_s)
        return tuple(k for k in sorted(omissions) if k in dated and dated[k] < cutoff)

    @property
    def engine(self) -> QueryEngine:
        # Reconciliation is heavy: it runs in this process, on the runner's shared engine.
        return self.env.query_engine()

    def close(self) -> None:
        return


class ReplicationLagProbe:
    """``pg_current_wal_lsn() - confirmed_flush_lsn`` of the slot, in bytes, with the slot's
    ``wal_status``, read on the harness's own connection to the source (no fault proxy in
    between, so a source outage on the platform's path is still measured). One connection
    is kept; a failed read drops it and the next sample reconnects."""

    def __init__(self, sli: slo.ReplicationLag, env: ProbeEnv) -> None:
        self.sli = sli
        self.env = env
        self.slot = sli.slot or env.relay_slot
        self._db: Any = None

    def measure(self) -> Sample:
        from datadrill.platform.source_conn import SOURCE_ERRORS

        failures: tuple[type[Exception], ...] = (*SOURCE_ERRORS, DrillError)
        try:
            if self._db is None:
                self._db = self.env.source_db()
            if not self._db.is_postgres:
                return Sample(None, False, "the source is SQLite: it has no replication slots")
            row = self._db.execute(
                "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, wal_status"
                " FROM pg_replication_slots WHERE slot_name = ?",
                (self.slot,),
            ).fetchone()
        except failures as exc:
            self.close()
            return Sample(None, False, _short(exc))
        if row is None:
            return Sample(None, False, f"replication slot {self.slot} does not exist")
        lag, wal_status = row
        if wal_status == "lost":
            return Sample(
                None if lag is None else float(lag),
                False,
                f"replication slot {self.slot} is lost (wal_status lost: the server removed WAL it still needed)",
            )
        if lag is None:
            return Sample(None, False, f"replication slot {self.slot} has no confirmed_flush_lsn (not a logical slot?)")
        value = float(max(0, int(lag)))
        return Sample(value, value <= self.sli.max_bytes)

    def close(self) -> None:
        from datadrill.platform.source_conn import SOURCE_ERRORS

        db, self._db = self._db, None
        if db is not None:
            # A connection the server dropped may fail to close; it is let go either way.
            with contextlib.suppress(*SOURCE_ERRORS):
                db.close()
