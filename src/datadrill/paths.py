"""Where a stack keeps its state. One directory per stack; two directories, two stacks.

Example::

    paths = StatePaths(Path(".datadrill"))
    paths.state_file      # .datadrill/stack.json
    paths.log("sink")     # .datadrill/logs/sink.log
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def state_file(self) -> Path:
        """Endpoints and pids of the running stack, written once it is ready."""
        return self.root / "stack.json"

    @property
    def config_file(self) -> Path:
        """The validated configuration the stack runs with."""
        return self.root / "config.json"

    @property
    def lock_file(self) -> Path:
        """Held (flock) by the stack process for its whole life."""
        return self.root / "stack.lock"

    @property
    def pid_file(self) -> Path:
        return self.root / "stack.pid"

    @property
    def workload_file(self) -> Path:
        """Live workload settings; the generator re-reads it when it changes."""
        return self.root / "workload.json"

    @property
    def events_file(self) -> Path:
        """Supervisor events (starts, exits, restarts with causes), JSON lines."""
        return self.root / "events.jsonl"

    @property
    def fault_ledger(self) -> Path:
        """Every fault applied to this stack, written before it takes effect (JSON lines)."""
        return self.root / "fault-ledger.jsonl"

    @property
    def schedule_checked(self) -> Path:
        """The newest order a schedule search on this stack has already checked."""
        return self.run / "schedule-checked-up-to"

    @property
    def compose_dir(self) -> Path:
        """The compose backend's rendered files and project."""
        return self.root / "compose"

    @property
    def source_db(self) -> Path:
        return self.root / "source.db"

    @property
    def catalog_db(self) -> Path:
        return self.root / "catalog.db"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse"

    @property
    def reserves(self) -> Path:
        """Reserve copies of tables (``TakeReserveCopy``): Parquet files and a manifest,
        outside the catalog and the warehouse, so they outlive the loss of either."""
        return self.root / "reserves"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Heartbeats and one-shot crash points of the platform's processes."""
        return self.root / "run"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def heartbeat(self, component: str) -> Path:
        return self.run / f"{component}.heartbeat.json"

    def crash_point(self, component: str) -> Path:
        """Armed by a mid-commit kill: the component kills itself at the named point."""
        return self.run / f"{component}.crash-point"

    @property
    def relay_writer(self) -> Path:
        """The drifted writer schema the relay publishes with (absent: the contract's own)."""
        return self.run / "relay.writer"

    @property
    def relay_enforce(self) -> Path:
        """``off`` lets records that break the contract through (absent: enforced)."""
        return self.run / "relay.enforce"

    @property
    def relay_stall(self) -> Path:
        """Present: the CDC relay stops reading its replication slot and confirms nothing
        (a ``ReplicationSlotStall`` fault); the WAL piles up on the server."""
        return self.run / "relay.stall"

    @property
    def postgres_dir(self) -> Path:
        """The embedded stack's throwaway PostgreSQL server (``[source] server``)."""
        return self.root / "postgres"

    @property
    def sink_throttle(self) -> Path:
        """Messages per second the sink may consume (absent: no limit)."""
        return self.run / "sink.throttle"

    def make(self) -> None:
        for directory in (self.root, self.logs, self.run, self.warehouse):
            directory.mkdir(parents=True, exist_ok=True)
