"""Faults on the CDC relay's logical replication slot (PostgreSQL source, ``[relay] mode =
"cdc"``): the slot is dropped under the relay, or the relay stops confirming it.

Both are seen from the server's side, in ``pg_replication_slots``, through the harness's
own connection to the source (``Stack.source()``: no fault proxy in between):

- :class:`DropReplicationSlotFault` terminates the walsender that holds the slot
  (``pg_terminate_backend(active_pid, timeout)``) and drops it
  (``pg_drop_replication_slot``). The relay reconnects at once, so the drop is retried a
  few times: an active slot cannot be dropped. Nothing is put back: the relay recreates the
  slot from the server's current LSN and the events in between are lost to Kafka, which is
  the point of the drill.
- :class:`ReplicationSlotStallFault` creates the stack's ``relay.stall`` flag file; the CDC
  relay stops reading and confirming while it exists, so the server keeps every WAL byte
  from the slot's ``confirmed_flush_lsn`` on. Reverting deletes the flag, from the ledger's
  data alone (cleanup after a killed runner removes it too).

Example::

    handle = inject(DropReplicationSlot(at_s=0), context, ledger=ledger)
    handle.landed   # "slot datadrill_relay recreated at 0/3A2F1C8 (dropped at 0/3A2F0B0)"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datadrill.errors import ConfigError, ControlError
from datadrill.faults.base import DrillContext, RevertData, Seen, await_effect
from datadrill.model.faults import DropReplicationSlot, ReplicationSlotStall
from datadrill.platform.source_conn import SOURCE_ERRORS, SourceConnection

# How long the drop keeps trying: the relay reconnects and takes the slot back between the
# terminate and the drop; each attempt waits for the walsender to exit first.
DROP_ATTEMPTS = 20
TERMINATE_WAIT_MS = 2_000
DROP_RETRY_S = 0.05
# How long the slot's confirmed_flush_lsn must stay put, while the server's WAL moves on,
# before a stall counts as landed: longer than a healthy relay takes between confirmations.
STALL_SEEN_S = 2.0
# What a look of the stall writes when nothing else does, so the server's WAL moves on even
# with the workload stopped (a logical decoding message, which pgoutput skips unless asked).
WAL_NUDGE = "SELECT pg_logical_emit_message(false, 'datadrill.stall', '')"

CDC_HINT = (
    'the CDC relay: [relay] mode = "cdc" on a PostgreSQL source ([source] uri; or '
    "`datadrill run --source postgresql --relay cdc`, `datadrill stack up --source postgresql --relay cdc`)"
)


def require_cdc(context: DrillContext, field: str, value: Any) -> str:
    """The slot of the stack's CDC relay; ConfigError when the stack has none."""
    config = context.stack.config
    if not config.source.is_postgres or config.relay.mode != "cdc":
        source = "PostgreSQL" if config.source.is_postgres else "SQLite"
        raise ConfigError(
            "scenario",
            field,
            value,
            f"a fault on {CDC_HINT}; this stack's relay is {config.relay.mode!r} on a {source} source",
        )
    return config.relay.slot


