"""The stack process's entry point: lock the state directory, build the stack around its
Kafka cluster (:mod:`.process`), serve until stopped.

Run by hand for debugging::

    python -m datadrill.backends.stackd.daemon --state-dir .datadrill
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from datadrill.backends.kafka.base import KafkaCluster
from datadrill.backends.stackd import EXIT_ALREADY_RUNNING
from datadrill.backends.stackd.process import StackProcess
from datadrill.backends.stackd.routes import routes
from datadrill.clock import Clock, MonotonicClock
from datadrill.config import StackConfig, read_running_config
from datadrill.paths import StatePaths

log = logging.getLogger("datadrill.stack")


def kafka_for(config: StackConfig, clock: Clock) -> tuple[KafkaCluster, str]:
    """The Kafka cluster a configuration asks for, and the backend that makes it."""
    external = config.external
    if external is None:
        from datadrill.backends.kafka.embedded import EmbeddedKafka

        return EmbeddedKafka.start(config.kafka, clock=clock), "embedded"
    from datadrill.backends.kafka.external import ContainerControl, ExternalKafka

    containers = ContainerControl(external.compose_project) if external.compose_project else None
    kafka = ExternalKafka(
        external.bootstrap_servers,
        brokers=external.brokers,
        toxiproxy_url=external.toxiproxy_url,
        containers=containers,
    )
    # A compose project names the containers datadrill started; otherwise it is a cluster
    # someone else runs.
    return kafka, "compose" if external.compose_project else "external"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datadrill-stack")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    paths = StatePaths(Path(args.state_dir))
    paths.make()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lock = paths.lock_file.open("a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another stack process holds %s", paths.lock_file)
        return EXIT_ALREADY_RUNNING
    paths.pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    config = read_running_config(paths)
    clock = MonotonicClock()
    kafka, backend = kafka_for(config, clock)
    stack = StackProcess(paths, config, kafka=kafka, backend=backend, make_routes=routes, clock=clock)

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stack.stop_requested.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        stack.start()
        log.info("stack ready: %s", paths.state_file)
        stack.run_forever()
    finally:
        stack.shutdown()
        paths.pid_file.unlink(missing_ok=True)
        lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
