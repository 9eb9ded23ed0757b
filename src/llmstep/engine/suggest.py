"""From a tactic state and a prefix to ranked, deduplicated tactics.

The engine owns everything between the wire and the model: rendering the
prompt, applying the server's decoding defaults, joining the prefix back on,
merging duplicates and ranking by score. It is also the one seam where an
engine's own exceptions become :class:`~llmstep.errors.BackendError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmstep.backends.base import Backend, Candidate, GenerationParams
from llmstep.config import DecodingConfig
from llmstep.errors import BackendError, LLMStepError
from llmstep.protocol.prompt import LLMSTEP_FORMAT, PromptFormat, join_suggestion

__all__ = ["Suggestion", "SuggestionEngine", "rank"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suggestion:
    """A whole tactic (prefix included) and its score: mean token log-probability."""

    tactic: str
    score: float


def rank(prefix: str, candidates: list[Candidate]) -> list[Suggestion]:
    """Join the prefix on, drop empties, keep the best score per tactic, best first.

    Ties keep generation order, so beam search's own order breaks them.
    """
    best: dict[str, float] = {}
    for cand in candidates:
        tactic = join_suggestion(prefix, cand.text)
        if tactic and (tactic not in best or cand.score > best[tactic]):
            best[tactic] = cand.score
    ordered = sorted(best.items(), key=lambda item: -item[1])
    return [Suggestion(tactic, score) for tactic, score in ordered]


class SuggestionEngine:
    """Ranked suggestions from one backend, with server-wide decoding defaults."""

    def __init__(
        self,
        backend: Backend,
        defaults: DecodingConfig | None = None,
        prompt_format: PromptFormat = LLMSTEP_FORMAT,
    ) -> None:
        self.backend = backend
        self.defaults = defaults or DecodingConfig()
        self.prompt_format = prompt_format

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
        )

    def suggest(
        self,
        tactic_state: str,
        prefix: str = "",
        *,
        num_samples: int | None = None,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
    ) -> list[Suggestion]:
        """Ranked tactics for ``tactic_state``, each starting with ``prefix``."""
        prompt = self.prompt_format.render(tactic_state, prefix)
        params = self.params(num_samples, temperature, max_new_tokens)
        return rank(prefix, self.complete(prompt, params))

    def complete(self, prompt: str, params: GenerationParams) -> list[Candidate]:
        """Raw continuations of a finished prompt, unranked: for ``/v1/completions``."""
        try:
            (candidates,) = self.backend.generate([prompt], params)
        except LLMStepError:
            raise
        except Exception as exc:
            log.exception("backend %s failed", self.backend.name)
            raise BackendError(f"the {self.backend.name} backend failed: {exc}") from exc
        return candidates
