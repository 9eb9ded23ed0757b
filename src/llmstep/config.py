"""Settings for serving, each declared once: type, default, help, flag and environment variable.

Every setting is a field of the pydantic models below. Its ``Field`` carries the
default and the help text (``description``); a :class:`Cli` in its ``Annotated``
type says how it is given from outside Python, where that is not simply
``--field-name``: other flag names, the environment variables that set it, and
whether a preset may set it. ``llmstep.options`` derives the argparse
flags, the environment reading and the flag named in an error from these
declarations, so nothing here is restated elsewhere.

Precedence, everywhere: command-line flag > environment variable > preset > default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from llmstep.protocol.prompt import LLMSTEP_FORMAT, PromptFormat
from llmstep.protocol.wire import MAX_NEW_TOKENS, MAX_NUM_SAMPLES

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MODEL",
    "DEFAULT_PORT",
    "Cli",
    "DecodingConfig",
    "EngineConfig",
    "ModelConfig",
    "PresetOptions",
    "ServeConfig",
]

#: llmstep's Pythia-2.8B, fine-tuned on LeanDojo Benchmark 4.
DEFAULT_MODEL = "wellecks/llmstep-mathlib4-pythia2.8b"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6000

Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
Decoding = Literal["sample", "beam"]


@dataclass(frozen=True)
class Cli:
    """How one setting is given from outside Python; ``llmstep.options`` reads it.

    A field without one gets the flag ``--field-name`` and no environment variable.
    """

    #: Its flags, the first one named in errors; empty: ``--`` and the field name in kebab case.
    flags: tuple[str, ...] = ()
    #: Environment variables that set it when no flag does; the first one set (non-empty) wins.
    env: tuple[str, ...] = ()
    #: A preset (``llmstep.presets``) may set it: under the flag and the environment, over the default.
    preset: bool = False
    #: The flag gives a name that the command looks up (a prompt format by its preset's name), not the value.
    by_name: bool = False
    #: What ``--help`` calls the flag's value.
    metavar: str | None = None


class ModelConfig(BaseModel):
    """Which model to load, on which engine and device."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: Annotated[str, Cli(flags=("--model", "--hf-model"), preset=True, metavar="ID_OR_DIR")] = Field(
        DEFAULT_MODEL, description="hub id or local directory of the model"
    )
    backend: Annotated[str, Cli(preset=True, metavar="NAME")] = Field(
        "hf",
        description="generation engine: hf (transformers), seq2seq (encoder-decoder), ct2, vllm, openai; "
        "see docs/backends.md",
    )
    device: Device = Field("auto", description="where the model runs; auto: cuda, else mps, else cpu")
    dtype: DType = Field("auto", description="weight precision; auto: float32 on CPU, half precision on a GPU")
    compute_type: Annotated[str, Cli(metavar="TYPE")] = Field(
        "auto", description="CTranslate2 compute type (int8, int8_float32, int16, float32, ...); auto: int8"
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs to shard the model over, with vllm")
    ct2_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="ct2: requests decoded at once (ctranslate2's inter_threads), the cores split between them; "
        "each request is decoded on its own, never merged with others",
    )
    upstream_url: Annotated[str | None, Cli(metavar="URL")] = Field(
        None, description="base URL of an OpenAI-compatible server (openai backend)"
    )
    upstream_model: Annotated[str | None, Cli(metavar="NAME")] = Field(
        None, description="model name to ask the upstream server for"
    )
    upstream_api_key: Annotated[str | None, Cli(env=("LLMSTEP_UPSTREAM_API_KEY", "OPENAI_API_KEY"), metavar="KEY")] = (
        Field(
            None,
            repr=False,
            description="bearer key for the upstream server; prefer the environment: a flag shows in the process list",
        )
    )
    upstream_timeout_s: Annotated[float, Cli(flags=("--upstream-timeout",))] = Field(
        60.0, gt=0, description="seconds to wait for the upstream server"
    )
    trust_remote_code: Annotated[bool, Cli(preset=True)] = Field(
        False, description="run the model's own code from its hub repo (InternLM2 needs it); only for trusted repos"
    )
    max_batch_rows: int = Field(
        64,
        ge=1,
        le=4096,
        description="sequences decoded together at most, by a backend that schedules rows itself (hf); "
        "a request with more samples runs alone",
    )
    max_batch_tokens: int = Field(
        32768,
        ge=64,
        le=1 << 24,
        description="KV-cache positions (rows x padded length, counting every row's prompt and max_new_tokens) "
        "held together at most, by a backend that schedules rows itself, like hf",
    )


