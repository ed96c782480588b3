"""Placeholders in declared components' settings: every endpoint name expands, braces
escape, and a typo, a missing endpoint or a lone brace is one ConfigError naming the file,
the field and what is allowed."""

from __future__ import annotations

import pytest

from datadrill.errors import ConfigError
from datadrill.platform.placeholders import NAMES, expand, expand_all

VALUES = {
    "kafka.bootstrap_servers": "127.0.0.1:9092,127.0.0.1:9093",
    "catalog.uri": "sqlite:////tmp/x/catalog.db",
    "catalog.name": "datadrill",
    "python": "/usr/bin/python3",
    "catalog.warehouse": "file:///tmp/x/warehouse",
    "query.url": "http://127.0.0.1:8080",
    "connect.url": "http://127.0.0.1:8083",
    "schema_registry.url": None,
    "metrics.url": "http://127.0.0.1:9100/metrics",
    "state_dir": "/tmp/x/.datadrill",
}


def test_every_endpoint_expands() -> None:
    for name in NAMES:
        if VALUES[name]:
            assert expand(f"<{{{name}}}>", VALUES, source="f", field="x") == f"<{VALUES[name]}>"
    assert expand("--bootstrap={kafka.bootstrap_servers} --dir { state_dir }", VALUES, source="f", field="x") == (
        "--bootstrap=127.0.0.1:9092,127.0.0.1:9093 --dir /tmp/x/.datadrill"
    )
    assert expand("no placeholder", VALUES, source="f", field="x") == "no placeholder"


def test_double_braces_are_literal() -> None:
    assert expand('{{"json": "{query.url}"}}', VALUES, source="f", field="x") == '{"json": "http://127.0.0.1:8080"}'


def test_a_typo_names_the_field_and_every_placeholder() -> None:
    with pytest.raises(ConfigError) as raised:
        expand_all({"BOOTSTRAP": "{kafka.bootstrap_server}"}, VALUES, source="datadrill.toml", field="components.e.env")
    message = str(raised.value)
    assert "datadrill.toml" in message and "components.e.env.BOOTSTRAP" in message
    assert "{kafka.bootstrap_server}" in message and "{kafka.bootstrap_servers}" in message and "{state_dir}" in message


def test_an_endpoint_this_stack_lacks_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(ConfigError, match=r"\{schema_registry.url\}.*a placeholder this stack has a value for"):
        expand("{schema_registry.url}", VALUES, source="f", field="x")


@pytest.mark.parametrize("bad", ["{query.url", "query.url}", "{", "a}b"])
def test_a_lone_brace_is_an_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="braces pair up"):
        expand(bad, VALUES, source="f", field="x")
