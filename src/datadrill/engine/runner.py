"""The runner: steady state → inject on schedule → observe → detect → recover → verify →
revert everything → measure.

Every fault handle goes onto an ExitStack the moment it exists, so faults come back out on
success, failure, exceptions and Ctrl-C. Every event goes to the journal as it happens.

Example::

    runner = Runner(scenario, stack=stack, run_dir=Path("reports/run-1"))
    report = runner.run()
    report.verdict, report.ttd_s, report.ttr_s
"""

from __future__ import annotations

import contextlib
import os
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from datadrill import events as ev
from datadrill.clock import Clock, MonotonicClock
from datadrill.engine.alerts import AlertEvaluator
from datadrill.engine.journal import Journal
from datadrill.engine.measure import judge, measure
from datadrill.errors import DrillError, FaultNotLanded, RunLeaseHeld, RunLeaseLost, StackProcessDied
from datadrill.events import read_events
from datadrill.faults.base import DrillContext, FaultHandle
from datadrill.faults.ledger import FaultLedger, LedgeredHandle, cleanup, inject
from datadrill.faults.registry import plugins
from datadrill.faults.stack_state import pause_spec, workload_spec
from datadrill.model.faults import TakeCatalogBackup, TakeReserveCopy
from datadrill.model.recovery import Automatic, Compare, PauseComponent, ResumeComponent, Runbook
from datadrill.model.report import RunReport
from datadrill.model.scenario import Scenario
from datadrill.model.slo import DEFAULT_SOURCE_QUERY
from datadrill.model.stop import SLILimit, StackUnhealthy
from datadrill.probes import Probe, ProbeEnv, Sample, build_probe
from datadrill.stack.port import Stack

if TYPE_CHECKING:
    from datadrill.engine.calibration import Calibration
    from datadrill.engine.prometheus_watch import PrometheusClient
    from datadrill.integrity.result import ReconcileResult

_T = TypeVar("_T")
# How often a probe round in progress checks that the stack process still lives.
DEATH_CHECK_S = 0.25
# The run lease: how long the stack keeps a run's faults after its last renewal.
DEFAULT_LEASE_S = 10.0
# How long the end of the fault phase waits for a runbook step still in flight.
RUNBOOK_STOP_S = 30.0
# How often a run waiting for the stack (--wait) asks again.
LEASE_POLL_S = 0.5


@dataclass
class LiveState:
    """What the progress display shows; updated on every probe."""

    scenario: str
    phase: str = "starting"
    elapsed_s: float = 0.0
    samples: dict[str, Sample] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)  # "FIRING", "fired" (cleared since) or ""
    active_faults: list[str] = field(default_factory=list)
    detected_s: float | None = None
    fault_start_s: float | None = None
    recovery_step: str | None = None
    notes: list[str] = field(default_factory=list)
    # The last events worth a line (not samples), newest last: the live view's rolling log.
    recent: list[ev.EventBase] = field(default_factory=list)
    # The running step's progress: (done, total or None, unit, seconds since it began).
    step_progress: tuple[int, int | None, str, float] | None = None


RECENT_EVENTS = 8


class _Aborted(Exception):
    """The run cannot go on (steady state not reached); not an error of the harness."""


class _LeaseKeeper(threading.Thread):
    """Renews the run's lease while the runner lives, a few times per lease, so a long
    phase (a reconciliation, a slow probe round) never lets it lapse. When the runner dies
    the renewals stop with it, and the stack reverts the run's faults by itself."""

    def __init__(self, stack: Stack, run_id: str, lease_s: float) -> None:
        super().__init__(name="run-lease", daemon=True)
        self.stack = stack
        self.run_id = run_id
        self.every_s = max(0.2, min(lease_s / 4, 2.0))
        self.stop = threading.Event()
        self.lost: str | None = None

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                self.stack.runs.renew(self.run_id)
            except RunLeaseLost as exc:
                self.lost = str(exc)
                return
            except DrillError:
                continue  # the stack process's death is the runner's to notice and report


