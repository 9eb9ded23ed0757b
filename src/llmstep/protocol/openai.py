"""The OpenAI ``/v1/completions`` wire format, the subset step suggestion needs.

Our server answers it, so any OpenAI client can use a model llmstep hosts;
the openai backend speaks it to vLLM, Ollama, llama.cpp or hosted endpoints.
Unknown fields are ignored, as OpenAI-compatible servers do, so clients that
send ``user`` or penalties still work.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmstep.protocol.wire import MAX_NEW_TOKENS, MAX_NUM_SAMPLES

__all__ = ["CompletionChoice", "CompletionLogprobs", "CompletionRequest", "CompletionResponse"]


class CompletionRequest(BaseModel):
    """``POST /v1/completions``; ``prompt`` is sent to the model as it is, with no template."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str | None = Field(None, description="Ignored: the server serves one model.")
    prompt: str | list[str]
    n: int = Field(1, ge=1, le=MAX_NUM_SAMPLES)
    max_tokens: int = Field(16, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    stop: str | list[str] | None = Field(
        None, description="Strings that end a completion: any number (OpenAI's own API takes up to 4)."
    )
    logprobs: int | None = Field(None, ge=0, le=5, description="Return per-token log-probabilities.")
    seed: int | None = None
    stream: bool = Field(False, description="Only false is supported.")
    use_beam_search: bool = Field(False, description="vLLM's extension: beam search with n beams.")

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, stop: str | list[str] | None) -> str | list[str] | None:
        """Refuse an empty stop string: it matches everywhere, so it would cut every completion short."""
        if stop is not None and "" in ([stop] if isinstance(stop, str) else stop):
            raise ValueError("stop strings must not be empty: an empty one would cut every completion")
        return stop

    def stops(self) -> tuple[str, ...]:
        """``stop`` as a tuple, however it was sent."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionLogprobs(BaseModel):
    """Per-token log-probabilities of one choice, in the legacy completions layout."""

    tokens: list[str] = Field(default_factory=list)
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    """One completion."""

    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class CompletionResponse(BaseModel):
    """The reply: ``n`` choices per prompt, prompt-major, as OpenAI orders them."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
