"""The exceptions datadrill raises, all under one root.

    DrillError                      anything datadrill raises on purpose
    ├── ConfigError                 bad user input: a config file, a flag, a DSN (exit code 2)
    ├── StackError                  the stack cannot do what was asked
    │   ├── StackAlreadyRunning     a second ``stack up`` in the same state directory
    │   ├── StackNotRunning         ``status``/``down``/a client found no live stack
    │   │   └── StackProcessDied    the stack process died while a run or a client used it
    │   ├── StackStartFailed        the stack process died or stalled while starting
    │   └── KafkaMockUnavailable    no librdkafka exporting the ``rd_kafka_mock_*`` API
    ├── ControlError                the stack's control interface refused a request
    │   ├── RunLeaseHeld            another run holds the stack (one drill at a time)
    │   └── RunLeaseLost            this run's lease expired; the stack reverted its faults
    ├── FaultNotLanded              a fault was applied but its effect did not show in time
    ├── QueryFailed                 the query engine could not answer (e.g. table missing)
    ├── RepairFailed                repair could not commit (integrity.repair; retries exhausted)
    ├── PluginError                 a fault, probe or step plugin does not load or follow its protocol
    └── WaitTimeout                 a condition did not hold in time (says what was seen)

Example::

    try:
        stack = StackClient.attach(state_dir)
    except StackNotRunning as exc:
        print(exc)   # names the state directory and how to start a stack
"""

from __future__ import annotations


class DrillError(Exception):
    """Root of every error datadrill raises on purpose."""


class ConfigError(DrillError):
    """User input is wrong. The message names the source, the field, the value and what is
    allowed; the CLI prints it on one line and exits 2."""

    def __init__(self, source: str, field: str, value: object, allowed: str) -> None:
        self.source = source
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{source}: {field} = {value!r} is invalid: {allowed}")


class StackError(DrillError):
    """The stack cannot do what was asked."""


class StackAlreadyRunning(StackError):
    """A stack already runs in this state directory."""


class StackNotRunning(StackError):
    """No live stack in this state directory."""


class StackProcessDied(StackNotRunning):
    """The stack process is gone (killed, crashed) although its state file says it runs."""


class StackStartFailed(StackError):
    """The stack process died or did not become ready while starting."""


class KafkaMockUnavailable(StackError):
    """No librdkafka with the mock cluster API could be loaded."""


class ControlError(DrillError):
    """The stack's control interface refused or failed a request."""

    # The control API's HTTP status for it (the client maps it back to the class).
    http_status = 400


class RunLeaseHeld(ControlError):
    """Another run holds the stack's run lease. ``holder`` describes it (run id, scenario,
    pid, since when); the CLI exits 2 with the message."""

    http_status = 409

    def __init__(self, message: str, *, holder: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}

    @property
    def payload(self) -> dict[str, object]:
        """What the control API sends beside the message (the client rebuilds the error)."""
        return {"holder": self.holder}


class RunLeaseLost(ControlError):
    """This run's lease expired (it stopped renewing it): the stack reverted its faults and
    may run another drill already, so the run must not touch the stack again."""

    http_status = 410


class FaultNotLanded(DrillError):
    """A fault was applied but its effect did not show within its bound: the run's verdict
    is ``error`` ("fault X did not take effect: ..."), never a pass with nothing measured."""


class QueryFailed(DrillError):
    """The query engine could not answer a query. ``error_name`` is the Trino error it is
    (``TABLE_NOT_FOUND``, ``SYNTAX_ERROR``, ``ICEBERG_MISSING_METADATA``...), which the
    query service answers Trino clients with; ``location`` is (line, column) in the SQL."""

    def __init__(
        self, message: str, *, error_name: str = "GENERIC_INTERNAL_ERROR", location: tuple[int, int] | None = None
    ) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.location = location


class WaitTimeout(DrillError):
    """A condition did not become true within its timeout."""
