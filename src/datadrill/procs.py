"""Processes as /proc shows them: is a pid alive (and not a zombie), who is in a group.

Example::

    alive(os.getpid())            # True
    group_members(os.getpgid(0))  # [pids...]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def pid_namespace() -> str | None:
    """This process's pid namespace (Linux): pids of two processes compare only within one."""
    try:
        return str(Path("/proc/self/ns/pid").readlink())
    except OSError:
        return None


@dataclass(frozen=True)
class ProcState:
    """A process's state letter (R, S, D, T, Z, ...) and its start time in clock ticks
    after boot: pid and start time together name one process, as pids are reused."""

    state: str
    start_ticks: int


def read_proc_state(pid: int, *, proc: Path = Path("/proc")) -> ProcState | None:
    """The process's state from ``/proc/<pid>/stat`` (None: no such process here)."""
    try:
        text = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 2 (comm) is in parentheses and may itself hold spaces or ')': the fields after
    # the last ')' are fixed, from field 3 (state) on; field 22 is the start time.
    fields = text[text.rindex(")") + 2 :].split()
    return ProcState(fields[0], int(fields[19]))
