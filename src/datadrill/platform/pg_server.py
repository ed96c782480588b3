"""The embedded stack's throwaway PostgreSQL server: the source database when the stack
runs with ``[source] server = "postgresql"`` (``datadrill stack up --source postgresql``).

It is made from the system's server binaries (Debian's ``postgresql`` package:
``/usr/lib/postgresql/<version>/bin``, the newest version; ``$POSTGRES_GLOB`` says where
else to look). :func:`prepare` runs ``initdb`` once into ``<state dir>/postgres/data`` (a
stack restarted on the same state directory finds its data again), picks a port on
127.0.0.1 (the same one again when it is free) and returns the server's command line; the
stack runs that command under its supervisor as the process ``source-db`` (in the
foreground, so it dies with the stack), and :func:`wait_ready` waits for it and creates
the ``source`` database.

The server is set up for change data capture (``wal_level=logical``, replication slots and
WAL senders) and for speed over durability (``fsync=off``: it is thrown away). It trusts
connections from 127.0.0.1 only, and listens nowhere else. As root, initdb and the server
run as the ``postgres`` user (PostgreSQL refuses to run as root).

Example::

    plan = prepare(paths.postgres_dir)            # PostgresNotFound names the package
    supervisor.add("source-db", list(plan.argv), die_with_parent=True)
    supervisor.start("source-db")
    wait_ready(plan, running=lambda: ..., log=paths.log("source-db"))
    plan.uri        # 'postgresql://drill@127.0.0.1:41234/source'
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from datadrill.errors import ConfigError, StackStartFailed

DEFAULT_POSTGRES_GLOB = "/usr/lib/postgresql/*/bin/postgres"
PACKAGE = "postgresql"
# The role the harness and the platform connect as: initdb's bootstrap superuser, so it
# may create publications and replication slots (the CDC relay) without further grants.
ROLE = "drill"
DATABASE = "source"
# PostgreSQL refuses to run as root; Debian's package creates this user.
SERVER_USER = "postgres"
READY_TIMEOUT_S = 60.0
INITDB_TIMEOUT_S = 120.0
# Data directories made outside a state directory the server's user cannot enter.
OUTSIDE_PREFIX = "datadrill-source-pg-"
OWNER_FILE = "state-dir-link"
# A Unix socket's path is at most 107 bytes (sun_path); longer: TCP only.
_SUN_PATH_MAX = 107
SERVER_SETTINGS: tuple[tuple[str, str], ...] = (
    ("listen_addresses", "127.0.0.1"),
    ("wal_level", "logical"),
    ("max_replication_slots", "10"),
    ("max_wal_senders", "10"),
    # Throwaway data: no fsync makes initdb, commits and checkpoints fast.
    ("fsync", "off"),
)
# Trust from loopback only (the server listens on 127.0.0.1 alone); replication
# connections (the CDC relay) need lines of their own.
PG_HBA = """\
# Written by datadrill: the throwaway source server trusts loopback connections only.
local   all           all                 trust
host    all           all   127.0.0.1/32  trust
local   replication   all                 trust
host    replication   all   127.0.0.1/32  trust
"""


class PostgresNotFound(ConfigError):
    """No PostgreSQL server binaries on this machine: one line naming the Debian package
    (the CLI exits 2 with it)."""

    def __init__(self, looked_for: str) -> None:
        install = f"install the Debian package {PACKAGE} (sudo apt-get install {PACKAGE})"
        super().__init__("source.server", "postgresql", looked_for, install)
        self.args = (f"PostgreSQL server binaries not found (looked for {looked_for}): {install}",)


@dataclass(frozen=True)
class PostgresBinaries:
    bindir: Path

    @property
    def postgres(self) -> Path:
        return self.bindir / "postgres"

    @property
    def initdb(self) -> Path:
        return self.bindir / "initdb"

    def version(self) -> str:
        """``postgres --version``'s number ("15.10")."""
        done = subprocess.run([str(self.postgres), "--version"], capture_output=True, text=True, timeout=30)
        found = re.search(r"(\d+(?:\.\d+)*)", done.stdout)
        return found.group(1) if found else done.stdout.strip()


