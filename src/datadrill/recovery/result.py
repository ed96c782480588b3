"""What a runbook step reports: a sentence for the report, and what it moved."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepResult:
    """``rows`` and ``rate_per_s`` when the step moved data; ``extra`` goes to the journal.

    Example::

        StepResult("dwh.orders registered from 00042-….metadata.json")
    """

    detail: str
    rows: int | None = None
    rate_per_s: float | None = None
    ok: bool = True
    extra: dict[str, object] | None = None