class Runner:
    def __init__(
        self,
        scenario: Scenario,
        *,
        stack: Stack,
        run_dir: Path,
        clock: Clock | None = None,
        seed: int = 0,
        stack_kind: str = "embedded",
        on_update: Callable[[LiveState], None] | None = None,
        verify: Callable[[DrillContext], ReconcileResult] | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        wait_for_stack: bool = False,
        on_wait: Callable[[str], None] | None = None,
        prometheus: PrometheusClient | None = None,
        prometheus_poll_s: float = 0.25,
        calibration: Callable[[], Calibration | None] | None = None,
    ) -> None:
        self.scenario = scenario
        # This machine's calibration for the projection at production volume (cached, or run
        # once); None: engine.calibration.for_run, which DATADRILL_CALIBRATION=off turns off.
        self.calibration = calibration
        # A Prometheus whose alerts the run watches (detection as the team's alerting sees it).
        self.prometheus = prometheus
        self.prometheus_poll_s = prometheus_poll_s
        self.stack = stack
        self.run_dir = run_dir
        self.clock = clock or MonotonicClock()
        self.seed = seed
        self.stack_kind = stack_kind
        self.on_update = on_update or (lambda state: None)
        # Integrity verification at the end: reconciliation of source against sink, unless
        # the caller checks integrity another way (a test's fake stack has no engine).
        self.verify = verify
        self.live = LiveState(scenario.name)
        self.journal_path = run_dir / "journal.jsonl"
        self.run_id = uuid.uuid4().hex[:12]
        self.lease_s = lease_s
        # Another run holds the stack: wait for it (pytest workers, --wait) or refuse.
        self.wait_for_stack = wait_for_stack
        self.on_wait = on_wait or (lambda message: None)
        self._keeper: _LeaseKeeper | None = None
        self.context = DrillContext(
            stack, run_dir, self.clock, run_id=self.run_id, progress=self._step_progress
        )
        self._step_began: float | None = None
        # No reference platform on the stack: inject and measure, drive no workload, write
        # nothing, skip the reference platform's final reconciliation.
        self.observe_only = not stack.config.platform.reference
        self._unhealthy_since: float | None = None
        self._recovery: _RecoveryThread | None = None
        self.ledger = FaultLedger.for_stack(stack.paths.root)
        self._fault_ids = 0
        self._reverted: set[int] = set()
        # Each injected fault's exclusive key (faults.base: two faults on one key must not
        # overlap), by fault id.
        self._exclusive: dict[int, str] = {}
        self.harness_s = 0.0
        self.paused: dict[str, LedgeredHandle] = {}  # components the runbook paused, not yet resumed
        # A probe round given up on because the stack process died: its clients stay open.
        self._abandoned_round = False

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> RunReport:
        """Run the scenario. Raises RunLeaseHeld (before anything is written or changed)
        when another run holds the stack and ``wait_for_stack`` is off, and ConfigError
        (likewise) when the scenario needs what the stack does not run: the reference
        platform on an observe-only stack, a component it lacks (``engine.observe``)."""
        from datadrill.engine.observe import check_platform

        check_platform(self.scenario, self.stack, source=self.scenario.name)
        _check_compares(self.scenario)
        if self.scenario.production is not None and self.calibration is None:
            from datadrill.engine.calibration import enabled

            enabled()  # a DATADRILL_CALIBRATION that is neither on nor off: one line, exit 2
        self._acquire_lease()
        try:
            return self._run()
        finally:
            self._release_lease()

    def _acquire_lease(self) -> None:
        while True:
            try:
                self.stack.runs.acquire(
                    run_id=self.run_id,
                    scenario=self.scenario.name,
                    pid=os.getpid(),
                    run_dir=str(self.run_dir.resolve()),
                    lease_s=self.lease_s,
                )
                break
            except RunLeaseHeld as exc:
                if not self.wait_for_stack:
                    raise
                self.on_wait(str(exc))
                self.clock.sleep(LEASE_POLL_S)
        self._keeper = _LeaseKeeper(self.stack, self.run_id, self.lease_s)
        self._keeper.start()

    def _release_lease(self) -> None:
        keeper = self._keeper
        if keeper is None:
            return
        keeper.stop.set()
        keeper.join(timeout=5)
        if keeper.lost is None:
            with contextlib.suppress(DrillError):
                self.stack.runs.release(self.run_id)

    def _renew_now(self) -> None:
        try:
            self.stack.runs.renew(self.run_id)
        except RunLeaseLost as exc:
            # Hands off from here on: the reverts that run as the error unwinds are skipped.
            if self._keeper is not None and self._keeper.lost is None:
                self._keeper.lost = str(exc)
            raise

    def _hands_off(self) -> bool:
        """True once the lease is lost: the stack reverted this run's faults and may run
        another drill, so nothing of this run may touch the stack any more."""
        return self._keeper is not None and self._keeper.lost is not None

    def _run(self) -> RunReport:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        journal = Journal.create(self.journal_path, clock=self.clock)
        journal.listener = self._on_event
        self.journal = journal
        status: str = "ok"
        reasons: tuple[str, ...] = ()
        try:
            with contextlib.ExitStack() as cleanup:
                self._start(cleanup)
                try:
                    with contextlib.ExitStack() as faults:
                        # Components a runbook paused come back even if it failed midway.
                        faults.callback(self._resume_paused)
                        self._steady_state()
                        self._fault_phase(faults)
                        self._phase("revert faults", "revert")  # reverts run as `faults` closes
                    self._finish_phase("revert faults", "revert")
                    self._verify()
                except _Aborted as exc:
                    status, reasons = "aborted", (str(exc),)
        except FaultNotLanded as exc:
            status, reasons = "error", (str(exc),)
            journal.record(ev.HarnessError(message=str(exc)))
        except RunLeaseLost:
            status, reasons = "error", (self._lost_message(),)
            journal.record(ev.HarnessError(message=self._lost_message()))
        except KeyboardInterrupt:
            status, reasons = "aborted", ("interrupted (Ctrl-C); every fault was reverted",)
        except Exception as exc:  # noqa: BLE001 - any harness failure becomes the "error" verdict
            status, reasons = "error", (f"{type(exc).__name__}: {exc}",)
            if self.stack.pid is not None and not self.stack.alive():
                # Whatever failed last (a revert through the dead control API), the cause
                # a person needs to read is the death.
                reasons = (self._death_message(),)
            elif self._hands_off():
                reasons = (self._lost_message(),)
            journal.record(
                ev.HarnessError(message=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            )
        preliminary = measure(read_events(self.journal_path), journal_path=str(self.journal_path))
        verdict, why = judge(preliminary, status=status, status_reasons=reasons)
        journal.record(ev.RunFinished(verdict=verdict, reasons=why, harness_probe_s=round(self.harness_s, 3)))
        journal.close()
        self.live.phase = f"finished: {verdict.value}"
        self.on_update(self.live)
        return measure(read_events(self.journal_path), journal_path=str(self.journal_path))

    def _start(self, exits: contextlib.ExitStack) -> None:
        scenario = self.scenario
        self.journal.record(
            ev.RunStarted(
                run_id=self.run_id,
                scenario=scenario.name,
                description=scenario.description,
                seed=self.seed,
                stack=self.stack_kind,
                probe_interval_s=scenario.probe_interval_s,
                stabilisation_s=scenario.stabilisation_s,
                workload_rate=scenario.workload.rate,
                observe_only=self.observe_only,
                slos=tuple(
                    ev.SLOInfo(
                        name=s.name,
                        statement=s.statement(),
                        kind=s.sli.kind,
                        unit=s.sli.unit,
                        threshold=s.sli.threshold,
                        objective=s.objective,
                        alert=s.alert.describe(),
                    )
                    for s in scenario.slos
                ),
                schedule=tuple(
                    ev.ScheduleInfo(kind=item.kind, at_s=item.at_s, description=item.describe())
                    for item in scenario.schedule
                ),
                expectations=ev.ExpectationsInfo(
                    detect_within_s=scenario.expectations.detect_within_s,
                    recover_within_s=scenario.expectations.recover_within_s,
                    max_budget_burn=scenario.expectations.max_budget_burn,
                ),
                production=(
                    ev.ProductionInfo(
                        events_per_s=scenario.production.events_per_s,
                        table_rows=scenario.production.table_rows,
                        workers=scenario.production.workers,
                        partitions=scenario.production.partitions,
                    )
                    if scenario.production
                    else None
                ),
                policy=ev.PolicyInfo(
                    period_days=scenario.error_budget_policy.period_days,
                    postmortem_at=scenario.error_budget_policy.postmortem_at,
                    freeze_at=scenario.error_budget_policy.freeze_at,
                ),
            )
        )
        if scenario.production is not None:
            self.journal.record(self._projection_calibration())
        from datadrill.engine.preflight import check_capabilities
        from datadrill.safety import check_servers

        check_capabilities(self.scenario, self.stack, source=self.scenario.name)
        check_servers(
            self.stack.bootstrap_servers,
            allow_hosts=self.stack.config.safety.allow_hosts,
            what="the stack's Kafka bootstrap servers",
        )
        # Whatever a killed run left applied on this stack comes back out first.
        for result in cleanup(self.stack, ledger=self.ledger):
            self.journal.record(
                ev.LeftoverReverted(
                    kind=result.kind, description=result.description, note=result.note, ok=result.ok
                )
            )
        if not self.observe_only:
            workload = inject(
                workload_spec(scenario.workload.rate, scenario.workload.canary_interval_s),
                self.context,
                ledger=self.ledger,
            )
            exits.callback(self._unless_hands_off, workload.revert)
        env = ProbeEnv.from_stack(self.stack, self.clock)
        exits.callback(lambda: None if self._abandoned_round else env.close())
        self.probes: dict[str, Probe] = {}
        for s in scenario.slos:
            self.probes[s.name] = build_probe(s.sli, env)
            exits.callback(self._close_probe, self.probes[s.name])
        self.alerts = AlertEvaluator(scenario.slos)
        self.live.alerts = {s.name: "" for s in scenario.slos}
        if self.prometheus is not None:
            from datadrill.engine.prometheus_watch import PrometheusWatcher

            watcher = PrometheusWatcher(
                self.prometheus, self.journal, scenario=scenario.name, poll_s=self.prometheus_poll_s
            )
            watcher.start()
            exits.callback(watcher.stop)

    def _projection_calibration(self) -> ev.ProjectionCalibrated:
        """What the projection fits its cost models from: this machine's calibration and the
        engines this run reconciles in. Run before the workload starts, so a first
        calibration (10-20 s) competes with nothing of the run; a failing one leaves the
        projection linear and says why, it does not fail the run."""
        from datadrill.engine import calibration as cal

        config = self.stack.config
        source = "postgresql" if config.source.uri or config.source.server == "postgresql" else "sqlite"
        # The embedded stack reconciles its table in DuckDB in process; others may use Trino.
        engines = f"{source}→duckdb" if self.stack_kind == "embedded" else f"{source}→{self.stack_kind}"
        if self.calibration is None and engines not in (cal.SQLITE_DUCKDB, cal.POSTGRESQL_DUCKDB):
            return ev.ProjectionCalibrated(
                run_engines=engines, note=f"no calibration of reconciliation in {engines} (Trino is not here to time)"
            )
        # Instant when cached; the first run on a machine says why it waits.
        self.live.phase = "projection: this machine's calibration (timed once, then cached)"
        self.on_update(self.live)
        try:
            found = (self.calibration or (lambda: cal.for_run(engines=(engines,))))()
        except Exception as exc:  # noqa: BLE001 - the projection then stays linear and says why
            return ev.ProjectionCalibrated(run_engines=engines, note=f"calibration failed: {type(exc).__name__}: {exc}")
        if found is None:
            return ev.ProjectionCalibrated(run_engines=engines, note=f"calibration off ({cal.ENV}=off)")
        return ev.ProjectionCalibrated(
            key=found.key,
            created_wall=found.created_wall,
            cached=found.cached,
            took_s=round(found.took_s, 3),
            run_engines=engines,
            steps=tuple(
                ev.CalibrationPointsInfo(
                    step=s.step,
                    engines=s.engines,
                    description=s.description,
                    points=tuple((p.rows, round(p.seconds, 6)) for p in s.points),
                )
                for s in found.steps
            ),
        )

    def _unless_hands_off(self, revert: Callable[[], str]) -> None:
        if not self._hands_off():
            revert()

    def _lost_message(self) -> str:
        lost = self._keeper.lost if self._keeper is not None else ""
        return (
            f"the run lost its lease on the stack ({lost}); the stack reverted its faults "
            "(see the fault ledger). The runner was stopped or starved for longer than "
            f"--lease {self.lease_s:g} s"
        )

    def _on_event(self, event: ev.EventBase) -> None:
        if isinstance(event, ev.Sample):
            return
        # Steps and the final verification report progress (rows replayed, compared).
        if isinstance(event, ev.PhaseStarted) and event.kind in ("recovery_step", "verification"):
            self._step_began = self.clock.monotonic()
            self.live.step_progress = None
        if isinstance(event, ev.PhaseFinished) and event.kind in ("recovery_step", "verification"):
            self.live.step_progress = None
        self.live.recent = [*self.live.recent, event][-RECENT_EVENTS:]

    def _step_progress(self, done: int, total: int | None, unit: str) -> None:
        began = self._step_began if self._step_began is not None else self.clock.monotonic()
        self.live.step_progress = (done, total, unit, self.clock.monotonic() - began)
        self.on_update(self.live)

    def _close_probe(self, probe: Probe) -> None:
        if not self._abandoned_round:
            probe.close()

    # -- phases ----------------------------------------------------------------------------
    def _phase(self, name: str, kind: str) -> None:
        self.live.phase = name
        self.journal.record(ev.PhaseStarted(name=name, kind=kind))
        self.on_update(self.live)

    def _finish_phase(self, name: str, kind: str, *, ok: bool = True, **fields: Any) -> None:
        self.journal.record(ev.PhaseFinished(name=name, kind=kind, ok=ok, **fields))

    def _probe_all(self, *, alerts: bool) -> tuple[float, dict[str, Sample]]:
        if self._hands_off():
            raise RunLeaseLost(self._lost_message())
        began = self.clock.monotonic()
        try:
            t, samples = self._watched(lambda: self._probe_all_timed(alerts=alerts))
        finally:
            # The harness's own cost: probing, alert rules, journaling (see bench/headline.py).
            self.harness_s += self.clock.monotonic() - began
        self._check_stop_conditions(t, samples)
        return t, samples

    def _check_stop_conditions(self, t: float, samples: dict[str, Sample]) -> None:
        for condition in self.scenario.stop_when:
            value: float | None = None
            if isinstance(condition, SLILimit):
                sample = samples.get(condition.slo)
                value = sample.value if sample is not None else None
                crossed = condition.crossed(value)
                detail = f"{condition.slo} = {value:,g}" if value is not None else ""
            elif isinstance(condition, StackUnhealthy):
                crossed, detail = self._stack_unhealthy_for(condition.for_s)
            else:  # pragma: no cover - the model admits no other kind
                continue
            if crossed:
                self.journal.record(
                    ev.StopConditionCrossed(condition=condition.describe(), value=value, detail=detail)
                )
                raise _Aborted(
                    f"stop condition crossed at t+{t:.1f} s: {condition.describe()} ({detail}); "
                    "every fault was reverted and the runbook stopped"
                )

    def _stack_unhealthy_for(self, for_s: float) -> tuple[bool, str]:
        status = self.stack.status()
        now = self.clock.monotonic()
        if status.healthy:
            self._unhealthy_since = None
            return False, ""
        if self._unhealthy_since is None:
            self._unhealthy_since = now
        bad = ", ".join(f"{c.name}: {c.detail}" for c in status.components if not c.healthy)
        return now - self._unhealthy_since >= for_s, f"unhealthy: {bad or 'see stack status'}"

    def _watched(self, work: Callable[[], _T]) -> _T:
        """Run one probe round while watching the stack process. A probe of a dead stack
        can block for its every timeout (Kafka's, per partition); the run must end within
        seconds of the death, so the round runs on a helper thread and is abandoned."""
        if self.stack.pid is None:
            return work()
        self._check_alive()
        outcome: list[_T] = []
        failure: list[BaseException] = []
        done = threading.Event()

        def round_() -> None:
            try:
                outcome.append(work())
            except BaseException as exc:  # noqa: BLE001 - re-raised on the runner's thread
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=round_, name="probe-round", daemon=True).start()
        while not done.wait(DEATH_CHECK_S):
            # The abandoned round may still be inside a probe: its clients must not be
            # closed under it.
            self._check_alive(abandoning=True)
        if failure:
            raise failure[0]
        return outcome[0]

    def _check_alive(self, *, abandoning: bool = False) -> None:
        if self.stack.alive():
            return
        self._abandoned_round = abandoning
        raise StackProcessDied(self._death_message())

    def _death_message(self) -> str:
        return (
            f"the stack process (pid {self.stack.pid}) died during the run; its log is "
            f"{self.stack.paths.log('stack')}. Every fault that could be reverted was; run "
            "'datadrill stack up' (it reverts the rest), then run the scenario again"
        )

    def _probe_all_timed(self, *, alerts: bool) -> tuple[float, dict[str, Sample]]:
        # The round is dated when its probes are issued: everything this loop changes (a
        # fault applied or reverted) happens before a round starts, so a round that finds
        # the platform healthy says it was healthy from that moment. Dating it when the
        # last answer came back would add the probes' own latency to time to recover.
        started = self.journal.now()
        samples = {}
        for name, probe in self.probes.items():
            sample = probe.measure()
            self.journal.record(ev.Sample(slo=name, value=sample.value, good=sample.good, error=sample.error))
            samples[name] = sample
            if not alerts:
                continue
            # Alert rules see the sample at its round's issue time (see _probe_all_timed's
            # dating): the evaluator's durations, and so detection, exclude probe latency.
            if self.alerts.observe(name, t=started, good=sample.good):
                rule = next(s.alert.describe() for s in self.scenario.slos if s.name == name)
                alert = self.journal.record(ev.AlertFired(slo=name, rule=rule, observed_t=started))
                if self.live.fault_start_s is None:
                    # Nothing of this run's doing can have fired it: the platform broke on
                    # its own (or another hand is at work). Not a detection, no runbook.
                    raise _Aborted(
                        f"steady state lost at t+{alert.t:.1f} s before any fault: {name} "
                        f"({sample.error or sample.value}); no fault was injected"
                    )
                if self.live.detected_s is None:
                    self.live.detected_s = alert.at
            fired = self.alerts.fired(name)
            self.live.alerts[name] = "FIRING" if self.alerts.firing(name) else ("fired" if fired else "")
        self.live.samples = samples
        self.live.elapsed_s = self.journal.now()
        self.on_update(self.live)
        return started, samples

    def _sleep_until(self, deadline: float) -> None:
        remaining = deadline - self.clock.monotonic()
        if remaining > 0:
            self.clock.sleep(remaining)

    def _steady_state(self) -> None:
        spec = self.scenario.steady_state
        self._phase("steady state", "steady_state")
        interval = self.scenario.probe_interval_s
        start = self.clock.monotonic()
        good_since: float | None = None
        samples: dict[str, Sample] = {}
        while True:
            tick = self.clock.monotonic()
            t, samples = self._probe_all(alerts=False)
            if all(s.good for s in samples.values()):
                good_since = t if good_since is None else good_since
                if t - good_since >= spec.warmup_s:
                    self._finish_phase(
                        "steady state", "steady_state", detail=f"every SLI good for {spec.warmup_s:g} s"
                    )
                    return
            else:
                good_since = None
            if tick - start >= spec.timeout_s:
                bad = "; ".join(f"{name}: {s.error or s.value}" for name, s in samples.items() if not s.good)
                self._finish_phase("steady state", "steady_state", ok=False, detail=f"not reached: {bad}")
                raise _Aborted(f"steady state not reached within {spec.timeout_s:g} s ({bad})")
            self._sleep_until(tick + interval)

    def _inject(self, item: Any, faults: contextlib.ExitStack) -> tuple[int, FaultHandle] | None:
        """Fire one schedule item; for a fault, returns its id and handle."""
        if isinstance(item, TakeCatalogBackup):
            from datadrill.recovery.backup import take_backup

            backup = take_backup(self.context, item.name, item.table)
            self.journal.record(
                ev.BackupTaken(name=item.name, snapshot_id=backup.snapshot_id, rows=backup.rows)
            )
            return None
        if isinstance(item, TakeReserveCopy):
            from datadrill.recovery.reserves import take_reserve

            reserve = take_reserve(self.context, item.name, item.table)
            self.journal.record(
                ev.ReserveTaken(
                    name=reserve.name,
                    table=reserve.table,
                    snapshot_id=reserve.snapshot_id,
                    rows=reserve.rows,
                    key_min=reserve.key_min,
                    key_max=reserve.key_max,
                    files=len(reserve.files),
                    path=reserve.relative_path,
                )
            )
            return None
        # Renewed right before: a runner that was stopped longer than its lease (SIGSTOP, a
        # suspended laptop) must learn it lost the stack before it injects anything more.
        self._renew_now()
        self._fault_ids += 1
        fault_id = self._fault_ids
        try:
            handle = inject(item, self.context, ledger=self.ledger, journal_id=fault_id)
        except FaultNotLanded as exc:
            # inject reverted it already: the run stops here, measuring nothing false.
            raise FaultNotLanded(f"fault '{item.describe()}' did not take effect: {exc}") from exc
        # Registered before anything else can fail: the revert always runs.
        faults.callback(self._revert, fault_id, item.kind, handle)
        plugin = plugins().get(item.kind)
        key = plugin.exclusive_key(item) if plugin is not None else None
        if key is not None:
            self._exclusive[fault_id] = key
        event = self.journal.record(
            ev.FaultInjected(
                fault_id=fault_id, kind=item.kind, description=handle.description, landed=handle.landed
            )
        )
        self.live.active_faults.append(handle.description)
        if self.live.fault_start_s is None:
            self.live.fault_start_s = event.t
        return fault_id, handle

    def _end_overlapping(self, item: Any, timed: list[tuple[float, int, str, FaultHandle]]) -> None:
        """Revert a timed fault still holding ``item``'s exclusive key. The schedule keeps
        such faults apart (Scenario validation), but a duration counts from when a fault
        took effect, so one that landed late can still hold the key when the next is due:
        it ends now rather than overlap (a table hidden while its metadata is deleted)."""
        plugin = plugins().get(getattr(item, "kind", ""))
        key = plugin.exclusive_key(item) if plugin is not None else None
        if key is None:
            return
        for entry in [e for e in timed if self._exclusive.get(e[1]) == key]:
            timed.remove(entry)
            self._revert(entry[1], entry[2], entry[3])

    def _revert(self, fault_id: int, kind: str, handle: FaultHandle) -> None:
        if fault_id in self._reverted:
            return
        self._reverted.add(fault_id)
        if self._hands_off():
            return  # the stack reverted it (and journaled it) when the lease expired
        try:
            note = handle.revert()
        except DrillError as exc:
            # One revert that cannot be done (the stack process died) must not keep the
            # others from running; the ledger keeps it for 'datadrill stack up' / cleanup.
            note = f"NOT reverted: {exc}"
        self.journal.record(
            ev.FaultReverted(fault_id=fault_id, kind=kind, description=handle.description, note=note)
        )
        with contextlib.suppress(ValueError):
            self.live.active_faults.remove(handle.description)

    def _resume_paused(self) -> None:
        if self._hands_off():
            self.paused.clear()
            return
        for component in sorted(self.paused):
            # Through the pause's ledgered handle, so the ledger records it as reverted.
            try:
                note = self.paused[component].revert()
            except DrillError as exc:
                note = f"NOT resumed: {exc}"
            self.journal.record(
                ev.ComponentResumed(component=component, pid=None, note=f"left paused by the runbook; {note}")
            )
        self.paused.clear()

    def _fault_phase(self, faults: contextlib.ExitStack) -> None:
        scenario = self.scenario
        phase = "fault injection and recovery"
        self._phase(phase, "fault")
        t0 = self.clock.monotonic()
        pending = sorted(scenario.schedule, key=lambda item: item.at_s)
        timed: list[tuple[float, int, str, FaultHandle]] = []  # (revert at, id, kind, handle)
        runbook = scenario.recovery if isinstance(scenario.recovery, Runbook) else None
        deadline = t0 + scenario.max_duration_s
        try:
            self._fault_loop(faults, t0, pending, timed, runbook, deadline)
        finally:
            self._stop_runbook()

    def _stop_runbook(self) -> None:
        """No further runbook step starts once the fault phase ends (recovered, given up, a
        stop condition, an error); a step in flight is waited for, briefly, so it does not
        work on the stack while the faults are reverted."""
        recovery = self._recovery
        if recovery is None or recovery.done:
            return
        recovery.abandon()
        recovery.join(timeout=RUNBOOK_STOP_S)

    def _fault_loop(
        self,
        faults: contextlib.ExitStack,
        t0: float,
        pending: list[Any],
        timed: list[tuple[float, int, str, FaultHandle]],
        runbook: Runbook | None,
        deadline: float,
    ) -> None:
        scenario = self.scenario
        phase = "fault injection and recovery"
        interval = scenario.probe_interval_s
        recovery: _RecoveryThread | None = None
        good_since: float | None = None
        while True:
            tick = self.clock.monotonic()
            while pending and tick - t0 >= pending[0].at_s:
                item = pending.pop(0)
                self._end_overlapping(item, timed)
                injected = self._inject(item, faults)
                if injected is not None:
                    good_since = None  # a new fault: earlier good samples say nothing
                    duration = getattr(item, "duration_s", None)
                    if duration is not None:
                        # Counted from when the fault took effect, not from when injecting began:
                        # applying can take a noticeable share of a second on a loaded machine.
                        effective = self.clock.monotonic()
                        timed.append((effective + duration, injected[0], item.kind, injected[1]))
            for entry in [e for e in timed if tick >= e[0]]:
                timed.remove(entry)
                self._revert(entry[1], entry[2], entry[3])
            t, samples = self._probe_all(alerts=True)
            if (
                runbook
                and recovery is None
                and self.live.detected_s is not None
                and self.journal.now() >= self.live.detected_s + runbook.response_delay_s
            ):
                recovery = _RecoveryThread(self, runbook)
                self._recovery = recovery
                recovery.start()
            if recovery is not None:
                self.live.recovery_step = recovery.current
                if recovery.error is not None:
                    self._finish_phase(phase, "fault", ok=False, detail=f"recovery failed: {recovery.error}")
                    return
            recovery_done = isinstance(scenario.recovery, Automatic) or (
                recovery is not None and recovery.done
            )
            if all(s.good for s in samples.values()):
                good_since = t if good_since is None else good_since
            else:
                good_since = None
            if (
                not pending
                and not timed
                and recovery_done
                and good_since is not None
                and t - good_since >= scenario.stabilisation_s
            ):
                self.journal.record(ev.Recovered(stable_since=good_since, stable_for_s=t - good_since))
                self._finish_phase(phase, "fault", detail="recovered")
                return
            if tick >= deadline:
                self._finish_phase(
                    phase,
                    "fault",
                    ok=False,
                    detail=f"not recovered within max_duration_s = {scenario.max_duration_s:g} s",
                )
                return
            self._sleep_until(tick + interval)

    def _verify(self) -> None:
        if not self.scenario.verify_integrity:
            return
        target = self.scenario.target
        if self.verify is None and self.observe_only and target.source_query == DEFAULT_SOURCE_QUERY:
            # The reference platform's source orders against its table: there is none here.
            # The report says it was skipped; a scenario Target with a source query of the
            # team's own is verified.
            return
        self._phase("integrity verification", "verification")
        if self.verify is None:
            from datadrill.recovery.reconcile_step import live_reconcile

            result = live_reconcile(self.context, target=target)
        else:
            result = self.verify(self.context)
        self.journal.record(
            ev.IntegrityVerified(
                compared_rows=result.compared_rows,
                duplicates=len(result.duplicates),
                omissions=len(result.omissions),
                discrepancies=len(result.discrepancies),
                unexpected=len(result.unexpected),
                verified=result.exact,
                detail=result.describe(),
            )
        )
        self._finish_phase(
            "integrity verification",
            "verification",
            ok=result.exact,
            rows=result.compared_rows,
            rate_per_s=result.rows_per_s,
            detail=result.describe(),
        )


