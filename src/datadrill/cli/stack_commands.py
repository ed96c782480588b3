"""``datadrill stack up | status | down``: start, inspect and stop a stack of any backend."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from datadrill.cli.app import StateDir, err, out, stack_app
from datadrill.config import DEFAULT_CONFIG_FILE, DEFAULT_STATE_DIR, load_config
from datadrill.errors import ConfigError, StackNotRunning
from datadrill.paths import StatePaths

# The choices of `stack up --source` and `--relay` ([source] server, [relay] mode).
SOURCE_SERVERS = ("sqlite", "postgresql")
RELAY_MODES = ("poll", "cdc")


def source_overrides(source: str | None, relay: str | None) -> dict[str, object]:
    """The config overrides of ``--source`` and ``--relay`` (``stack up``, ``run``), each
    checked against what is allowed."""
    if source is not None and source not in SOURCE_SERVERS:
        raise ConfigError("--source", "--source", source, " or ".join(SOURCE_SERVERS))
    if relay is not None and relay not in RELAY_MODES:
        raise ConfigError("--relay", "--relay", relay, " or ".join(RELAY_MODES))
    overrides: dict[str, object] = {}
    if source is not None:
        overrides["source.server"] = source
    if relay is not None:
        overrides["relay.mode"] = relay
    return overrides


@stack_app.command("up")
def stack_up_cmd(
    state_dir: StateDir = Path(DEFAULT_STATE_DIR),
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML config (default: ./datadrill.toml if present).")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Workload orders per second.")] = None,
    catalog_uri: Annotated[
        str | None, typer.Option("--catalog-uri", help="PostgreSQL DSN for the catalog (default SQLite).")
    ] = None,
    contract_format: Annotated[str | None, typer.Option("--contract-format", help="avro or json.")] = None,
    election_delay: Annotated[
        float | None, typer.Option("--election-delay", help="Seconds before a dead leader is replaced.")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1.0, max=3600.0, help="Seconds to wait for a healthy stack.")
    ] = 60.0,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="embedded (no Docker), external (the \\[external] cluster of the config) or compose "
            "(real services in Docker).",
        ),
    ] = "embedded",
    brokers: Annotated[
        int, typer.Option("--brokers", min=1, max=3, help="Kafka brokers of a compose stack: 1 or 3 (KRaft voters; 2 cannot lose one).")
    ] = 3,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="The source database: sqlite (a file in the state directory) or postgresql (embedded: a "
            "throwaway server from the system's binaries; compose: its source database). Default: the config's.",
        ),
    ] = None,
    relay: Annotated[
        str | None,
        typer.Option("--relay", help="The outbox relay: poll or cdc (logical decoding; PostgreSQL source). Default: the config's."),
    ] = None,
) -> None:
    """Start a background stack with a steady workload; returns once data flows."""
    from datadrill.backends.registry import backend_for
    from datadrill.session import start_stack

    chosen = backend_for(backend, flag="--backend", brokers=brokers)
    overrides = source_overrides(source, relay)
    for key, value in (
        ("workload.rate", rate),
        ("catalog.uri", catalog_uri),
        ("contract.format", contract_format),
        ("kafka.election_delay_s", election_delay),
    ):
        if value is not None:
            overrides[key] = value
    config = chosen.configure(config_file=config_file, overrides=overrides)
    from datadrill.platform.declared import check_placeholders

    # Checked again when the stack starts; here the error can name the file given.
    check_placeholders(config, source=str(config_file or DEFAULT_CONFIG_FILE))
    if config.external is None and config.source.server == "postgresql" and not config.source.uri:
        from datadrill.platform.pg_server import find_binaries

        # Said here, as one line (exit 2), not as a stack process that died starting.
        find_binaries()
    if backend == "embedded" and config.source.uri:
        from datadrill.platform.cdc_relay import check_source_uri

        # A server that does not answer, or cannot feed the CDC relay: one line now.
        check_source_uri(config.source.uri, cdc=config.relay.mode == "cdc")
    paths = StatePaths(state_dir)
    with err.status(f"starting the {backend} stack…") as spinner:
        stack = start_stack(
            chosen,
            paths,
            config,
            timeout_s=timeout,
            on_progress=lambda m: spinner.update(f"starting the {backend} stack: {m}"),
        )
    state = stack.state
    out.print(f"[green]{backend} stack up[/green] in {state['state_dir']} (pid {state['pid']})")
    out.print(f"  kafka    {state['bootstrap_servers']}  topic {state['topic']}")
    out.print(f"  catalog  {state['catalog_uri']}  table {state['table']}")
    out.print(f"  warehouse {state['warehouse']}")
    engine = "Trino" if state.get("query_engine") == "trino" else "Trino protocol over DuckDB"
    out.print(f"  query    {state['query_url']}  ({engine}; catalog iceberg, any Trino client)")
    if state.get("source_db"):
        out.print(f"  source   {state['source_db']}")
    if state.get("fault_proxy_url"):
        out.print(f"  faults   {state['fault_proxy_url']}  (Toxiproxy API)")
    out.print(f"  control  {state['control_url']}")
    out.print(
        f"  next: datadrill stack status | datadrill stack down{'' if backend == 'embedded' else ' --backend ' + backend}"
    )


@stack_app.command("status")
def stack_status_cmd(
    state_dir: StateDir = Path(DEFAULT_STATE_DIR),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="embedded: the stack running in --state-dir (any backend); external: whether the "
            "\\[external] cluster of the config is ready, without a stack running on it.",
        ),
    ] = "embedded",
    config_file: Annotated[
        Path | None, typer.Option("--config", help="TOML config (default: ./datadrill.toml if present).")
    ] = None,
) -> None:
    """List every component with its endpoint and health; exit 0 only if all are healthy."""
    from datadrill.backends.stackd.manager import stack_status

    if backend == "external":
        _external_status(config_file, as_json)
        return
    if backend != "embedded":
        raise ConfigError("--backend", "--backend", backend, "embedded or external")

    try:
        status = stack_status(StatePaths(state_dir))
    except StackNotRunning as exc:
        if as_json:
            out.print_json(json.dumps({"healthy": False, "running": False, "error": str(exc)}))
        else:
            err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    status["running"] = True
    if as_json:
        sys.stdout.write(json.dumps(status, indent=2) + "\n")
    else:
        _print_status(status)
    raise typer.Exit(0 if status["healthy"] else 1)


def _external_status(config_file: Path | None, as_json: bool) -> None:
    """Readiness of an existing cluster (Kafka, the catalog database, Trino)."""
    from datadrill.backends.compose.readiness import check_all

    config = load_config(config_file)
    if config.external is None:
        raise ConfigError(
            str(config_file or "datadrill.toml"),
            "external",
            None,
            "an [external] section with bootstrap_servers and catalog_uri (see the README)",
        )
    states = check_all(config.external)
    healthy = all(s.ready for s in states)
    if as_json:
        payload = {"healthy": healthy, "components": [s.__dict__ for s in states]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        table = Table(title="external cluster")
        table.add_column("component")
        table.add_column("health")
        table.add_column("detail")
        for state in states:
            table.add_row(
                state.service, "[green]ready[/green]" if state.ready else "[red]NOT READY[/red]", state.reason
            )
        out.print(table)
    raise typer.Exit(0 if healthy else 1)


def _print_status(status: dict[str, Any]) -> None:
    table = Table(title=f"datadrill stack — {status['state_dir']} (up {status['uptime_s']:.0f}s)")
    table.add_column("component")
    table.add_column("endpoint")
    table.add_column("health")
    table.add_column("detail")
    declared = [c for c in status["components"] if c.get("declared")]
    for c in status["components"]:
        if c.get("declared"):
            continue
        health = "[green]healthy[/green]" if c["healthy"] else "[red]UNHEALTHY[/red]"
        table.add_row(c["name"], c["endpoint"], health, c["detail"])
    out.print(table)
    if declared:
        out.print(_declared_table(declared))
    verdict = "[green]all components healthy[/green]" if status["healthy"] else "[red]stack unhealthy[/red]"
    out.print(verdict)
    run = status.get("run")
    if run:
        if run.get("state") == "reverting":
            out.print(f"run {run['run_id']} ({run['scenario']}): lease expired, the stack is reverting its faults")
        else:
            out.print(
                f"drill running: {run['scenario']} (run {run['run_id']}, pid {run['pid']}); "
                f"lease {run['lease_s']:g} s, renewed {run['lease_s'] - (run['expires_in_s'] or 0):.1f} s ago"
            )
    else:
        out.print("no drill running")


def _declared_table(entries: list[dict[str, Any]]) -> Table:
    """Declared components: processes with pid, restarts and last exit; connectors with the
    state their Connect cluster reports."""
    table = Table(title="your components")
    for column in ("component", "pid", "restarts", "last exit", "health", "command"):
        table.add_column(column)
    for c in entries:
        colour = "green" if c["healthy"] else "yellow" if c["health"] == "starting" else "red"
        # A connector's "command" is where it runs and the state its cluster reports.
        command = c["detail"] if c.get("kind") == "connector" else " ".join(c.get("command") or [])
        table.add_row(
            c["name"],
            str(c["pid"]) if c.get("pid") else "-",
            str(c["restarts"]) if c.get("restarts") is not None else "-",
            c.get("last_exit") or "-",
            f"[{colour}]{c['health']}[/{colour}]",
            Text(command),  # the user's text, not rich markup
        )
    return table


@stack_app.command("down")
def stack_down_cmd(
    state_dir: StateDir = Path(DEFAULT_STATE_DIR),
    backend: Annotated[
        str, typer.Option("--backend", help="embedded, external, or compose (also stops its services).")
    ] = "embedded",
    brokers: Annotated[
        int, typer.Option("--brokers", min=1, max=3, help="Kafka brokers of the compose stack: 1 or 3 (KRaft voters; 2 cannot lose one).")
    ] = 3,
) -> None:
    """Stop the stack and every process it started (and the compose services)."""
    from datadrill.backends.registry import backend_for
    from datadrill.stack.state import read_state

    chosen = backend_for(backend, flag="--backend", brokers=brokers)
    if backend == "compose":
        from datadrill.backends.compose.services import require_docker

        require_docker("--backend")
    paths = StatePaths(state_dir)
    running = read_state(paths) is not None
    killed = chosen.down(paths)
    if running:
        out.print(f"stack in {paths.root} stopped")
    else:
        out.print(f"no stack was running in {paths.root}")
    if backend == "compose":
        out.print(f"compose services in {paths.root / 'compose'} stopped")
    if killed:
        out.print(f"killed {len(killed)} leftover processes: {', '.join(map(str, killed))}")
