"""Flags, environment variables and error messages, derived from the declarations in ``llmstep.config``.

Why this module exists: a setting used to be restated in argparse (its default,
its choices), in an environment helper and in a map from field to flag for
errors, and the copies drifted apart. Here each of those is computed from the
one pydantic field that declares the setting: its annotation gives the flag's
type (a ``Literal`` its choices, a ``bool`` a switch), its ``description`` the
help, its default the "(default: ...)" that ``--help`` shows, and its
:class:`~llmstep.config.Cli` the flag names, the environment variables and
whether a preset may set it.

Flags default to None, meaning unset, so that a command can stack its sources
with :func:`merge`: flag > environment variable > preset > the model's default.
Light to import (no model code): ``llmstep.client`` uses :func:`env_url` and
:func:`env_token`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Any, Literal, Protocol, Union, get_args, get_origin

from annotated_types import Ge, Le
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from llmstep.config import Cli, ServeConfig
from llmstep.errors import ConfigError
from llmstep.protocol.prompt import PromptFormat

__all__ = [
    "CLIENT_HOST",
    "Setting",
    "add_flags",
    "config_error",
    "env_token",
    "env_url",
    "env_values",
    "flag_values",
    "merge",
    "settings",
]

#: The host a client asks when ``LLMSTEP_HOST`` is unset, as llmstep's original client did.
CLIENT_HOST = "localhost"


class ArgumentContainer(Protocol):
    """An ``argparse`` parser or argument group: whatever flags can be added to."""

    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action: ...


@dataclass(frozen=True)
class Setting:
    """One leaf field of a config model: where it sits, how it is declared, and how it is given."""

    #: Field names from the model passed to :func:`settings` down to this field: ``("engine", "max_new_tokens")``.
    path: tuple[str, ...]
    #: The model class that declares the field; a value from the environment is validated against it.
    owner: type[BaseModel]
    info: FieldInfo
    cli: Cli

    @property
    def name(self) -> str:
        """The field's own name."""
        return self.path[-1]

    @property
    def key(self) -> str:
        """The dotted path, ``engine.max_new_tokens``: how ``only``, ``skip`` and ``defaults`` name it."""
        return ".".join(self.path)

    @property
    def flags(self) -> tuple[str, ...]:
        """Its flags: the declared ones, else ``--`` and the field name in kebab case."""
        return self.cli.flags or ("--" + self.name.replace("_", "-"),)

    @property
    def flag(self) -> str:
        """The flag an error names: the first one."""
        return self.flags[0]

    @property
    def dest(self) -> str:
        """Its attribute in the parsed arguments, from the flag (unique where field names are not)."""
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def default(self) -> object:
        """The model's default."""
        return self.info.get_default(call_default_factory=True)


def settings(model: type[BaseModel]) -> list[Setting]:
    """Every leaf setting of ``model`` in declaration order; a field holding a model contributes its fields."""
    found: list[Setting] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += [Setting((name, *s.path), s.owner, s.info, s.cli) for s in settings(annotation)]
        else:
            declared = [item for item in info.metadata if isinstance(item, Cli)]
            found.append(Setting((name,), model, info, declared[0] if declared else Cli()))
    return found


def _chosen(model: type[BaseModel], only: Collection[str] | None, skip: Collection[str]) -> list[Setting]:
    chosen = [s for s in settings(model) if (only is None or s.key in only) and s.key not in skip]
    unknown = (set(only or ()) | set(skip)) - {s.key for s in settings(model)}
    if unknown:
        raise ValueError(f"{model.__name__} has no setting {', '.join(sorted(unknown))}")
    return chosen


def add_flags(
    container: ArgumentContainer,
    model: type[BaseModel],
    *,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
    defaults: Mapping[str, object] | None = None,
    preset: bool = True,
) -> None:
    """Add one flag per setting of ``model`` (those in ``only``, less those in ``skip``; dotted keys).

    Every flag defaults to None (unset), so the parsed arguments say what the user typed and
    nothing else; the default is only shown in the help. ``defaults`` replaces the model's
    default there, for a command that has its own (eval decodes with beam search; a None
    shows none). ``preset=False`` leaves out "the preset's" for a command whose preset does
    not set these.
    """
    for s in _chosen(model, only, skip):
        shown = defaults[s.key] if defaults is not None and s.key in defaults else s.default
        container.add_argument(*s.flags, dest=s.dest, default=None, help=_help(s, shown, preset), **_kind(s))


def _kind(s: Setting) -> dict[str, Any]:
    """How argparse reads the flag, from the field's annotation."""
    annotation = _without_none(s.info.annotation)
    metavar = {"metavar": s.cli.metavar or _METAVARS.get(annotation, s.dest.upper())}
    if s.cli.by_name:
        return {"type": str, "metavar": s.cli.metavar or "NAME"}
    if annotation is bool:
        return {"action": "store_true"}
    if get_origin(annotation) is Literal:
        choices = list(get_args(annotation))
        return {"type": type(choices[0]), "choices": choices}
    if annotation in (int, float, str):
        return {"type": annotation, **metavar}
    raise TypeError(f"no flag type for {s.key}: {annotation!r}; declare Cli(by_name=True) and look the name up")


#: What ``--help`` calls a number; a string's metavar is its flag's name, upper case.
_METAVARS: dict[object, str] = {int: "N", float: "NUM"}


