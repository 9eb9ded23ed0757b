"""The JSON that crosses the wire, as pydantic models.

Field names follow llmstep's own protocol (``tactic_state``, ``prefix``,
``context``, ``suggestions``): fields may be added, never renamed. Models are
strict, so ``{"num_samples": false}`` is a 422 rather than a silent ``0``.
The Lean client posts exactly :class:`SuggestRequest` to ``/v1/suggest``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "GenerateOutput",
    "GenerateRequest",
    "GenerateResponse",
    "HealthResponse",
    "LLMstepRequest",
    "LLMstepResponse",
    "ScoredSuggestion",
    "SuggestRequest",
    "SuggestResponse",
]

#: Hard bounds every server enforces; a server's own limits may be lower.
MAX_NUM_SAMPLES = 64
MAX_NEW_TOKENS = 1024


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class LLMstepRequest(_Strict):
    """``POST /``: the original llmstep client's request, unchanged."""

    tactic_state: str = Field(description="The pretty-printed goals, as Lean's infoview shows them.")
    prefix: str = Field("", description="The start of the tactic the user wants completed.")
    context: str = Field("", description="Source of the file before the call; optional.")


class LLMstepResponse(_Strict):
    """The original protocol's reply: tactics, best first."""

    suggestions: list[str]


class SuggestRequest(_Strict):
    """``POST /v1/suggest``: the scored API, used by the Lean package and the CLI."""

    model_config = ConfigDict(strict=True, extra="forbid")

    tactic_state: str = Field(description="The pretty-printed goals, as Lean's infoview shows them.")
    prefix: str = Field("", description="The start of the tactic; every suggestion begins with it.")
    context: str = Field("", description="Source of the file before the call; optional.")
    num_samples: int | None = Field(
        None,
        ge=1,
        le=MAX_NUM_SAMPLES,
        description="Suggestions wanted, at most; the server decodes at least as wide as its own setting "
        "(a preset's beams) and returns the best this many. All of them if absent.",
    )
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Sampling temperature; the server's default if absent."
    )
    max_new_tokens: int | None = Field(
        None, ge=1, le=MAX_NEW_TOKENS, description="Longest continuation in tokens; the server's default if absent."
    )


class ScoredSuggestion(_Strict):
    """One tactic with the model's score: mean log-probability per generated token."""

    tactic: str
    score: float


class SuggestResponse(_Strict):
    """The scored reply: suggestions best first, the model that made them, and the time taken."""

    suggestions: list[ScoredSuggestion]
    model: str
    elapsed_ms: float
    truncated: bool = Field(
        False, description="The context or state was shortened to fit (trailing goals, then early hypotheses)."
    )
    truncated_chars: int = Field(0, description="How many characters were cut: file context first, then state.")
    cached: bool = Field(False, description="Answered from the cache of recent requests.")
    dropped_samples: int = Field(
        0, description="Samples cut while generating because they repeated themselves, and left out of the answer."
    )


class GenerateRequest(_Strict):
    """``POST /generate``: Lean Copilot's external-model request."""

    name: str = Field(description="The model name Lean Copilot asks for; informational here.")
    input: str = Field(description="The tactic state.")
    prefix: str = Field("", description="The start of the tactic.")


class GenerateOutput(_Strict):
    """One Lean Copilot output: a tactic and its score."""

    output: str
    score: float


class GenerateResponse(_Strict):
    """Lean Copilot's external-model reply."""

    outputs: list[GenerateOutput]


class HealthResponse(_Strict):
    """``GET /health``: what is being served."""

    status: str
    model: str
    backend: str
    prompt_format: str
    stats: dict[str, int] = Field(default_factory=dict, description="Cache and batching counters.")


class ErrorDetail(_Strict):
    """A stable machine-readable ``code`` and a one-line human ``message``."""

    code: str
    message: str


class ErrorBody(_Strict):
    """The body of every non-2xx answer."""

    error: ErrorDetail
