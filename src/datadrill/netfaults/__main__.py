"""Run datadrill's fault proxy standalone, serving the Toxiproxy 2.x API.

Example::

    python -m datadrill.netfaults --listen 127.0.0.1:0 --port-file /tmp/faultproxy.port
    # writes the API port to the file, logs to stderr, stops cleanly on SIGTERM (exit 0)

Bad arguments (including a listen host outside loopback that is not allow-listed) exit 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from datadrill.errors import ConfigError
from datadrill.netfaults.server import FaultProxyServer

log = logging.getLogger("datadrill.netfaults")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datadrill.netfaults",
        description="datadrill's TCP fault proxy with a Toxiproxy 2.x compatible HTTP API.",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8474",
        help="API address host:port; port 0 picks a free one (default %(default)s)",
    )
    parser.add_argument("--port-file", type=Path, help="write the API port here once it listens")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a non-loopback host, IP or network proxies may listen on or forward to (repeatable)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _write_port_file(path: Path, port: int) -> None:
    # Written whole then renamed, so a reader polling for the file never sees half a number.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        server = FaultProxyServer(allow_hosts=args.allow_host, listen=args.listen)
    except ConfigError as exc:
        print(f"datadrill.netfaults: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Only flag it: the main thread logs and stops once wait() returns.
        received.append(signum)
        stop.set()

    # Installed before the API listens, so a SIGTERM sent as soon as the port file appears
    # always takes the clean path.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        url = server.start()
    except OSError as exc:
        print(f"datadrill.netfaults: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        port = int(url.rsplit(":", 1)[1])
        if args.port_file is not None:
            _write_port_file(args.port_file, port)
        log.info("Toxiproxy API at %s; SIGTERM stops", url)
        stop.wait()
        log.info("received %s, stopping", signal.Signals(received[0]).name)
    finally:
        server.stop()
        if args.port_file is not None:
            args.port_file.unlink(missing_ok=True)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
