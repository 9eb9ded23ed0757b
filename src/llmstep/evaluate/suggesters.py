"""Where an eval gets its suggestions: a running server, or a model loaded in this process.

Both sit behind ``Suggester``, one method that maps a tactic state to ranked
tactics, so the runner neither knows nor cares which one it drives; a test
can pass any object with that method. Failures surface as llmstep errors:
``ServerUnreachable`` from the client, ``BackendError`` from the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llmstep.errors import LLMStepError

if TYPE_CHECKING:
    from llmstep.engine.blocking import BlockingEngine

__all__ = ["ClientSuggester", "EngineSuggester", "Suggester"]


@runtime_checkable
class Suggester(Protocol):
    """Ranked tactics for a tactic state (and the file context, if any), best first.

    Raises an ``LLMStepError`` when it cannot answer.
    """

    def suggest(self, state: str, context: str = "") -> list[str]: ...


class ClientSuggester:
    """Asks a running ``llmstep serve`` over HTTP; decoding is whatever the server was started with."""

    def __init__(
        self, url: str, *, num_samples: int, temperature: float | None = None, timeout_s: float = 60.0
    ) -> None:
        from llmstep.client import Client

        self.client = Client(url, timeout_s=timeout_s)
        self.num_samples = num_samples
        self.temperature = temperature

    def suggest(self, state: str, context: str = "") -> list[str]:
        reply = self.client.suggest(
            state, "", context=context, num_samples=self.num_samples, temperature=self.temperature
        )
        return [s.tactic for s in reply.suggestions]

    def close(self) -> None:
        """Close the client's pooled connection: one for the whole run, not one per request."""
        self.client.close()

    def describe(self) -> dict[str, Any]:
        """The URL, and what the server says it serves; a server that is down is recorded, not raised."""
        info: dict[str, Any] = {"url": self.client.url}
        try:
            health = self.client.health()
        except LLMStepError as exc:
            info["health_error"] = exc.message
        else:
            info.update(model=health.model, backend=health.backend, prompt_format=health.prompt_format)
        return info


class EngineSuggester:
    """Runs a ``SuggestionEngine`` in this process, one request at a time, through a ``BlockingEngine``."""

    def __init__(self, engine: BlockingEngine, *, num_samples: int) -> None:
        self.engine = engine
        self.num_samples = num_samples

    def suggest(self, state: str, context: str = "") -> list[str]:
        reply = self.engine.suggest(state, "", context=context, num_samples=self.num_samples)
        return [s.tactic for s in reply.items]

    def describe(self) -> dict[str, Any]:
        """The model and the engine that ran it."""
        engine = self.engine.engine
        backend = engine.backend
        info = {"model": backend.model_id, "backend": backend.name, "prompt_format": engine.prompt_format.name}
        compute_type = getattr(backend, "compute_type", None)  # only engines with a choice of precision have one
        if compute_type is not None:
            info["compute_type"] = compute_type
        return info