class DecodingConfig(BaseModel):
    """Server-wide decoding defaults; a request may override the first three."""

    model_config = ConfigDict(extra="forbid")

    num_samples: Annotated[int, Cli(preset=True)] = Field(
        10, ge=1, le=MAX_NUM_SAMPLES, description="suggestions per request"
    )
    # 0.5 is what llmstep's own server samples at.
    temperature: Annotated[float, Cli(preset=True)] = Field(0.5, ge=0.0, le=2.0, description="sampling temperature")
    max_new_tokens: Annotated[int, Cli(preset=True)] = Field(
        128, ge=1, le=MAX_NEW_TOKENS, description="longest tactic, in tokens"
    )
    decoding: Annotated[Decoding, Cli(preset=True)] = Field(
        "sample", description="sample (at the temperature) or beam (beam search: deterministic)"
    )
    seed: Annotated[int | None, Cli(preset=True)] = Field(None, description="seed sampling, for reproducible answers")


class EngineConfig(BaseModel):
    """Caching and batching between the HTTP layer and the backend."""

    model_config = ConfigDict(extra="forbid")

    cache_size: int = Field(1024, ge=0, description="answers cached; 0 turns the cache off")
    batch_window_ms: float = Field(5.0, ge=0, description="how long a batch waits for company")
    max_batch_size: int = Field(8, ge=1, description="requests merged into one backend call at most")
    request_timeout_s: Annotated[float, Cli(flags=("--request-timeout",))] = Field(
        300.0, gt=0, description="seconds a request may wait before it gets a 504"
    )
    max_num_samples: Annotated[int, Cli(flags=("--limit-num-samples",))] = Field(
        MAX_NUM_SAMPLES,
        ge=1,
        le=MAX_NUM_SAMPLES,
        description="largest num_samples a request may ask for; more gets a 422",
    )
    max_new_tokens: Annotated[int, Cli(flags=("--limit-new-tokens",))] = Field(
        MAX_NEW_TOKENS,
        ge=1,
        le=MAX_NEW_TOKENS,
        description="largest max_new_tokens a request may ask for; more gets a 422",
    )
    max_state_chars: int = Field(
        100_000,
        ge=1,
        description="longer tactic states are shortened: trailing goals, then the main goal's first hypotheses",
    )
    refuse_long_states: bool = Field(False, description="answer 413 to a state over max_state_chars instead")


class ServeConfig(BaseModel):
    """Everything ``llmstep serve`` needs."""

    model_config = ConfigDict(extra="forbid")

    model: ModelConfig = Field(default_factory=ModelConfig)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    host: Annotated[str, Cli(env=("LLMSTEP_HOST",))] = Field(DEFAULT_HOST, description="address to bind")
    # LLMSTEP_PORT=0, like --port 0, is a value (any free port), not "unset".
    port: Annotated[int, Cli(env=("LLMSTEP_PORT",))] = Field(
        DEFAULT_PORT, ge=0, le=65535, description="port to listen on; 0: any free port"
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="larger request bodies get a 413")
    max_in_flight: int = Field(64, ge=1, description="more concurrent requests than this get a 503")
    token: Annotated[str | None, Cli(env=("LLMSTEP_TOKEN",), metavar="TOKEN")] = Field(
        None, repr=False, description="require 'Authorization: Bearer TOKEN' on every route but /health"
    )
    prompt_format: Annotated[PromptFormat, Cli(preset=True, by_name=True, metavar="NAME")] = Field(
        LLMSTEP_FORMAT, description="how prompts are built: the prompt format of this preset, or of this format name"
    )

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> ServeConfig:
        """The server's own defaults must be requests it would accept; ``fields`` lets an error name both flags."""
        checks = (
            ("num_samples", self.decoding.num_samples, "max_num_samples", self.engine.max_num_samples),
            ("max_new_tokens", self.decoding.max_new_tokens, "max_new_tokens", self.engine.max_new_tokens),
        )
        for name, value, limit_name, limit in checks:
            if value > limit:
                raise PydanticCustomError(
                    "over_limit",
                    f"{name} {{value}} is over the limit {{limit}}",
                    {"value": value, "limit": limit, "fields": (f"decoding.{name}", f"engine.{limit_name}")},
                )
        return self

    @model_validator(mode="after")
    def _format_fits_backend(self) -> ServeConfig:
        """An encoder-decoder format splits its prompt in two; only the seq2seq backend reads that."""
        if self.prompt_format.encoder_decoder and self.model.backend != "seq2seq":
            raise ValueError(
                f"the {self.prompt_format.name} prompt format is for encoder-decoder models: "
                f"use --backend seq2seq, not {self.model.backend}"
            )
        return self


class PresetOptions(BaseModel):
    """Which preset fills in what neither a flag nor the environment sets."""

    model_config = ConfigDict(extra="forbid")

    preset: Annotated[str | None, Cli(metavar="NAME")] = Field(
        None,
        description="named model with its prompt format, backend and decoding defaults; see `llmstep presets`",
    )
    presets_file: Annotated[str | None, Cli(metavar="FILE")] = Field(
        None, description="TOML file of extra presets (schema: docs/presets.md)"
    )