def _without_none(annotation: Any) -> Any:
    """``X | None`` as ``X``: None is what an unset flag already means."""
    if get_origin(annotation) in (Union, UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not NoneType]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _help(s: Setting, default: object, preset: bool) -> str:
    """The description, then where the value comes from when the flag is not given."""
    sources = [" or ".join(f"${name}" for name in s.cli.env)] if s.cli.env else []
    if preset and s.cli.preset:
        sources.append("the preset's")
    shown = _show(default)
    if shown is not None:
        sources.append(shown)
    text = s.info.description or ""
    if sources:
        text += f" (default: {', else '.join(sources)})"
    return text.replace("%", "%%")  # argparse %-formats help


def _show(value: object) -> str | None:
    """A default as ``--help`` shows it; None when there is nothing to show (unset, or a switch that is off)."""
    if value is None or value is False:
        return None
    if value is True:
        return "on"
    if isinstance(value, PromptFormat):
        return value.name
    return str(value)


def flag_values(
    args: argparse.Namespace,
    model: type[BaseModel],
    *,
    only: Collection[str] | None = None,
    skip: Collection[str] = (),
) -> dict[str, Any]:
    """The settings of ``model`` that flags set, nested as the model is; an unset flag is absent."""
    parsed = vars(args)
    values: dict[str, Any] = {}
    for s in _chosen(model, only, skip):
        if parsed.get(s.dest) is not None:
            _put(values, s.path, parsed[s.dest])
    return values


def env_values(
    model: type[BaseModel], environ: Mapping[str, str] = os.environ, *, only: Collection[str] | None = None
) -> dict[str, Any]:
    """The settings of ``model`` that environment variables set, nested, each checked against its field.

    An empty (or blank) variable is unset; ``LLMSTEP_PORT=0`` is port 0, any free port. A bad
    value is a one-line ConfigError naming the variable, not a failure later on.
    """
    values: dict[str, Any] = {}
    for s in _chosen(model, only, ()):
        for variable in s.cli.env:
            raw = environ.get(variable, "")
            if raw.strip():
                _put(values, s.path, _checked(s, variable, raw))
                break
    return values


def _checked(s: Setting, variable: str, raw: str) -> Any:
    """``raw`` validated as the field it sets (its type and bounds), converted."""
    try:
        return s.owner.model_validate({s.name: raw}).model_dump(include={s.name})[s.name]
    except ValidationError as exc:
        raise ConfigError(_say(variable, exc.errors()[0], s.info, raw)) from None


def env_url(environ: Mapping[str, str] = os.environ) -> str:
    """The server a client should ask: ``http://$LLMSTEP_HOST:$LLMSTEP_PORT``, else localhost and serve's port."""
    values = env_values(ServeConfig, environ, only=("host", "port"))
    port = values.get("port", ServeConfig.model_fields["port"].default)
    return f"http://{values.get('host') or CLIENT_HOST}:{port}"


def env_token(environ: Mapping[str, str] = os.environ) -> str | None:
    """``$LLMSTEP_TOKEN``, the bearer token a server requires and so a client sends."""
    token: str | None = env_values(ServeConfig, environ, only=("token",)).get("token")
    return token


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Nested settings, a later layer winning key by key: ``merge(preset, environment, flags)``."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            below = merged.get(key)
            if isinstance(value, Mapping) and isinstance(below, Mapping):
                merged[key] = merge(below, value)
            else:
                merged[key] = dict(value) if isinstance(value, Mapping) else value
    return merged


def _put(values: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    for part in path[:-1]:
        values = values.setdefault(part, {})
    values[path[-1]] = value


def config_error(exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """``exc`` from validating ``model`` as one line that names the flag of the field at fault.

    A check across fields (no location) may list the fields it compares in its context
    (``fields``, dotted keys, as ``ServeConfig`` does); their flags then start the line.
    """
    first = exc.errors()[0]
    by_key = {s.key: s for s in settings(model)}
    if not first["loc"]:
        message = first["msg"].removeprefix("Value error, ")
        ctx = first.get("ctx") or {}
        named = [by_key[key].flag for key in ctx.get("fields", ()) if key in by_key]
        return ConfigError(f"{', '.join(named)}: {message}" if named else message)
    loc = [str(part) for part in first["loc"]]
    # A union's error adds the member it tried (seed: int | None -> ("seed", "int")): match the longest prefix.
    for end in range(len(loc), 0, -1):
        s = by_key.get(".".join(loc[:end]))
        if s is not None:
            return ConfigError(_say(s.flag, first, s.info, first["input"]))
    return ConfigError(f"{'.'.join(loc)}: {first['msg']}")


_PHRASES = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "int_type": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
}
_BOUNDS = {"greater_than": "over", "greater_than_equal": "at least", "less_than": "under", "less_than_equal": "at most"}


def _say(name: str, error: ErrorDetails, info: FieldInfo, got: object) -> str:
    """One line: ``NAME must be between LOW and HIGH, got VALUE``, or pydantic's own words after the name."""
    kind = error["type"]
    if kind in _BOUNDS:
        low = [item.ge for item in info.metadata if isinstance(item, Ge)]
        high = [item.le for item in info.metadata if isinstance(item, Le)]
        if low and high:
            return f"{name} must be between {low[0]} and {high[0]}, got {got!r}"
        limit = next(iter((error.get("ctx") or {}).values()), "")
        return f"{name} must be {_BOUNDS[kind]} {limit}, got {got!r}"
    if kind in _PHRASES:
        return f"{name} {_PHRASES[kind]}, got {got!r}"
    return f"{name}: {error['msg']}"
