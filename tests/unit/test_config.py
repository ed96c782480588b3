"""Unit tests for datadrill.config: defaults, validation messages, overrides, file loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datadrill.config import (
    CatalogConfig,
    KafkaConfig,
    StackConfig,
    WorkloadConfig,
    load_config,
    parse_config,
)
from datadrill.errors import ConfigError, DrillError

SECTIONS = (
    "catalog",
    "components",
    "connect",
    "contract",
    "external",
    "kafka",
    "platform",
    "prometheus",
    "relay",
    "safety",
    "sink",
    "source",
    "supervisor",
    "workload",
)
KAFKA_FIELDS = (
    "brokers",
    "election_delay_s",
    "group_initial_rebalance_delay_ms",
    "partitions",
    "replication_factor",
    "topic",
)


def _write(tmp_path: Path, text: str, name: str = "drill.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _config_error(data: dict[str, Any], **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source=kwargs.pop("source", "test.toml"), **kwargs)
    return info.value


# --- defaults -----------------------------------------------------------------------------


def test_empty_data_gives_documented_defaults() -> None:
    config = parse_config({}, source="test")
    assert isinstance(config, StackConfig)
    assert config.kafka.brokers == 3
    assert config.kafka.topic == "orders.v1"
    assert config.kafka.partitions == 6
    assert config.kafka.replication_factor == 3
    assert config.workload.rate == 200.0
    assert config.contract.format == "avro"
    assert config.catalog.uri == ""
    assert config.catalog.table == "dwh.orders"
    assert config.catalog.namespace == "dwh"


def test_partial_section_keeps_other_defaults() -> None:
    config = parse_config({"kafka": {"partitions": 12}}, source="test")
    assert config.kafka.partitions == 12
    assert config.kafka.brokers == 3
    assert config.kafka.topic == "orders.v1"
    assert config.workload.rate == 200.0


def test_config_is_frozen() -> None:
    config = parse_config({}, source="test")
    with pytest.raises(pydantic.ValidationError):
        config.kafka.brokers = 5  # type: ignore[misc]


# --- unknown names ------------------------------------------------------------------------


def test_unknown_top_level_section_names_file_field_value_and_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, "[kafak]\nbrokers = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    message = str(err)
    assert err.source == str(path)
    assert err.field == "kafak"
    assert err.value == {"brokers": 3}
    assert message.startswith(f"{path}: kafak = ")
    assert "{'brokers': 3}" in message
    assert "unknown field" in message
    assert "allowed: " + ", ".join(SECTIONS) in message


def test_unknown_field_in_section_names_dotted_field_and_section_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "[kafka]\nbrokerz = 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    message = str(err)
    assert err.source == str(path)
    assert err.field == "kafka.brokerz"
    assert err.value == 4
    assert f"{path}: kafka.brokerz = 4 is invalid" in message
    assert "allowed: " + ", ".join(KAFKA_FIELDS) in message
    # The allowed list is for the section, not the top level.
    assert "workload" not in message


def test_unknown_field_in_other_section_lists_that_sections_fields() -> None:
    err = _config_error({"workload": {"rat": 5}})
    assert err.field == "workload.rat"
    assert err.allowed.endswith("allowed: " + ", ".join(sorted(WorkloadConfig.model_fields)))
    assert "canary_interval_s" in err.allowed
    assert "brokers" not in err.allowed


# --- wrong types and ranges ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "value"),
    [
        ({"kafka": {"brokers": 0}}, "kafka.brokers", 0),
        ({"kafka": {"brokers": 10}}, "kafka.brokers", 10),
        ({"kafka": {"brokers": "many"}}, "kafka.brokers", "many"),
        ({"kafka": {"topic": ""}}, "kafka.topic", ""),
        ({"kafka": {"election_delay_s": -0.5}}, "kafka.election_delay_s", -0.5),
        ({"workload": {"rate": -1}}, "workload.rate", -1),
        ({"workload": {"canary_interval_s": 0}}, "workload.canary_interval_s", 0),
        ({"contract": {"format": "xml"}}, "contract.format", "xml"),
        ({"catalog": {"table": "orders"}}, "catalog.table", "orders"),
        ({"sink": {"group_id": ""}}, "sink.group_id", ""),
    ],
)
def test_invalid_value_names_field_and_value(data: dict[str, Any], field: str, value: object) -> None:
    err = _config_error(data, source="my.toml")
    assert err.source == "my.toml"
    assert err.field == field
    assert err.value == value
    assert str(err).startswith(f"my.toml: {field} = {value!r} is invalid: ")
    assert err.allowed  # says what is allowed, never empty


def test_bad_format_message_lists_the_choices() -> None:
    err = _config_error({"contract": {"format": "xml"}})
    assert "'avro'" in err.allowed
    assert "'json'" in err.allowed


def test_section_that_is_not_a_table_is_rejected() -> None:
    err = _config_error({"kafka": 5})
    assert err.field == "kafka"
    assert err.value == 5


def test_replication_factor_above_brokers_is_rejected() -> None:
    err = _config_error({"kafka": {"brokers": 2, "replication_factor": 3}})
    assert err.field == "kafka"
    assert "replication_factor 3 exceeds brokers 2" in str(err)


def test_replication_factor_equal_to_brokers_is_accepted() -> None:
    config = parse_config({"kafka": {"brokers": 1, "replication_factor": 1}}, source="t")
    assert (config.kafka.brokers, config.kafka.replication_factor) == (1, 1)


def test_default_replication_factor_does_not_fit_a_single_broker() -> None:
    # brokers lowered below the default replication_factor 3 without lowering it.
    err = _config_error({"kafka": {"brokers": 1}})
    assert "replication_factor 3 exceeds brokers 1" in str(err)


# --- catalog URI --------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["mysql://x", "postgres://u@h/db", "sqlite://relative.db", "http://x"])
def test_catalog_uri_with_unknown_scheme_is_rejected(uri: str) -> None:
    err = _config_error({"catalog": {"uri": uri}})
    assert err.field == "catalog.uri"
    assert err.value == uri
    assert "postgresql://" in err.allowed
    assert "sqlite:///" in err.allowed


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "postgresql://u:p@127.0.0.1:5432/db",
        "postgresql+psycopg2://u:p@127.0.0.1:5432/db",
        "sqlite:////tmp/catalog.db",
    ],
)
def test_catalog_uri_with_known_scheme_is_accepted(uri: str) -> None:
    assert parse_config({"catalog": {"uri": uri}}, source="t").catalog.uri == uri


def test_catalog_namespace_is_the_part_before_the_dot() -> None:
    assert CatalogConfig(table="lake.events").namespace == "lake"


# --- overrides ----------------------------------------------------------------------------


def test_dotted_override_wins_over_file_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "[workload]\nrate = 50\n\n[kafka]\nbrokers = 5\n")
    config = load_config(path, overrides={"workload.rate": 2000})
    assert config.workload.rate == 2000.0
    assert config.kafka.brokers == 5  # untouched file value survives


def test_override_can_add_a_section_missing_from_the_file() -> None:
    config = parse_config({}, source="t", overrides={"kafka.brokers": 5, "kafka.partitions": 3})
    assert (config.kafka.brokers, config.kafka.partitions) == (5, 3)


def test_override_does_not_mutate_the_input_data() -> None:
    data = {"workload": {"rate": 50}}
    parse_config(data, source="t", overrides={"workload.rate": 2000})
    assert data == {"workload": {"rate": 50}}


def test_invalid_override_value_is_a_config_error() -> None:
    err = _config_error({}, overrides={"workload.rate": -5})
    assert err.field == "workload.rate"
    assert err.value == -5


def test_override_into_a_non_table_section_is_a_config_error() -> None:
    # The file itself is wrong here, so the file is named.
    err = _config_error({"kafka": 5}, overrides={"kafka.brokers": 3})
    assert err.source == "test.toml"
    assert err.field == "kafka"


def test_unknown_override_field_is_a_config_error() -> None:
    err = _config_error({}, overrides={"kafka.nope": 1})
    assert err.field == "kafka.nope"
    assert "brokers" in err.allowed


# --- load_config --------------------------------------------------------------------------


def test_load_config_reads_a_valid_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[kafka]\nbrokers = 5\ntopic = "t.v2"\n\n[contract]\nformat = "json"\n')
    config = load_config(path)
    assert config.kafka.brokers == 5
    assert config.kafka.topic == "t.v2"
    assert config.contract.format == "json"


def test_load_config_syntax_error_names_the_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "[kafka\nbrokers = \n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.source == str(path)
    assert str(err).startswith(f"{path}: ")
    assert "not valid TOML" in str(err)
    assert "line 1" in str(err)
    assert err.__cause__ is None  # raised "from None": one clean line for the CLI


def test_load_config_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.source == str(path)
    assert "cannot be read" in str(err)


def test_load_config_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.source == str(tmp_path)


def test_load_config_none_without_default_file_gives_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config == StackConfig()
    assert config.kafka.brokers == 3


def test_load_config_none_applies_overrides_to_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None, overrides={"workload.rate": 7}).workload.rate == 7.0


def test_load_config_none_uses_datadrill_toml_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "[kafka]\npartitions = 12\n", name="datadrill.toml")
    monkeypatch.chdir(tmp_path)
    assert load_config(None).kafka.partitions == 12


def test_load_config_none_reports_errors_against_datadrill_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "[kafka]\nbrokers = 0\n", name="datadrill.toml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(None)
    assert info.value.source == "datadrill.toml"
    assert info.value.field == "kafka.brokers"


def test_config_error_is_a_drill_error() -> None:
    assert isinstance(_config_error({"kafka": {"brokers": 0}}), DrillError)


def test_kafka_config_model_validates_directly() -> None:
    with pytest.raises(pydantic.ValidationError):
        KafkaConfig(brokers=1, replication_factor=2)


# --- property: parse_config never leaks another exception ---------------------------------

_KNOWN_KEYS = st.sampled_from(
    [*SECTIONS, *KAFKA_FIELDS, "uri", "table", "format", "rate", "canary_interval_s", "group_id"]
)
_KEYS = _KNOWN_KEYS | st.text(max_size=8)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["avro", "json", "mysql://x", "postgresql://u@h/db", "a.b"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_KEYS, children, max_size=3),
    max_leaves=10,
)
_DATA = st.dictionaries(_KEYS, st.dictionaries(_KEYS, _JSON, max_size=4) | _JSON, max_size=5)
_OVERRIDES = st.dictionaries(
    st.builds(lambda a, b: f"{a}.{b}", _KNOWN_KEYS, _KNOWN_KEYS) | st.text(max_size=8),
    _SCALARS,
    max_size=3,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_DATA, overrides=_OVERRIDES)
def test_parse_config_returns_config_or_raises_config_error(
    data: dict[str, Any], overrides: dict[str, object]
) -> None:
    try:
        config = parse_config(data, source="fuzz.toml", overrides=overrides)
    except ConfigError as exc:
        assert exc.source in ("fuzz.toml", "flags")
        assert str(exc).startswith(f"{exc.source}: ")
    else:
        assert isinstance(config, StackConfig)
        assert config.kafka.replication_factor <= config.kafka.brokers