def _version_key(postgres: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin/postgres: "15" sorts after "9.6" as a number, not as text.
    return tuple(int(part) for part in re.findall(r"\d+", postgres.parent.parent.name)) or (0,)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_binaries(glob: str | None = None) -> PostgresBinaries:
    """The newest PostgreSQL server binaries matching ``glob`` (else ``$POSTGRES_GLOB``, else
    Debian's ``/usr/lib/postgresql/*/bin/postgres``; with neither set, ``pg_config
    --bindir`` too). Raises :class:`PostgresNotFound` naming the package."""
    pattern_text = glob or os.environ.get("POSTGRES_GLOB") or DEFAULT_POSTGRES_GLOB
    pattern = Path(pattern_text)
    relative = str(pattern.relative_to(pattern.anchor)) if pattern.anchor else pattern_text
    found = [p for p in Path(pattern.anchor or ".").glob(relative) if _executable(p)]
    found = [p for p in found if _executable(p.with_name("initdb"))]
    if found:
        return PostgresBinaries(max(found, key=_version_key).parent)
    if glob is None and "POSTGRES_GLOB" not in os.environ:
        bindir = _pg_config_bindir()
        if bindir is not None and _executable(bindir / "postgres") and _executable(bindir / "initdb"):
            return PostgresBinaries(bindir)
    raise PostgresNotFound(pattern_text)


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


@dataclass(frozen=True)
class ServerUser:
    """Who the server runs as: ourselves, or (when we are root) the ``postgres`` user."""

    uid: int
    gid: int
    name: str

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()


def server_user() -> ServerUser:
    if os.geteuid() != 0:
        return ServerUser(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise ConfigError(
            "source.server",
            "postgresql",
            f"user {SERVER_USER}",
            f"PostgreSQL does not run as root and there is no '{SERVER_USER}' user to run it as: "
            f"install the Debian package {PACKAGE}, or run datadrill as another user",
        ) from None
    return ServerUser(entry.pw_uid, entry.pw_gid, SERVER_USER)


def reachable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether user ``uid`` (primary group ``gid``) may enter every directory on the way to
    ``path`` (search permission: pytest's temporary directories and /root are private to
    root). Mode bits only, as the kernel checks them without ACLs."""
    current = path.resolve()
    for directory in [current, *current.parents]:
        try:
            info = directory.stat()
        except FileNotFoundError:
            continue  # made later, by us, for that user
        if uid == 0:
            continue
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


@dataclass(frozen=True)
class ServerPlan:
    """What it takes to run the server: its command line and where it will answer."""

    argv: tuple[str, ...]
    data_dir: Path
    port: int
    version: str

    @property
    def uri(self) -> str:
        """The source database, as the harness reaches it (directly, never via a proxy)."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def admin_uri(self) -> str:
        """The server's ``postgres`` database: where ``source`` is created."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/postgres"


def prepare(postgres_dir: Path, *, binaries: PostgresBinaries | None = None) -> ServerPlan:
    """initdb into ``postgres_dir/data`` unless a data directory is already there, choose the
    port and return the command that runs the server in the foreground. Raises
    :class:`PostgresNotFound` without binaries, :class:`StackStartFailed` when initdb fails."""
    binaries = binaries or find_binaries()
    user = server_user()
    postgres_dir.mkdir(parents=True, exist_ok=True)
    data_dir = _data_dir(postgres_dir, user)
    version = binaries.version()
    if not (data_dir / "PG_VERSION").exists():
        _initdb(binaries, data_dir, user)
    _check_major(data_dir, version)
    (data_dir / "pg_hba.conf").write_text(PG_HBA, encoding="utf-8")
    if not user.is_self:
        os.chown(data_dir / "pg_hba.conf", user.uid, user.gid)
    port = _choose_port(postgres_dir / "port")
    settings = [*SERVER_SETTINGS, ("port", str(port)), ("unix_socket_directories", _socket_dir(data_dir, port))]
    argv = [str(binaries.postgres), "-D", str(data_dir)]
    for name, value in settings:
        argv += ["-c", f"{name}={value}"]
    return ServerPlan(tuple(_as_user(user) + argv), data_dir, port, version)


def _data_dir(postgres_dir: Path, user: ServerUser) -> Path:
    """``postgres_dir/data``; where the server's user cannot enter the state directory (root's
    private directories), a link to a directory under the system's temporary directory,
    deleted by a later start once the state directory is gone (:func:`remove_orphans`)."""
    link = postgres_dir / "data"
    if link.is_symlink():
        target = link.resolve()
        if target.is_dir():
            return target
        link.unlink()  # the temporary directory went away (a reboot): start afresh
    if link.is_dir() or user.is_self or reachable_by(postgres_dir, user.uid, user.gid):
        link.mkdir(mode=0o700, exist_ok=True)
        if not user.is_self:
            os.chown(postgres_dir, user.uid, user.gid)
            os.chown(link, user.uid, user.gid)
        return link
    remove_orphans()
    outside = Path(tempfile.mkdtemp(prefix=OUTSIDE_PREFIX)) / "data"
    outside.mkdir(mode=0o700)
    # Which state directory it belongs to: remove_orphans() deletes it once that is gone.
    (outside.parent / OWNER_FILE).write_text(str(link.absolute()) + "\n", encoding="utf-8")
    os.chown(outside.parent, user.uid, user.gid)
    os.chown(outside, user.uid, user.gid)
    link.symlink_to(outside, target_is_directory=True)
    return outside


def remove_orphans(base: Path | None = None) -> list[Path]:
    """Delete the data directories made outside state directories (see :func:`_data_dir`)
    whose state directory is gone or links elsewhere (a test's temporary state directory,
    deleted by pytest), unless a server still runs on them. Only directories holding our
    owner file are touched. Returns what was deleted."""
    removed = []
    for outside in Path(base or tempfile.gettempdir()).glob(OUTSIDE_PREFIX + "*"):
        try:
            link = Path((outside / OWNER_FILE).read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            continue  # not ours (no owner file), or not readable
        data = outside / "data"
        if link.is_symlink() and link.resolve() == data.resolve():
            continue
        if _server_running(data):
            continue
        shutil.rmtree(outside, ignore_errors=True)
        removed.append(outside)
    return removed


def _server_running(data: Path) -> bool:
    try:
        pid = int((data / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return Path(f"/proc/{pid}").exists()


def _as_user(user: ServerUser) -> list[str]:
    """The prefix that runs a command as the server's user. setpriv execs in place (no
    parent left behind, signals reach the server itself) and sets the parent-death signal
    *after* changing user (a change of credentials clears it): the server dies with the
    stack."""
    if user.is_self:
        return []
    setpriv = shutil.which("setpriv") or "setpriv"
    return [
        setpriv,
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--pdeathsig",
        "KILL",
        "--",
    ]


def _initdb(binaries: PostgresBinaries, data_dir: Path, user: ServerUser) -> None:
    argv = [
        str(binaries.initdb),
        "-D",
        str(data_dir),
        "-U",
        ROLE,
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",  # the data is thrown away; syncing every file takes seconds
    ]
    options: dict[str, object] = {}
    if not user.is_self:
        options = {"user": user.uid, "group": user.gid, "extra_groups": []}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=INITDB_TIMEOUT_S, cwd=str(data_dir), **options  # type: ignore[call-overload]
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise StackStartFailed(f"initdb of the throwaway PostgreSQL server in {data_dir} failed: {exc}") from None
    if done.returncode != 0:
        error = StackStartFailed(
            f"initdb of the throwaway PostgreSQL server in {data_dir} exited with code {done.returncode}"
        )
        error.add_note("initdb said:\n" + "\n".join((done.stdout + done.stderr).splitlines()[-20:]))
        raise error


def _check_major(data_dir: Path, version: str) -> None:
    made_by = (data_dir / "PG_VERSION").read_text(encoding="utf-8").strip()
    if made_by != version.split(".")[0]:
        raise StackStartFailed(
            f"the throwaway PostgreSQL data directory {data_dir} was made by PostgreSQL {made_by}, "
            f"but the server binaries are {version}: remove {data_dir.parent} to start afresh"
        )


def _socket_dir(data_dir: Path, port: int) -> str:
    # Inside the data directory (the server's user can write there; /var/run/postgresql may
    # not exist). Too long a path for a Unix socket: none, TCP alone serves.
    socket_path = f"{data_dir}/.s.PGSQL.{port}"
    return str(data_dir) if len(socket_path.encode()) <= _SUN_PATH_MAX else ""


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _choose_port(port_file: Path) -> int:
    """The port used last time on this state directory if it is free (clients that saved
    the URI still find the server), else a free one; remembered in ``port_file``."""
    try:
        previous = int(port_file.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        previous = 0
    if previous and _port_free(previous):
        return previous
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    port_file.write_text(f"{port}\n", encoding="utf-8")
    return port


def wait_ready(
    plan: ServerPlan,
    *,
    running: Callable[[], bool],
    log: Path,
    timeout_s: float = READY_TIMEOUT_S,
) -> None:
    """Wait until the server accepts connections, then create the ``source`` database if it
    is not there. Raises :class:`StackStartFailed` with the server's last log lines when
    it exits or does not answer within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = "no attempt yet"
    while True:
        if not running():
            raise _failed(f"the throwaway PostgreSQL server exited while starting (port {plan.port})", log)
        try:
            admin = psycopg2.connect(plan.admin_uri, connect_timeout=2)
        except psycopg2.Error as exc:
            last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        else:
            try:
                admin.set_session(autocommit=True)
                with admin.cursor() as cursor:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                    if cursor.fetchone() is None:
                        cursor.execute(f"CREATE DATABASE {DATABASE}")
            finally:
                admin.close()
            return
        if time.monotonic() >= deadline:
            raise _failed(
                f"the throwaway PostgreSQL server did not accept connections on 127.0.0.1:{plan.port} "
                f"within {timeout_s:g}s (last: {last})",
                log,
            )
        time.sleep(0.05)


def _failed(message: str, log: Path) -> StackStartFailed:
    from datadrill.platform.supervisor import log_tail

    error = StackStartFailed(f"{message}; see {log}")
    error.add_note(f"last lines of {log}:\n" + (log_tail(log) or "(empty)"))
    return error


def server_version(uri: str) -> str:
    """``PostgreSQL 15.10``: what a running server says it is."""
    connection = psycopg2.connect(uri, connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            row = cursor.fetchone()
    finally:
        connection.close()
    return f"PostgreSQL {row[0].split()[0]}" if row else "PostgreSQL"


__all__ = [
    "DATABASE",
    "DEFAULT_POSTGRES_GLOB",
    "PACKAGE",
    "ROLE",
    "PostgresBinaries",
    "PostgresNotFound",
    "ServerPlan",
    "find_binaries",
    "prepare",
    "reachable_by",
    "remove_orphans",
    "server_version",
    "wait_ready",
]
