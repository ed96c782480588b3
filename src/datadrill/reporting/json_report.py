"""A run as JSON: the whole ``RunReport``, for tools and for diffing runs.

Field names are the dataclasses' own, in their declared order, under a top-level
``schema_version`` that changes when a field is renamed or removed. Enums are written as
their values (``"SLO violated"``, ``"SEV-2"``), tuples as lists, and a non-finite float
(a burn rate over an empty observation) as ``null``, since JSON has no NaN.

Example::

    data = json.loads(render_json(report))
    data["schema_version"], data["verdict"], data["severity"]
    # (1, 'SLO violated', 'SEV-2')
"""

from __future__ import annotations

import dataclasses
import json
import math
from enum import Enum
from typing import Any

from datadrill.model.report import RunReport

SCHEMA_VERSION = 1


def render_json(report: RunReport) -> str:
    """``report`` as indented JSON with ``schema_version`` first, ending in a newline.

    Example::

        data = json.loads(render_json(report))
        data["slos"][0]["series"][0]  # {"t_s": 0.0, "value": 1.0, "good": true}
    """
    document = {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(report, dict_factory=_plain_dict)}
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _plain_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {key: _plain(value) for key, value in items}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