def _check_compares(scenario: Scenario) -> None:
    """A Compare's measured paths need steps with a measurement mode: the model knows the
    built-ins', a plugin's is known only to its implementation. Refused before the run
    starts (one line), not halfway through the recovery."""
    if not isinstance(scenario.recovery, Runbook):
        return
    from datadrill.errors import ConfigError
    from datadrill.faults.registry import PluginError
    from datadrill.recovery.compare import check_compare
    from datadrill.recovery.registry import implementations

    for index, step in enumerate(scenario.recovery.steps):
        if isinstance(step, Compare):
            try:
                check_compare(step, implementations())
            except PluginError as exc:
                raise ConfigError(scenario.name, f"recovery.steps[{index}]", step.describe(), str(exc)) from None


class _RecoveryThread(threading.Thread):
    """Runs the runbook's steps in order while the main loop keeps probing."""

    def __init__(self, runner: Runner, runbook: Runbook) -> None:
        super().__init__(name="recovery", daemon=True)
        self.runner = runner
        self.runbook = runbook
        self.current: str | None = None
        self.done = False
        self.error: str | None = None
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        self._abandoned.set()

    def _run(self, step: Any) -> Any:
        """Pauses go through the fault ledger, so a killed run's paused sink comes back."""
        from datadrill.recovery import StepResult, run_step

        runner = self.runner
        if isinstance(step, PauseComponent):
            handle = inject(pause_spec(step.component), runner.context, ledger=runner.ledger)
            runner.paused[step.component] = handle
            return StepResult(f"{step.component} stopped")
        if isinstance(step, ResumeComponent) and step.component in runner.paused:
            note = runner.paused.pop(step.component).revert()
            return StepResult(note)
        return run_step(step, runner.context)

    def _compare(self, step: Compare) -> Any:
        """Each step of each path is a phase of its own, inside the Compare's: the measured
        paths' first (they must see the loss untouched), then the applied path's. A
        measurement that fails is a failed phase, and the recovery goes on: only the applied
        path's failure fails it."""
        from datadrill.recovery import StepResult
        from datadrill.recovery.compare import (
            MEASURED_KEY,
            PATH_KEY,
            measure_step,
            path_steps,
            phase_name,
            summary_extra,
        )
        from datadrill.recovery.registry import implementations

        known = implementations()
        journal = self.runner.journal
        lines: list[str] = []
        for path, inner, measured in path_steps(step):
            if self._abandoned.is_set():
                raise RuntimeError("the fault phase ended before the Compare finished")
            name = phase_name(path, inner, measured)
            self.current = name
            tags = {PATH_KEY: path.name, MEASURED_KEY: measured}
            journal.record(ev.PhaseStarted(name=name, kind="recovery_step", step=inner.kind))
            try:
                result = measure_step(inner, self.runner.context, known) if measured else self._run(inner)
            except Exception as exc:
                journal.record(
                    ev.PhaseFinished(
                        name=name,
                        kind="recovery_step",
                        step=inner.kind,
                        ok=False,
                        detail=f"{type(exc).__name__}: {exc}",
                        extra=tags,
                    )
                )
                if not measured:
                    raise
                lines.append(f"{path.name}: measurement failed ({type(exc).__name__})")
                continue
            journal.record(
                ev.PhaseFinished(
                    name=name,
                    kind="recovery_step",
                    step=inner.kind,
                    ok=result.ok,
                    rows=result.rows,
                    rate_per_s=result.rate_per_s,
                    detail=result.detail,
                    extra={**(result.extra or {}), **tags},
                )
            )
            rows = f"{result.rows:,} rows" if result.rows is not None else "done"
            lines.append(f"{path.name}{' (measured)' if measured else ''}: {inner.kind} {rows}")
        self.current = step.describe()
        return StepResult("; ".join(lines), extra=summary_extra(step))

    def run(self) -> None:

        journal = self.runner.journal
        for step in self.runbook.steps:
            if self._abandoned.is_set():
                return
            name = step.describe()
            self.current = name
            journal.record(ev.PhaseStarted(name=name, kind="recovery_step", step=step.kind))
            try:
                result = self._compare(step) if isinstance(step, Compare) else self._run(step)
            except Exception as exc:  # noqa: BLE001 - reported as the run's failure below
                journal.record(
                    ev.PhaseFinished(
                        name=name,
                        kind="recovery_step",
                        step=step.kind,
                        ok=False,
                        detail=f"{type(exc).__name__}: {exc}",
                    )
                )
                self.error = f"{name}: {type(exc).__name__}: {exc}"
                return
            journal.record(
                ev.PhaseFinished(
                    name=name,
                    kind="recovery_step",
                    step=step.kind,
                    ok=result.ok,
                    rows=result.rows,
                    rate_per_s=result.rate_per_s,
                    detail=result.detail,
                    extra=result.extra,
                )
            )
        self.current = None
        self.done = True
