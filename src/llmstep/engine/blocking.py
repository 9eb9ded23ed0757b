"""The engine for callers without an event loop: ``llmstep eval`` and the benchmarks.

The server awaits :class:`~llmstep.engine.suggest.SuggestionEngine` on its own
loop. An in-process eval asks one question at a time and wants a plain call;
this wrapper gives it one, on a private event loop kept for the wrapper's life
(not one loop per call, which would start and stop a thread pool every time).
"""

from __future__ import annotations

import asyncio

from llmstep.engine.suggest import SuggestionEngine, Suggestions

__all__ = ["BlockingEngine"]


class BlockingEngine:
    """``SuggestionEngine.suggest`` as a blocking call; one caller at a time (the loop is not thread-safe)."""

    def __init__(self, engine: SuggestionEngine) -> None:
        self.engine = engine
        self._loop = asyncio.new_event_loop()

    def suggest(
        self,
        tactic_state: str,
        prefix: str = "",
        *,
        context: str = "",
        num_samples: int | None = None,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
    ) -> Suggestions:
        """See :meth:`SuggestionEngine.suggest`."""
        return self._loop.run_until_complete(
            self.engine.suggest(
                tactic_state,
                prefix,
                context=context,
                num_samples=num_samples,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
            )
        )

    def close(self) -> None:
        """Close the engine, then the private loop; the backend stays with whoever loaded it."""
        self.engine.close()
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()
