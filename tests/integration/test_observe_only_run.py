"""An observe-only drill on the embedded stack: no reference platform, two declared
components written here as small scripts (a producer at a bounded rate into its own topic,
a consumer group committing its offsets), a scenario that kills the consumer and an SLO on
the lag of its group. The runner injects and measures, writes nothing, and says so; a
scenario that needs the reference platform is refused by the CLI before the run (exit 2).

Timings are asserted loosely (an alert fired, the lag recovered), never to the second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TEST_CONFIG, events, run_cli, stop_stack
from datadrill.backends.embedded import EmbeddedBackend
from datadrill.config import parse_config
from datadrill.engine.observe import OBSERVE_ONLY_NOTE
from datadrill.engine.runner import Runner
from datadrill.model import (
    SLO,
    ConsumerLag,
    Expectations,
    KillComponent,
    RestartRate,
    Scenario,
    ThresholdAlert,
)
from datadrill.model.report import Verdict
from datadrill.model.scenario import SteadyState, Workload
from datadrill.model.slo import Target
from datadrill.paths import StatePaths
from datadrill.reporting import write_reports
from datadrill.session import start_stack
from datadrill.stack.client import StackClient

pytestmark = pytest.mark.integration

TOPIC = "clicks"
GROUP = "sessionizer"
RATE = 200  # messages per second

PRODUCER = r"""
import os, sys, time
from confluent_kafka import Producer

topic, rate = sys.argv[1], float(sys.argv[2])
producer = Producer({"bootstrap.servers": os.environ["BOOTSTRAP"], "linger.ms": 5})
# The mock cluster creates the topic on the producer's first metadata request.
producer.produce(topic, b"first")
producer.flush(30)
print("producing", flush=True)
sent, began = 0, time.monotonic()
while True:
    producer.produce(topic, b"click %d" % sent)
    producer.poll(0)
    sent += 1
    # A bounded rate: never ahead of `rate` messages per second since the start.
    ahead = sent / rate - (time.monotonic() - began)
    if ahead > 0:
        time.sleep(ahead)
"""

CONSUMER = r"""
import os, sys, time
from confluent_kafka import Consumer

topic, group = sys.argv[1], sys.argv[2]
bootstrap = os.environ["BOOTSTRAP"]
# Subscribe once the producer has made the topic (a consumer does not create topics).
looker = Consumer({"bootstrap.servers": bootstrap, "group.id": group + "-lookup"})
while True:
    found = looker.list_topics(topic, timeout=5).topics.get(topic)
    if found is not None and found.error is None and found.partitions:
        break
    time.sleep(0.2)
looker.close()
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    # A killed member holds its partitions until its session ends: keep that short.
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
})
consumer.subscribe([topic])
said = False
while True:
    messages = consumer.consume(num_messages=500, timeout=0.2)
    if messages:
        consumer.commit(asynchronous=False)
        if not said:
            print("consuming", flush=True)
            said = True
"""


@pytest.fixture(scope="module")
def team_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackClient]:
    root = tmp_path_factory.mktemp("observe")
    (root / "producer.py").write_text(PRODUCER, encoding="utf-8")
    (root / "consumer.py").write_text(CONSUMER, encoding="utf-8")
    env = {"BOOTSTRAP": "{kafka.bootstrap_servers}"}
    data = {
        **TEST_CONFIG,
        "platform": {"reference": False},
        "components": {
            "producer": {
                "command": ["{python}", "producer.py", TOPIC, str(RATE)],
                "cwd": str(root),
                "env": env,
                "ready": {"log": "producing"},
            },
            "consumer": {
                "command": ["{python}", "consumer.py", TOPIC, GROUP],
                "cwd": str(root),
                "env": env,
                "ready": {"log": "consuming"},
                "group": GROUP,
            },
        },
    }
    stack = start_stack(
        EmbeddedBackend(), StatePaths(root / ".datadrill"), parse_config(data, source="test"), timeout_s=120
    )
    yield stack
    stop_stack(stack)


def test_an_observe_only_run_detects_a_killed_consumer_and_sees_it_recover(
    team_stack: StackClient, tmp_path: Path
) -> None:
    stack = team_stack
    scenario = Scenario(
        name="sessionizer-killed",
        description="The team's consumer is SIGKILLed; its group's lag must alert and come back.",
        workload=Workload(rate=0),
        slos=(
            SLO(
                "sessionizer lag",
                sli=ConsumerLag(max_messages=RATE * 2, target=Target(topic=TOPIC, group=GROUP)),
                objective=0.5,
                alert=ThresholdAlert(for_s=1),
            ),
            SLO("consumer restarts", sli=RestartRate(max_per_min=10, component="consumer"), objective=0.5),
        ),
        # A crash loop: three kills, each restart rejoins the group and waits for the dead
        # member's session to end, so the lag grows past the threshold on any machine.
        schedule=(KillComponent(at_s=1, component="consumer", times=3, every_s=2),),
        steady_state=SteadyState(warmup_s=2, timeout_s=90),
        expectations=Expectations(detect_within_s=60, recover_within_s=150),
        stabilisation_s=3.0,
        max_duration_s=240.0,
    )
    started = {e["component"] for e in events(stack) if e["event"] == "process_started"}
    report = Runner(scenario, stack=stack, run_dir=tmp_path / "run", stack_kind="embedded").run()

    assert report.verdict is Verdict.PASSED, (report.reasons, [t.text for t in report.timeline])
    assert report.ttd_s is not None and report.ttr_s is not None and report.ttr_s > report.ttd_s
    lag = next(s for s in report.slos if s.name == "sessionizer lag")
    assert lag.first_alert_s is not None and lag.worst_value is not None and lag.worst_value > RATE * 2
    # The fault hit the team's consumer; datadrill drove nothing and verified nothing of its own.
    exits = [e for e in events(stack) if e["event"] == "process_exited" and e["component"] == "consumer"]
    assert len(exits) >= 3
    assert started == {"producer", "consumer"}
    assert not {e.get("component") for e in events(stack)} & {"workload", "relay", "sink"}
    assert report.integrity is None and report.notes and report.notes[0].startswith(OBSERVE_ONLY_NOTE)
    text = write_reports(report, tmp_path / "run", formats=("md",))["md"].read_text(encoding="utf-8")
    assert "Observe-only: the stack runs no reference platform" in text
    print(f"observe-only drill: TTD {report.ttd_s:.1f} s, TTR {report.ttr_s:.1f} s, worst lag {lag.worst_value:,.0f}")


CANARIES = """
from datadrill.model import *
SCENARIO = Scenario(
    name="canaries-here",
    workload=Workload(rate=0),
    slos=(SLO("canaries", sli=CanaryLatency(max_latency_s=5), objective=0.99),),
    schedule=(KillComponent(at_s=1, component="consumer"),),
)
"""


def test_the_cli_refuses_a_scenario_that_needs_the_reference_platform(team_stack: StackClient, tmp_path: Path) -> None:
    scenario = tmp_path / "canaries.py"
    scenario.write_text(CANARIES, encoding="utf-8")
    done = run_cli("run", "--state-dir", str(team_stack.paths.root), "--report-dir", str(tmp_path / "r"), str(scenario))
    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert "canaries-here: slos[0].sli = 'CanaryLatency' is invalid: it needs the reference platform" in said, said
    assert "its components: producer, consumer" in said
    assert team_stack.runs.holder() is None
