"""Rules for datadrill.errors: one root, no shadowed builtins, every class documented."""

from __future__ import annotations

import builtins
import inspect

import pytest

import datadrill.errors as errors_module
from datadrill.errors import ConfigError, DrillError

EXCEPTION_CLASSES = [
    obj
    for _, obj in inspect.getmembers(errors_module, inspect.isclass)
    if issubclass(obj, BaseException) and obj.__module__ == errors_module.__name__
]
NAMES = [cls.__name__ for cls in EXCEPTION_CLASSES]


def test_the_module_defines_the_expected_classes() -> None:
    # Guards the parametrized tests below against an empty collection.
    assert {"DrillError", "ConfigError", "StackError", "WaitTimeout", "KafkaMockUnavailable"} <= set(NAMES)


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=NAMES)
def test_every_exception_is_a_drill_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, DrillError)
    assert issubclass(cls, Exception)


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=NAMES)
def test_no_exception_shadows_a_builtin(cls: type[BaseException]) -> None:
    assert cls.__name__ not in dir(builtins)


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=NAMES)
def test_module_docstring_mentions_every_class(cls: type[BaseException]) -> None:
    assert errors_module.__doc__ is not None
    assert cls.__name__ in errors_module.__doc__


@pytest.mark.parametrize("cls", EXCEPTION_CLASSES, ids=NAMES)
def test_every_class_has_its_own_docstring(cls: type[BaseException]) -> None:
    # __doc__ is not inherited, so this fails for a class without its own docstring.
    assert cls.__doc__
    assert cls.__doc__.strip()


def test_config_error_message_and_attributes() -> None:
    err = ConfigError("a.toml", "kafka.brokers", 0, "must be >= 1")
    assert str(err) == "a.toml: kafka.brokers = 0 is invalid: must be >= 1"
    assert (err.source, err.field, err.value, err.allowed) == ("a.toml", "kafka.brokers", 0, "must be >= 1")
