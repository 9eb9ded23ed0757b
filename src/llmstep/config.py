"""Settings for serving, and the one place that reads ``LLMSTEP_*`` environment variables.

Precedence, everywhere: command-line flag > environment variable > default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmstep.errors import ConfigError
from llmstep.protocol.prompt import LLMSTEP_FORMAT, PromptFormat
from llmstep.protocol.wire import MAX_NEW_TOKENS, MAX_NUM_SAMPLES

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MODEL",
    "DEFAULT_PORT",
    "DecodingConfig",
    "EngineConfig",
    "ModelConfig",
    "ServeConfig",
    "env_host",
    "env_port",
    "env_token",
    "env_upstream_api_key",
    "env_url",
    "resolve_port",
]

#: llmstep's Pythia-2.8B, fine-tuned on LeanDojo Benchmark 4.
DEFAULT_MODEL = "wellecks/llmstep-mathlib4-pythia2.8b"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6000

Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
Decoding = Literal["sample", "beam"]


class ModelConfig(BaseModel):
    """Which model to load, on which engine and device."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(DEFAULT_MODEL, description="Hub id or local directory of a causal LM.")
    backend: str = Field("hf", description="Engine name; see llmstep.backends.")
    device: Device = "auto"
    dtype: DType = "auto"
    compute_type: str = Field(
        "auto", description="CTranslate2 compute type (int8, int8_float32, int16, float32, ...); auto: int8."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs to shard the model over (vLLM).")
    upstream_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server (openai backend).")
    upstream_model: str | None = Field(None, description="Model name to ask the upstream server for.")
    upstream_api_key: str | None = Field(None, repr=False, description="Bearer key for the upstream server.")
    upstream_timeout_s: float = Field(60.0, gt=0)
    trust_remote_code: bool = Field(
        False, description="Run the model's own code from its hub repo (InternLM2 needs it); only for trusted repos."
    )
    max_batch_rows: int = Field(
        64,
        ge=1,
        le=4096,
        description="Sequences decoded together at most, by a backend that schedules rows itself (hf); "
        "a request with more samples runs alone.",
    )
    max_batch_tokens: int = Field(
        32768,
        ge=64,
        le=1 << 24,
        description="KV-cache positions (rows x padded length, counting every row's prompt and max_new_tokens) "
        "held together at most, by a backend that schedules rows itself (hf).",
    )


class DecodingConfig(BaseModel):
    """Server-wide decoding defaults; a request may override the first three."""

    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(10, ge=1, le=MAX_NUM_SAMPLES)
    # 0.5 is what llmstep's own server samples at.
    temperature: float = Field(0.5, ge=0.0, le=2.0)
    max_new_tokens: int = Field(128, ge=1, le=MAX_NEW_TOKENS)
    decoding: Decoding = "sample"
    seed: int | None = None


class EngineConfig(BaseModel):
    """Caching and batching between the HTTP layer and the backend."""

    model_config = ConfigDict(extra="forbid")

    cache_size: int = Field(1024, ge=0, description="Cached answers kept; 0 turns the cache off.")
    batch_window_ms: float = Field(5.0, ge=0, description="How long a batch waits for company.")
    max_batch_size: int = Field(8, ge=1, description="Requests merged into one backend call at most.")
    request_timeout_s: float = Field(300.0, gt=0, description="A request waiting longer gets a 504.")
    max_num_samples: int = Field(
        MAX_NUM_SAMPLES, ge=1, le=MAX_NUM_SAMPLES, description="Larger num_samples in a request gets a 422."
    )
    max_new_tokens: int = Field(
        MAX_NEW_TOKENS, ge=1, le=MAX_NEW_TOKENS, description="Larger max_new_tokens in a request gets a 422."
    )
    max_state_chars: int = Field(
        100_000,
        ge=1,
        description="Longer tactic states are shortened: trailing goals, then the main goal's first hypotheses.",
    )
    refuse_long_states: bool = Field(False, description="Answer 413 to a state over max_state_chars instead.")


class ServeConfig(BaseModel):
    """Everything ``llmstep serve`` needs."""

    model_config = ConfigDict(extra="forbid")

    model: ModelConfig = Field(default_factory=ModelConfig)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger request bodies get a 413.")
    max_in_flight: int = Field(64, ge=1, description="More concurrent requests than this get a 503.")
    token: str | None = Field(None, repr=False, description="Bearer token required on every route but /health.")
    prompt_format: PromptFormat = Field(LLMSTEP_FORMAT, description="How prompts are built; a preset's format.")

    @model_validator(mode="after")
    def _defaults_within_limits(self) -> ServeConfig:
        """The server's own defaults must be requests it would accept."""
        if self.decoding.num_samples > self.engine.max_num_samples:
            raise ValueError(f"num_samples {self.decoding.num_samples} is over the limit {self.engine.max_num_samples}")
        if self.decoding.max_new_tokens > self.engine.max_new_tokens:
            raise ValueError(
                f"max_new_tokens {self.decoding.max_new_tokens} is over the limit {self.engine.max_new_tokens}"
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


def env_host(environ: Mapping[str, str] = os.environ) -> str | None:
    """``LLMSTEP_HOST``, as llmstep's original client and server read it."""
    return environ.get("LLMSTEP_HOST") or None


def env_port(environ: Mapping[str, str] = os.environ) -> int | None:
    """``LLMSTEP_PORT`` as an integer; a non-integer is a ConfigError, not a crash later."""
    raw = environ.get("LLMSTEP_PORT")
    if raw is None or raw.strip() == "":
        return None
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"LLMSTEP_PORT must be an integer port, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"LLMSTEP_PORT must be between 0 and 65535, got {port}")
    return port


def env_token(environ: Mapping[str, str] = os.environ) -> str | None:
    """``LLMSTEP_TOKEN``: the bearer token a server requires and a client sends."""
    return environ.get("LLMSTEP_TOKEN") or None


def env_upstream_api_key(environ: Mapping[str, str] = os.environ) -> str | None:
    """The upstream server's key: ``LLMSTEP_UPSTREAM_API_KEY``, else ``OPENAI_API_KEY``."""
    return environ.get("LLMSTEP_UPSTREAM_API_KEY") or environ.get("OPENAI_API_KEY") or None


def env_url(environ: Mapping[str, str] = os.environ) -> str:
    """The server URL a client should use: ``http://$LLMSTEP_HOST:$LLMSTEP_PORT``, defaults ``localhost:6000``."""
    host = env_host(environ) or "localhost"
    return f"http://{host}:{resolve_port(None, environ)}"


def resolve_port(flag: int | None, environ: Mapping[str, str] = os.environ) -> int:
    """The port: the flag, else ``LLMSTEP_PORT``, else 6000. ``0`` (any free port) is a value, not "unset"."""
    if flag is not None:
        return flag
    port = env_port(environ)
    return DEFAULT_PORT if port is None else port
