"""Model presets: a hub id, its backend and its prompt format, by name.

A catalogue of models, a layer above the settings it fills in (``config``): not wire protocol.
The presets are data: ``presets.toml`` beside this module ships the built-in
ones, and ``--presets-file`` adds a user's (same schema; a user entry with a
built-in's name replaces it). This module reads and checks them, so that a
malformed entry fails at startup with one line, never as silently bad
suggestions. Choosing flags over presets is the CLI's job, not this module's.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from llmstep.config import DecodingConfig
from llmstep.errors import ConfigError, first_line
from llmstep.protocol.prompt import PromptFormat

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the backport
    import tomli as tomllib

__all__ = ["DEFAULT_PRESET", "KINDS", "Preset", "find_prompt_format", "get_preset", "load_presets"]

#: The preset ``llmstep serve`` uses when none is named: llmstep's own Pythia.
DEFAULT_PRESET = "llmstep-pythia-2.8b"

#: Architecture kind → the backend that runs it by default.
KINDS: dict[str, str] = {"causal": "hf", "seq2seq": "seq2seq"}

#: Decoding defaults a preset may set; the values are checked by DecodingConfig.
_DECODING_KEYS = frozenset({"num_samples", "temperature", "max_new_tokens", "decoding", "seed"})
_REQUIRED = ("model", "kind", "template", "source")
_OPTIONAL = ("description", "stop", "remove", "drop", "prompt_format", "trust_remote_code", "decoding")
_FIELDS = frozenset({"state", "prefix", "context"})


@dataclass(frozen=True)
class Preset:
    """One named model: what to load, how to prompt it, how to decode it, and where that comes from."""

    name: str
    model: str
    kind: Literal["causal", "seq2seq"]
    prompt_format: PromptFormat
    source: str
    description: str = ""
    trust_remote_code: bool = False
    #: Decoding defaults this model was evaluated with; keys of DecodingConfig, unset ones keep llmstep's.
    decoding: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        """The backend that runs this architecture."""
        return KINDS[self.kind]


def load_presets(path: Path | str | None = None) -> dict[str, Preset]:
    """The built-in presets, plus (and overridden by) those in the TOML file at ``path``."""
    builtin = resources.files("llmstep").joinpath("presets.toml").read_text(encoding="utf-8")
    presets = _parse(builtin, "the built-in presets.toml", known=())
    if path is not None:
        where = str(path)
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--presets-file {where}: {exc.strerror or exc}; {_valid(presets)}") from None
        presets.update(_parse(text, where, known=presets))
    return presets


def get_preset(name: str, presets: dict[str, Preset]) -> Preset:
    """The preset called ``name``; a ConfigError listing the valid names if there is none."""
    try:
        return presets[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; {_valid(presets)}") from None


def find_prompt_format(name: str, presets: dict[str, Preset]) -> PromptFormat:
    """The prompt format called ``name``: a preset's name, or its format's own (``llmstep``)."""
    if name in presets:
        return presets[name].prompt_format
    for preset in presets.values():
        if preset.prompt_format.name == name:
            return preset.prompt_format
    raise ConfigError(f"unknown prompt format {name!r}; {_valid(presets)}")


def _valid(presets: dict[str, Preset] | tuple[()]) -> str:
    return "valid presets: " + ", ".join(sorted(presets))


def _parse(text: str, where: str, known: dict[str, Preset] | tuple[()]) -> dict[str, Preset]:
    """Every table of a presets file, checked; errors name the file and list ``known`` plus its good entries."""
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {first_line(exc)}; {_valid(known)}") from None
    out: dict[str, Preset] = {}
    for name, entry in tables.items():
        try:
            out[name] = _preset(name, entry)
        except ValueError as exc:
            raise ConfigError(f"{where}: preset {name!r}: {exc}; {_valid({**dict(known), **out})}") from None
    return out


def _preset(name: str, entry: Any) -> Preset:
    """One table as a Preset; a ValueError says what is wrong with it."""
    if not isinstance(entry, dict):
        raise ValueError('must be a table: ["name"] followed by its keys')
    unknown = set(entry) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {', '.join((*_REQUIRED, *_OPTIONAL))}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for key in ("model", "source", "description", "prompt_format"):
        if key in entry and not isinstance(entry[key], str):
            raise ValueError(f"{key} must be a string")
    kind = entry["kind"]
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    templates = _templates(entry["template"], encoder_decoder=kind == "seq2seq")
    lists = {key: entry.get(key, []) for key in ("stop", "remove", "drop")}
    for key, value in lists.items():
        if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
            raise ValueError(f"{key} must be a list of non-empty strings")
    trust = entry.get("trust_remote_code", False)
    if not isinstance(trust, bool):
        raise ValueError("trust_remote_code must be true or false")
    decoding = entry.get("decoding", {})
    if not isinstance(decoding, dict) or set(decoding) - _DECODING_KEYS:
        raise ValueError(f"decoding must be a table with keys among {', '.join(sorted(_DECODING_KEYS))}")
    _check_decoding(decoding)
    prompt_format = PromptFormat(
        name=entry.get("prompt_format", name),
        template=templates[0],
        stop=tuple(lists["stop"]),
        remove=tuple(lists["remove"]),
        encoder_decoder=kind == "seq2seq",
        extra_templates=templates[1:],
        drop=tuple(lists["drop"]),
    )
    return Preset(
        name=name,
        model=entry["model"],
        kind=kind,
        prompt_format=prompt_format,
        source=entry["source"],
        description=entry.get("description", ""),
        trust_remote_code=trust,
        decoding=dict(decoding),
    )


def _templates(value: Any, encoder_decoder: bool) -> tuple[str, ...]:
    """``template``: one prompt, or a list of prompts whose candidates are merged (causal models only)."""
    if isinstance(value, str):
        _check_template(value, encoder_decoder)
        return (value,)
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise ValueError("template must be a string, or a non-empty list of strings (prompts merged per request)")
    if encoder_decoder and len(value) > 1:
        raise ValueError("a seq2seq preset takes one template")
    _check_template(value[0], encoder_decoder)
    for extra in value[1:]:
        _check_template(extra, encoder_decoder, needs_state=False)
    return tuple(value)


def _check_template(template: str, encoder_decoder: bool, needs_state: bool = True) -> None:
    """Fields are known, ``{state}`` is there, and the prefix sits where the model continues.

    A further prompt of a several-prompt preset may show the file context instead of the state.
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"template: {exc} (write a literal brace as {{{{ or }}}})") from None
    bad = [f for f in fields if f not in _FIELDS]
    if bad:
        raise ValueError(f"template has unknown fields {bad}; use {{state}}, {{prefix}}, {{context}}")
    if "state" not in fields and (needs_state or "context" not in fields):
        raise ValueError(
            "template must contain {state}" if needs_state else "each further template needs {state} or {context}"
        )
    if encoder_decoder and "prefix" in fields:
        raise ValueError("a seq2seq template is the encoder input: the prefix goes to the decoder, not {prefix}")
    if not encoder_decoder and not template.endswith("{prefix}"):
        raise ValueError("a causal template must end with {prefix}: the model continues right after it")


def _check_decoding(decoding: dict[str, Any]) -> None:
    """Reject values DecodingConfig would reject, now rather than at ``serve``."""
    try:
        DecodingConfig(**decoding)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"decoding.{first['loc'][0]}: {first['msg']}") from None
