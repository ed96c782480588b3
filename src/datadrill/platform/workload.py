"""The workload generator: orders and their outbox events at a steady rate, plus canaries.

Runs as its own process under the supervisor. It re-reads ``workload.json`` in the state
directory whenever that file changes, so a fault (a producer burst) or an operator can
change the rate of a running stack.

Canaries are ordinary orders with ``is_canary`` set and ``customer_id`` 0; the
``canaries`` table records the CLOCK_MONOTONIC instant each was written, so any process
on the machine can measure its end-to-end latency.

While the source database is unreachable (a ``SourceOutage``, a restarting server) the
generator keeps its batch and retries it on a new connection, with the same order ids: a
batch whose commit reached the server before the connection dropped is found by its first
order id and not written twice. Nothing it wrote is lost, and no id is written twice.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from datadrill.config import WorkloadConfig, read_running_config
from datadrill.paths import StatePaths
from datadrill.platform.component import Component
from datadrill.platform.source_conn import SOURCE_ERRORS, SourceConnection
from datadrill.platform.source_db import OrderRow, connect, insert_orders, next_order_id

TICK_S = 0.01
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK")
CANARY_CUSTOMER = 0
_POOL_MASK = 4095
_SPREAD = 2_654_435_761  # Knuth's multiplicative hash: neighbouring ids land far apart
RECONNECT_INITIAL_S = 0.05
RECONNECT_MAX_S = 1.0


@dataclass
class _Settings:
    rate: float
    canary_interval_s: float


def _read_settings(paths: StatePaths, defaults: WorkloadConfig) -> _Settings:
    try:
        data = json.loads(paths.workload_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    merged = WorkloadConfig.model_validate({**defaults.model_dump(), **data})
    return _Settings(merged.rate, merged.canary_interval_s)


def _close(db: SourceConnection | None) -> None:
    if db is not None:
        try:
            db.close()
        except SOURCE_ERRORS:
            return  # a connection the server dropped: let go of it either way


def _connect(target: str | Path, component: Component) -> SourceConnection | None:
    """A connection to the source, retried with backoff while it is unreachable; None when
    the component is asked to stop first."""
    delay = RECONNECT_INITIAL_S
    while component.should_run():
        try:
            return connect(target)
        except SOURCE_ERRORS as exc:
            component.heartbeat({"source_error": str(exc).strip()[:200]})
            time.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
    return None


def _committed(db: SourceConnection, first_order_id: int) -> bool:
    """Did a batch starting at ``first_order_id`` commit before its connection dropped?"""
    return db.execute("SELECT 1 FROM orders WHERE order_id = ?", (first_order_id,)).fetchone() is not None


def _write(
    db: SourceConnection | None,
    target: str | Path,
    rows: list[OrderRow],
    canaries: list[tuple[int, int, int]],
    component: Component,
) -> SourceConnection | None:
    """Insert the batch, reconnecting while the source is unreachable; returns the
    connection to go on with (None: asked to stop before the batch was written)."""
    delay = RECONNECT_INITIAL_S
    while True:
        try:
            if db is None:
                db = _connect(target, component)
                if db is None:
                    return None
                if _committed(db, rows[0].order_id):
                    return db  # the lost answer was a commit: written once already
            insert_orders(db, rows, canaries)
            return db
        except SOURCE_ERRORS as exc:
            _close(db)
            db = None
            component.heartbeat({"source_error": str(exc).strip()[:200]})
            if not component.should_run():
                return None
            time.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)


def run(paths: StatePaths, *, seed: int = 0, source: str = "") -> None:
    config = read_running_config(paths)
    component = Component("workload", paths)
    target = source or paths.source_db
    db = _connect(target, component)
    if db is None:
        return
    rng = random.Random(seed)
    # Drawing three random numbers per order costs more CPU than the pipeline under test
    # at 50k orders/s; a seeded pool indexed by a hash of the order id is as varied.
    pool = [
        (rng.randint(1, 100_000), rng.randint(100, 500_000), CURRENCIES[rng.randrange(len(CURRENCIES))])
        for _ in range(_POOL_MASK + 1)
    ]
    settings = _read_settings(paths, config.workload)
    settings_mtime = 0.0
    order_id = next_order_id(db)
    written = canaries_written = 0
    owed = 0.0
    last = time.monotonic()
    next_canary = last
    while component.should_run():
        now = time.monotonic()
        try:
            mtime = paths.workload_file.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if mtime != settings_mtime:
            settings_mtime = mtime
            settings = _read_settings(paths, config.workload)
        # Owe orders for the time that passed; cap the debt so a stall is not a burst.
        owed = min(owed + (now - last) * settings.rate, max(settings.rate, 1.0))
        last = now
        count = int(owed)
        owed -= count
        created_us = time.time_ns() // 1000
        rows = []
        for _ in range(count):
            customer, amount, currency = pool[(order_id * _SPREAD) & _POOL_MASK]
            rows.append(OrderRow(order_id, customer, amount, currency, "created", created_us, False))
            order_id += 1
        canaries: list[tuple[int, int, int]] = []
        if now >= next_canary:
            rows.append(OrderRow(order_id, CANARY_CUSTOMER, 0, "XXX", "canary", created_us, True))
            canaries.append((order_id, created_us, time.monotonic_ns()))
            order_id += 1
            canaries_written += 1
            next_canary = max(next_canary + settings.canary_interval_s, now)
        if rows:
            written_with = _write(db, target, rows, canaries, component)
            if written_with is None:
                db = None
                break
            db = written_with
            written += len(rows)
        component.heartbeat(
            {
                "orders_written": written,
                "canaries_written": canaries_written,
                "rate": settings.rate,
                "last_order_id": order_id - 1,
            }
        )
        time.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
    component.heartbeat({"orders_written": written, "stopped": True}, force=True)
    _close(db)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="datadrill-workload")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="", help="the source database (default: source.db in the state dir)")
    args = parser.parse_args(argv)
    run(StatePaths(Path(args.state_dir)), seed=args.seed, source=args.source)


if __name__ == "__main__":
    main()
