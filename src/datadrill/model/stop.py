"""Stop conditions: hard limits that abort a run at once, as AWS FIS stop conditions or
Gremlin halts do. Crossing one reverts every fault, stops the runbook and ends the run
``aborted`` with the condition and the value that crossed it.

Example::

    Scenario(
        ...,
        stop_when=(
            SLILimit(slo="consumer lag", above=1_000_000),   # messages
            SLILimit(slo="no bad rows", above=0),            # any bad row in DataIntegrity
            StackUnhealthy(),
        ),
    )
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator
from pydantic.dataclasses import dataclass

from datadrill.model._base import MODEL_CONFIG


@dataclass(frozen=True, config=MODEL_CONFIG)
class SLILimit:
    """The named SLO's SLI past a hard limit (the SLI's own unit: messages, seconds, rows).
    Set ``above`` or ``below``; the value is read from the run's probe rounds."""

    slo: Annotated[str, Field(min_length=1)]
    above: Annotated[float | None, Strict()] = None
    below: Annotated[float | None, Strict()] = None
    kind: Literal["sli_limit"] = "sli_limit"

    @model_validator(mode="after")
    def _one_side(self) -> SLILimit:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above= or below=")
        return self

    def crossed(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.above is not None:
            return value > self.above
        return self.below is not None and value < self.below

    def describe(self) -> str:
        side = f"above {self.above:,g}" if self.above is not None else f"below {self.below:,g}"
        return f"{self.slo} {side}"


@dataclass(frozen=True, config=MODEL_CONFIG)
class StackUnhealthy:
    """The stack's health check fails (a component down, Kafka unreachable) for
    ``for_s`` seconds in a row."""

    for_s: Annotated[float, Strict(), Field(ge=0)] = 0.0
    kind: Literal["stack_unhealthy"] = "stack_unhealthy"

    def describe(self) -> str:
        return "the stack unhealthy" + (f" for {self.for_s:g} s" if self.for_s else "")


StopCondition = Annotated[SLILimit | StackUnhealthy, Field(discriminator="kind")]
