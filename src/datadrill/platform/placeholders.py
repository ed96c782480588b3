"""Placeholders in declared components' settings: ``{kafka.bootstrap_servers}`` and the
other endpoints a stack has, expanded into a component's command, working directory and
environment before the stack starts it (issue "Drill your own pipeline").

Every name is known up front, so a typo is a config error naming the file, the field, the
placeholder and every name there is — not a component that starts with a literal
``{kafka.bootstrap_server}`` in its environment and fails in its own log. ``{{`` and ``}}``
stand for literal braces, as in Python's format strings.

Example::

    expand("{kafka.bootstrap_servers}", {"kafka.bootstrap_servers": "127.0.0.1:9092"},
           source="datadrill.toml", field="components.enricher.env.BOOTSTRAP")
    # '127.0.0.1:9092'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from datadrill.errors import ConfigError

# Every endpoint a stack can name; a backend without one (no Schema Registry on the
# embedded stack) expands it to an error naming what is missing, not to an empty string.
NAMES = (
    "kafka.bootstrap_servers",
    "catalog.uri",
    # pyiceberg's SQL catalog keeps each table under a catalog name: a component must open
    # the catalog under the stack's name to see (and write) the tables the drill checks.
    "catalog.name",
    "catalog.warehouse",
    "query.url",
    "connect.url",
    "schema_registry.url",
    "metrics.url",
    "state_dir",
    # The interpreter datadrill runs on: a component written in Python can share its
    # environment without relying on which ``python`` the PATH finds first.
    "python",
)

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def expand(template: str, values: Mapping[str, str | None], *, source: str, field: str) -> str:
    """``template`` with each ``{name}`` replaced by ``values[name]``. ConfigError for a
    name that is not a placeholder, for one this stack has no value for, and for a lone
    brace."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        name = match.group(1)
        if name is None:
            raise ConfigError(source, field, template, "text whose braces pair up ({{ and }} for literal ones)")
        name = name.strip()
        if name not in NAMES:
            raise ConfigError(
                source, field, f"{{{name}}}", f"one of the placeholders {', '.join('{' + n + '}' for n in NAMES)}"
            )
        value = values.get(name)
        if not value:
            have = ", ".join("{" + n + "}" for n in NAMES if values.get(n)) or "none"
            raise ConfigError(source, field, f"{{{name}}}", f"a placeholder this stack has a value for: {have}")
        return value

    return _TOKEN.sub(replace, template)


def check(template: str, *, source: str, field: str) -> None:
    """ConfigError if ``template`` names a placeholder that does not exist or has a lone
    brace: what :func:`expand` would refuse on any stack, found when the config loads."""
    expand(template, dict.fromkeys(NAMES, "-"), source=source, field=field)


def expand_all(
    items: Mapping[str, str], values: Mapping[str, str | None], *, source: str, field: str
) -> dict[str, str]:
    """Each value of ``items`` expanded; the field names the key (``env.BOOTSTRAP``)."""
    return {key: expand(text, values, source=source, field=f"{field}.{key}") for key, text in items.items()}
