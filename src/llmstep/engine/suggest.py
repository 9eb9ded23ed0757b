"""From a tactic state and a prefix to ranked, deduplicated tactics.

The engine owns everything between the wire and the model: rendering the
prompt (shortening an over-long state, never its main goal's target, so it fits the
model), applying the server's decoding defaults, the result cache, sharing
identical requests in flight, batching concurrent requests, dropping the
samples the loop guard cut, joining the prefix back on, merging duplicates and
ranking by score. It is also the one seam
where an engine's own exceptions become :class:`~llmstep.errors.BackendError`.

Its answers are awaitables for the server's event loop: a cache hit returns at
once, and the blocking work (counting tokens to fit a prompt, generating) runs
on other threads. Cancelling a caller (its client left, its deadline passed)
cancels its share of the work. :class:`~llmstep.engine.blocking.BlockingEngine`
drives it for callers without an event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Hashable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from llmstep.backends.base import Backend, Candidate, GenerationParams
from llmstep.config import DecodingConfig, EngineConfig
from llmstep.engine.batching import Batcher
from llmstep.engine.cache import LRUCache, digest
from llmstep.engine.fit import Fitted, fit_prompt
from llmstep.engine.flight import SingleFlight
from llmstep.errors import (
    BackendError,
    ContextTooLong,
    GenerationTimeout,
    InvalidRequest,
    LLMStepError,
    PayloadTooLarge,
)
from llmstep.protocol.goals import GoalDoesNotFit, shorten_state
from llmstep.protocol.prompt import LLMSTEP_FORMAT, Prompt, PromptFormat, join_suggestion

__all__ = ["Suggestion", "SuggestionEngine", "Suggestions", "rank"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Suggestion:
    """A whole tactic (prefix included) and its score: mean token log-probability."""

    tactic: str
    score: float


@dataclass(frozen=True)
class Suggestions:
    """Ranked suggestions for one request, and whether its state had to be shortened to fit."""

    items: tuple[Suggestion, ...]
    #: Characters cut from the start of the file context and the state to fit the model (0: none).
    truncated_chars: int = 0
    cached: bool = False
    #: Samples cut by the loop guard (repeating themselves) and left out of ``items``.
    dropped_samples: int = 0

    @property
    def truncated(self) -> bool:
        """Whether anything was cut to fit."""
        return self.truncated_chars > 0


def rank(prefix: str, candidates: list[Candidate]) -> list[Suggestion]:
    """Join the prefix on, drop empties, keep the best score per tactic, best first.

    Ties keep generation order, so beam search's own order breaks them. Scores are mean token
    log-probabilities, so candidates of different prompts of one request rank on one scale.
    """
    best: dict[str, float] = {}
    for cand in candidates:
        tactic = join_suggestion(prefix, cand.text)
        if tactic and (tactic not in best or cand.score > best[tactic]):
            best[tactic] = cand.score
    ordered = sorted(best.items(), key=lambda item: -item[1])
    return [Suggestion(tactic, score) for tactic, score in ordered]


class SuggestionEngine:
    """Ranked suggestions from one backend, with server-wide defaults, a cache and batching."""

    def __init__(
        self,
        backend: Backend,
        defaults: DecodingConfig | None = None,
        prompt_format: PromptFormat = LLMSTEP_FORMAT,
        config: EngineConfig | None = None,
    ) -> None:
        self.backend = backend
        self.defaults = defaults or DecodingConfig()
        self.prompt_format = prompt_format
        self.config = config or EngineConfig()
        self.cache: LRUCache[Suggestions] = LRUCache(self.config.cache_size)
        self.flights: SingleFlight[Hashable, Suggestions] = SingleFlight()
        self.batcher = Batcher(backend, self.config.batch_window_ms / 1000, self.config.max_batch_size)
        #: Samples the loop guard cut, over every answer generated.
        self.dropped_samples = 0

    def params(
        self,
        num_samples: int | None = None,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
    ) -> GenerationParams:
        """The decoding parameters for one request: its own values, else the server's."""
        d = self.defaults
        return GenerationParams(
            num_samples=num_samples or d.num_samples,
            temperature=d.temperature if temperature is None else temperature,
            max_new_tokens=max_new_tokens or d.max_new_tokens,
            decoding=d.decoding,
            stop=self.prompt_format.stop,
            seed=d.seed,
            loop_guard=True,  # a sample repeating itself is never a tactic
        )

    async def suggest(
        self,
        tactic_state: str,
        prefix: str = "",
        *,
        context: str = "",
        num_samples: int | None = None,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
    ) -> Suggestions:
        """Ranked tactics for ``tactic_state``, each starting with ``prefix``: at most ``num_samples`` of them.

        ``num_samples`` is how many suggestions the caller wants, not how wide to decode: the
        server samples or searches as wide as its own setting (a preset's 32 beams reach a Lean
        user who asks for 5), wider only when more are wanted, and returns the best ones. So
        requests that differ only in how many they want share one generation and one cache entry.
        A cache hit answers at once; a request identical to one in flight waits for that one's
        answer; past the deadline, GenerationTimeout.
        """
        width = max(self.defaults.num_samples, num_samples or 0)  # a request over the limit is wider: 422
        params = self.params(width, temperature, max_new_tokens)
        self.check_limits(params)
        return _best(await self._ranked(tactic_state, prefix, context, params), num_samples)

    async def _ranked(self, tactic_state: str, prefix: str, context: str, params: GenerationParams) -> Suggestions:
        """Every ranked suggestion for one decoding: from the cache, a generation in flight, or a new one."""
        tactic_state, capped = self.cap_state(tactic_state)
        # The context only matters, and so only splits the cache, for formats that show it to the model.
        used_context = context if self.prompt_format.uses_context else ""
        key = (
            self.backend.model_id,
            self.prompt_format.name,
            digest(tactic_state, prefix, used_context),
            tuple(asdict(params).items()),
        )
        if (hit := self.cache.get(key)) is not None:
            return replace(hit, cached=True)

        def generate() -> Coroutine[Any, Any, Suggestions]:
            return self._generate_ranked(key, tactic_state, prefix, used_context, params, capped)

        return await self._within_deadline(self.flights.run(key, generate))

    async def _generate_ranked(
        self, key: Hashable, state: str, prefix: str, context: str, params: GenerationParams, capped: int
    ) -> Suggestions:
        """The answer the cache lacked, made once for every caller in flight, then cached."""
        # Most formats have one prompt; some (llmstep's Llemma server) run several and merge the results.
        # A prompt made of the file context alone is skipped when there is no context.
        parts = [p for p in self.prompt_format.parts() if context or not p.needs_context()]
        # Fitting counts tokens, which blocks on the tokenizer: off the event loop.
        fitted = await asyncio.to_thread(
            lambda: [self.fit_prompt(state, prefix, context, params.max_new_tokens, p) for p in parts]
        )
        outputs, dropped = await self._generate([f.prompt for f in fitted], params)
        # The format's post-processing (ReProver's premise marks) applies before the prefix is joined on.
        candidates = [replace(c, text=p.clean(c.text)) for p, out in zip(parts, outputs, strict=True) for c in out]
        ranked = [s for s in rank(prefix, candidates) if self.prompt_format.keeps(s.tactic)]
        result = Suggestions(tuple(ranked), max(f.cut for f in fitted) + capped, dropped_samples=dropped)
        self.cache.put(key, result)
        return result

    def check_limits(self, params: GenerationParams) -> None:
        """Refuse (422) what this server is configured not to do, naming the field."""
        c = self.config
        if params.num_samples > c.max_num_samples:
            raise InvalidRequest(
                f"num_samples: {params.num_samples} is over this server's limit of {c.max_num_samples}"
            )
        if params.max_new_tokens > c.max_new_tokens:
            raise InvalidRequest(
                f"max_new_tokens: {params.max_new_tokens} is over this server's limit of {c.max_new_tokens}"
            )

    def cap_state(self, state: str) -> tuple[str, int]:
        """The state within ``max_state_chars`` and the characters cut; 413 when configured to refuse.

        It is shortened as ``protocol.goals`` says: trailing goals first, then the main goal's
        earliest hypotheses, never its target (413 when the target alone is over the limit).
        """
        limit = self.config.max_state_chars
        if len(state) <= limit:
            return state, 0
        if self.config.refuse_long_states:
            raise PayloadTooLarge(f"tactic_state: {len(state)} characters is over this server's limit of {limit}")
        try:
            kept = shorten_state(state, lambda s: len(s.text) <= limit)
        except GoalDoesNotFit:
            raise PayloadTooLarge(
                f"tactic_state: the main goal's target alone is over this server's limit of {limit} characters"
            ) from None
        return kept.text, kept.cut

    def fit_prompt(
        self, state: str, prefix: str, context: str, max_new_tokens: int, fmt: PromptFormat | None = None
    ) -> Fitted:
        """The prompt, shortened where it overflows the model, as ``engine.fit`` says, with its token ids.

        The file context loses its start first (its end, nearest the cursor, matters most); then the
        state is shortened as ``protocol.goals`` says (trailing goals, then the main goal's earliest
        hypotheses, never its target or the prefix). ``fmt`` is one part of a several-prompt format;
        by default, the engine's own format.
        """
        fmt = fmt or self.prompt_format
        window = self.backend.context_window
        if not window:
            return Fitted(fmt.prompt(fmt.render(state, prefix, context), prefix))
        try:
            return fit_prompt(fmt, state, prefix, context, window - max_new_tokens, self.backend.encode)
        except GoalDoesNotFit:
            raise ContextTooLong(
                f"the prompt does not fit the model's {window}-token window even with only the main goal's target "
                f"(max_new_tokens {max_new_tokens}); shorten the prefix or lower max_new_tokens"
            ) from None

    async def complete(self, prompt: str, params: GenerationParams) -> list[Candidate]:
        """Raw continuations of a finished prompt, unranked and uncached: for ``/v1/completions``.

        A raw prompt cannot be shortened, so one over the model's window is refused (400) before it
        reaches the backend, which would otherwise run past its window (or fail with a 500).
        """
        self.check_limits(params)
        window = self.backend.context_window
        typed = Prompt(prompt)
        if window:
            encoding = await asyncio.to_thread(self.backend.encode, prompt)
            tokens = len(encoding.ids)
            if tokens + params.max_new_tokens > window:
                raise ContextTooLong(
                    f"prompt: {tokens} tokens and max_tokens {params.max_new_tokens} are over the model's "
                    f"{window}-token window; shorten the prompt or lower max_tokens"
                )
            typed = Prompt(prompt, token_ids=encoding.ids)
        outputs, _ = await self._within_deadline(self._generate([typed], params))
        return outputs[0]

    async def _within_deadline(self, work: Awaitable[T]) -> T:
        """``work``'s result, or GenerationTimeout after ``request_timeout_s`` (and ``work`` cancelled)."""
        timeout = self.config.request_timeout_s
        try:
            return await asyncio.wait_for(work, timeout)
        except asyncio.TimeoutError:
            raise GenerationTimeout(
                f"generation took longer than the {timeout:g} s deadline; try fewer samples or a shorter prefix"
            ) from None

    async def _generate(self, prompts: list[Prompt], params: GenerationParams) -> tuple[list[list[Candidate]], int]:
        """Candidates per prompt, less those the loop guard cut, and how many it cut.

        Prompts go through the batcher together; the one seam where engine errors become BackendError.
        """
        try:
            outputs = await self.batcher.submit_many(prompts, params)
        except LLMStepError:
            raise
        except Exception as exc:
            log.exception("backend %s failed", self.backend.name)
            raise BackendError(f"the {self.backend.name} backend failed: {exc}") from exc
        kept = [[c for c in out if c.finish_reason != "loop"] for out in outputs]
        dropped = sum(len(out) - len(k) for out, k in zip(outputs, kept, strict=True))
        self.dropped_samples += dropped  # on the event loop only: no lock
        return kept, dropped

    def stats(self) -> dict[str, int]:
        """Cache, sharing, batching and cancellation counters, for /health and /metrics."""
        b = self.batcher.stats
        return {
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "cache_entries": len(self.cache),
            "joined_in_flight": self.flights.joined,
            "batches": b.batches,
            "batched_requests": b.requests,
            "largest_batch": b.largest_batch,
            "queue_depth": self.batcher.pending,
            "jobs_cancelled": b.cancelled,
            "jobs_dropped": b.dropped,
            "jobs_stopped": b.stopped,
            "dropped_samples": self.dropped_samples,
        }

    def close(self) -> None:
        """Fail queued work, stop running work and join the worker: the backend is idle afterwards.

        Blocks while the backend finishes its current call. The backend is closed by whoever loaded it,
        after this returns.
        """
        self.batcher.close()


def _best(result: Suggestions, wanted: int | None) -> Suggestions:
    """``result`` with at most ``wanted`` suggestions (all when None)."""
    return result if wanted is None or len(result.items) <= wanted else replace(result, items=result.items[:wanted])
