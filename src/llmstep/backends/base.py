"""The one small interface every generation engine implements.

A backend turns prompts into scored continuations. It knows nothing about
Lean, HTTP or ranking: the engine renders and fits prompts (with the backend's
own ``encode``, whose ids it hands back in the prompt), joins prefixes, dedupes
and ranks. Adding an engine (vLLM, CTranslate2, an upstream API) means adding one
class with ``generate`` and ``close``. ``generate`` polls ``should_stop`` where
it can (between decoding steps), so work nobody waits for any more ends early.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from llmstep.config import DecodingConfig
from llmstep.protocol.prompt import Prompt

__all__ = [
    "MIN_TEMPERATURE",
    "AsyncBackend",
    "Backend",
    "Candidate",
    "Encoding",
    "GenerationParams",
    "ShouldStop",
    "never",
]

#: Below this, sampling is numerically unsafe and indistinguishable from greedy decoding.
MIN_TEMPERATURE = 1e-3


#: Polled by a backend while it generates; True once nobody wants the batch's answer (the
#: clients left, their deadlines passed, or the server is shutting down). Answers after a
#: True are thrown away, so a backend may return anything, as soon as it can.
ShouldStop = Callable[[], bool]


def never() -> bool:
    """The ``should_stop`` of a call that nobody cancels."""
    return False


_DEFAULT = DecodingConfig()


@dataclass(frozen=True)
class GenerationParams:
    """How to decode one batch of prompts; unset fields take the server's defaults, as ``DecodingConfig`` declares."""

    num_samples: int = _DEFAULT.num_samples
    temperature: float = _DEFAULT.temperature
    max_new_tokens: int = _DEFAULT.max_new_tokens
    decoding: Literal["sample", "beam"] = _DEFAULT.decoding
    #: Strings that end a step; the backend also stops at its end-of-text token.
    stop: tuple[str, ...] = ("[END]", "\n")
    seed: int | None = None
    #: Cut and drop a row that repeats itself (backends that decode row by row): on for tactic
    #: suggestions, where such a row is never a tactic; off for raw completions, which get what they ask.
    loop_guard: bool = False

    def __post_init__(self) -> None:
        # Dividing logits by a temperature near zero overflows them to inf/nan, which no sampler
        # survives; such a temperature means "the most likely token", so decode greedily.
        if 0.0 < self.temperature < MIN_TEMPERATURE:
            object.__setattr__(self, "temperature", 0.0)
        # A beam search with one beam is greedy decoding; engines differ in how they treat it.
        if self.decoding == "beam" and self.num_samples == 1:
            object.__setattr__(self, "decoding", "sample")
            object.__setattr__(self, "temperature", 0.0)


@dataclass(frozen=True)
class Candidate:
    """One continuation, already cut at the first stop, and its score.

    ``score`` is the mean log-probability per generated token, counting the
    token that ended the step, so that short and long tactics compare fairly.
    """

    text: str
    score: float
    #: Log-probabilities of the scored tokens, in order (``score`` is their mean); empty if unknown.
    token_logprobs: tuple[float, ...] = ()
    #: "stop" when a stop string or end-of-text ended the step, "length" when max_new_tokens did,
    #: "loop" when the loop guard cut a row repeating itself: the engine drops and counts those.
    finish_reason: Literal["stop", "length", "loop"] = "stop"


@dataclass(frozen=True)
class Encoding:
    """A text as the backend's tokenizer encodes a prompt: special tokens (a BOS) included."""

    ids: tuple[int, ...]
    #: Each id's ``(start, end)`` character range in the text, ``(0, 0)`` for a special token the
    #: tokenizer added; None when the tokenizer cannot say (a slow tokenizer).
    offsets: tuple[tuple[int, int], ...] | None = None


@runtime_checkable
class Backend(Protocol):
    """A loaded model that can continue prompts."""

    #: Engine name, as ``--backend`` spells it.
    name: str
    #: What was loaded: a hub id or a directory.
    model_id: str
    #: Tokens a prompt and its continuation may take together; None when unknown (an upstream API),
    #: in which case the engine fits nothing and the backend is never asked to count.
    context_window: int | None

    def encode(self, text: str) -> Encoding:
        """``text`` encoded as ``generate`` encodes a prompt's text, special tokens (a BOS) included, so that
        a prompt fitted to the window fits it exactly, and its ids can be handed back in ``Prompt.token_ids``."""
        ...

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """Continuations for each prompt, in prompt order; at most ``num_samples`` per prompt.

        A prompt's ``token_ids``, where given, are its text already encoded by ``encode``.
        Between decoding steps, where the engine allows, stop early once ``should_stop()`` is True.
        """
        ...

    def schedules_rows(self, params: GenerationParams) -> bool:
        """Whether calls with ``params`` may come concurrently, one request each.

        True: the backend runs concurrent calls well itself (hf's loop admits and retires rows between
        steps; ct2 decodes on parallel workers), so the engine must not serialise and merge whole requests
        for it. False: the engine's batcher merges requests into one call.
        """
        ...

    def close(self) -> None:
        """Release the model's memory; the backend is unusable afterwards."""
        ...


@runtime_checkable
class AsyncBackend(Backend, Protocol):
    """A backend whose work is waiting on I/O (an upstream server): the engine awaits it on the event loop,
    with no thread per request and no batcher in front, and cancelling the awaiting task cancels the work."""

    async def generate_async(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[list[Candidate]]:
        """``generate``, awaited on the running loop."""
        ...

    async def aclose(self) -> None:
        """Release what belongs to the running loop (connections); ``close`` still releases the rest."""
        ...