def slot_state(db: SourceConnection, slot: str) -> dict[str, Any] | None:
    """The slot's row of ``pg_replication_slots`` (LSNs as text), or None when it is gone."""
    row = db.execute(
        "SELECT active, active_pid, restart_lsn::text, confirmed_flush_lsn::text, wal_status,"
        " pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = ?",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    active, pid, restart, confirmed, wal_status, current = row
    return {
        "active": bool(active),
        "active_pid": int(pid) if pid is not None else None,
        "restart_lsn": restart,
        "confirmed_flush_lsn": confirmed,
        "wal_status": wal_status,
        "current_lsn": current,
    }


def lsn_bytes(db: SourceConnection, later: str, earlier: str) -> int:
    """``later - earlier`` in bytes, as the server computes ``pg_lsn`` differences."""
    (diff,) = db.execute("SELECT (?::pg_lsn - ?::pg_lsn)::bigint", (later, earlier)).fetchone()
    return int(diff)


def _source(context: DrillContext) -> SourceConnection:
    db = context.stack.source()
    if not db.is_postgres:
        db.close()
        raise ControlError(f"the stack's source is not PostgreSQL ({db!r}): it has no replication slots")
    return db


def _describe_slot(state: dict[str, Any] | None, slot: str) -> str:
    if state is None:
        return f"slot {slot} does not exist"
    holder = f"held by pid {state['active_pid']}" if state["active"] else "not in use"
    return (
        f"slot {slot} ({holder}, confirmed up to {state['confirmed_flush_lsn']}, "
        f"server at {state['current_lsn']}, wal_status {state['wal_status']})"
    )


class DropReplicationSlotFault:
    """Terminate the walsender holding the slot and drop the slot, retrying while the relay
    takes it back. Instantaneous, and nothing to revert: the relay's new slot starts from
    the server's current LSN."""

    kind = "source.drop_replication_slot"
    spec_type = DropReplicationSlot
    needs_cdc = True

    def prepare(self, spec: DropReplicationSlot, context: DrillContext) -> RevertData:
        relay_slot = require_cdc(context, "DropReplicationSlot", spec.kind)
        return {"slot": spec.slot or relay_slot}

    def apply(self, spec: DropReplicationSlot, context: DrillContext, data: RevertData) -> RevertData:
        slot = data["slot"]
        last = "never tried"
        with _source(context) as db:
            for attempt in range(1, DROP_ATTEMPTS + 1):
                state = slot_state(db, slot)
                if state is None:
                    raise ControlError(f"replication slot {slot} does not exist: nothing to drop")
                try:
                    if state["active_pid"] is not None:
                        # With a timeout the call waits for the walsender to exit (PostgreSQL
                        # 14+), so the slot is free when the drop comes; unless the relay
                        # reconnected in between, which the next attempt handles.
                        db.execute(
                            "SELECT pg_terminate_backend(?, ?)", (state["active_pid"], TERMINATE_WAIT_MS)
                        )
                    db.execute("SELECT pg_drop_replication_slot(?)", (slot,))
                except SOURCE_ERRORS as exc:
                    # 55006 object_in_use: "replication slot ... is active for PID ..."
                    last = f"attempt {attempt}: {str(exc).strip().splitlines()[0]}"
                    context.clock.sleep(DROP_RETRY_S)
                    continue
                # A slot made after the drop starts at or past the server's LSN before it.
                return {
                    "dropped_at_lsn": state["current_lsn"],
                    "restart_lsn_before": state["restart_lsn"],
                    "attempts": attempt,
                }
        raise ControlError(
            f"replication slot {slot} could not be dropped in {DROP_ATTEMPTS} attempts (the relay takes "
            f"it back each time); last: {last}"
        )

    def revert(self, data: RevertData, context: DrillContext) -> str:
        return (
            f"nothing to put back: the relay recreates slot {data['slot']} from the server's current LSN "
            "(events written between the drop and the new slot never reached Kafka)"
        )

    def exclusive_key(self, spec: DropReplicationSlot) -> str | None:
        return f"replication_slot:{spec.slot or 'relay'}"

    def confirm(
        self, spec: DropReplicationSlot, context: DrillContext, data: RevertData, within_s: float
    ) -> str:
        """The slot is gone, or back with a ``restart_lsn`` at or past the LSN of the drop
        (a new slot: the dropped one could never hold WAL from before)."""
        slot = data["slot"]
        dropped_at = data.get("dropped_at_lsn")

        def look() -> Seen:
            with _source(context) as db:
                state = slot_state(db, slot)
                if dropped_at is None:
                    return Seen(False, f"no drop was made; {_describe_slot(state, slot)}")
                if state is None:
                    return Seen(True, f"slot {slot} gone (dropped at {dropped_at})")
                restart = state["restart_lsn"]
                if restart is not None and lsn_bytes(db, restart, dropped_at) >= 0:
                    return Seen(True, f"slot {slot} recreated at {restart} (dropped at {dropped_at})")
                return Seen(False, f"{_describe_slot(state, slot)}; restart_lsn {restart} before the drop at {dropped_at}")

        return await_effect(
            context, within_s, expected=f"slot {slot} dropped (gone, or recreated after the drop)", look=look
        )

    def target(self, spec: DropReplicationSlot, context: DrillContext) -> str:
        slot = spec.slot or require_cdc(context, "DropReplicationSlot", spec.kind)
        with _source(context) as db:
            state = slot_state(db, slot)
        if state is None:
            raise ConfigError(
                "scenario",
                "DropReplicationSlot.slot",
                slot,
                "a replication slot the source has now (the CDC relay creates its own when it starts)",
            )
        return f"{_describe_slot(state, slot)} on the source: walsender terminated, slot dropped"


class ReplicationSlotStallFault:
    """Create the CDC relay's stall flag for ``duration_s``; the relay stops reading and
    confirming its slot while it exists. Reverting deletes the flag."""

    kind = "source.replication_slot_stall"
    spec_type = ReplicationSlotStall
    needs_cdc = True

    def prepare(self, spec: ReplicationSlotStall, context: DrillContext) -> RevertData:
        slot = require_cdc(context, "ReplicationSlotStall", spec.kind)
        return {"slot": slot, "flag": str(context.stack.paths.relay_stall)}

    def apply(self, spec: ReplicationSlotStall, context: DrillContext, data: RevertData) -> RevertData:
        flag = Path(data["flag"])
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text(f"{spec.describe()}\n", encoding="utf-8")
        return {"stalled": True}

    def revert(self, data: RevertData, context: DrillContext) -> str:
        flag = Path(data["flag"])
        if not flag.exists():
            return f"nothing to do: no stall flag at {flag}"
        flag.unlink(missing_ok=True)
        return f"stall flag {flag.name} deleted: the relay reads and confirms slot {data['slot']} again"

    def exclusive_key(self, spec: ReplicationSlotStall) -> str | None:
        return "replication_slot:relay:stall"

    def confirm(
        self, spec: ReplicationSlotStall, context: DrillContext, data: RevertData, within_s: float
    ) -> str:
        """The flag is there, and the slot's ``confirmed_flush_lsn`` has stayed put for
        :data:`STALL_SEEN_S` while the server's WAL moved past it."""
        slot, flag = data["slot"], Path(data["flag"])
        clock = context.clock
        seen: dict[str, Any] = {}  # the confirmed LSN, when it was first seen, the server's LSN then

        def look() -> Seen:
            if not flag.exists():
                return Seen(False, f"no stall flag at {flag}")
            with _source(context) as db:
                state = slot_state(db, slot)
                if state is None:
                    return Seen(False, f"slot {slot} does not exist")
                confirmed, current = state["confirmed_flush_lsn"], state["current_lsn"]
                now = clock.monotonic()
                if seen.get("confirmed") != confirmed:
                    seen.update(confirmed=confirmed, since=now, current=current)
                    return Seen(False, f"slot {slot} confirmed up to {confirmed} (still moving)")
                if lsn_bytes(db, current, seen["current"]) <= 0:
                    db.execute(WAL_NUDGE)  # nothing else writes: make the WAL move
                    return Seen(False, f"slot {slot} at {confirmed}; the server's WAL has not moved")
                still = now - seen["since"]
                behind = lsn_bytes(db, current, confirmed)
                if still < STALL_SEEN_S:
                    return Seen(False, f"slot {slot} confirmed up to {confirmed} for {still:.1f} s")
                return Seen(
                    True,
                    f"slot {slot} confirmed up to {confirmed} for {still:.1f} s while the server moved on "
                    f"to {current} ({behind:,} bytes behind)",
                )

        return await_effect(
            context,
            within_s,
            expected=f"slot {slot}'s confirmed_flush_lsn to stop while the WAL moves on",
            look=look,
        )

    def target(self, spec: ReplicationSlotStall, context: DrillContext) -> str:
        slot = require_cdc(context, "ReplicationSlotStall", spec.kind)
        with _source(context) as db:
            state = slot_state(db, slot)
        return (
            f"the CDC relay on {_describe_slot(state, slot)}: stall flag {context.stack.paths.relay_stall.name} "
            f"for {spec.duration_s:g} s"
        )
