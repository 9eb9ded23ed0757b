"""Test doubles: other implementations of the Backend protocol, never patches of our code."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from llmstep.backends.base import Candidate, GenerationParams


class ScriptedBackend:
    """Returns fixed candidates and records what it was asked: for engine and routing checks."""

    name = "scripted"

    def __init__(self, candidates: list[Candidate], model_id: str = "scripted-model") -> None:
        self.candidates = candidates
        self.model_id = model_id
        self.calls: list[tuple[list[str], GenerationParams]] = []

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Candidate]]:
        self.calls.append((list(prompts), params))
        return [list(self.candidates) for _ in prompts]

    def close(self) -> None:
        pass


class FailingBackend:
    """Raises on the first ``failures`` calls, then answers: a model that breaks mid-run."""

    name = "failing"
    model_id = "failing-model"

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures
        self._lock = threading.Lock()

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Candidate]]:
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                raise RuntimeError("CUDA error: device-side assert triggered (simulated)")
        return [[Candidate(" ok", -0.1)] for _ in prompts]

    def close(self) -> None:
        pass
