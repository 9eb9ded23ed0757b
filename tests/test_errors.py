"""The error table: every class maps to a status, an exit code and a unique code."""

import pytest

import llmstep
from llmstep import errors
from llmstep.errors import LLMStepError, error_class_for_code

CLASSES = [getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_sets_code_status_and_exit(cls: type[LLMStepError]) -> None:
    assert issubclass(cls, LLMStepError)
    assert isinstance(cls.code, str) and cls.code
    assert 400 <= cls.http_status <= 599
    assert cls.exit_code >= 1
    assert error_class_for_code(cls.code) is cls


def test_codes_are_unique() -> None:
    codes = [cls.code for cls in CLASSES]
    assert len(codes) == len(set(codes))


def test_unknown_code_maps_to_base() -> None:
    assert error_class_for_code("no-such-code") is LLMStepError


def test_public_names_exist() -> None:
    for name in llmstep.__all__:
        assert hasattr(llmstep, name), name


def test_first_line_keeps_one_line_of_a_foreign_error() -> None:
    assert errors.first_line(ValueError("no config.json\n  Traceback details\n  more")) == "no config.json"
    assert errors.first_line(RuntimeError("")) == "RuntimeError"
    assert errors.first_line(OSError("  \n")) == "OSError"
