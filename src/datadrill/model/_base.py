"""Shared configuration of the model's dataclasses: frozen, no unknown fields.

Every model class is a ``pydantic.dataclasses.dataclass(frozen=True, config=MODEL_CONFIG)``:
plain frozen dataclasses to the code that uses them, validated when built. A validation
error carries the class name and the field; the scenario loader turns it into one message
naming the file, the field, the value and what is allowed.
"""

from __future__ import annotations

from pydantic import ConfigDict

MODEL_CONFIG = ConfigDict(extra="forbid", validate_default=True)
