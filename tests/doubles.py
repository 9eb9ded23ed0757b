"""Test doubles: other implementations of the Backend protocol, never patches of our code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from llmstep.backends.base import Candidate, Encoding, GenerationParams, ShouldStop, never
from llmstep.protocol.prompt import Prompt


class Batched:
    """A backend that leaves batching to the engine, as every double here does unless it says otherwise,
    and has no window, so the engine fits nothing (CharWindowBackend has one)."""

    context_window: int | None = None

    def schedules_rows(self, params: GenerationParams) -> bool:
        return False

    def encode(self, text: str) -> Encoding:
        """One token per character: counts are lengths."""
        return Encoding(tuple(map(ord, text)), tuple((i, i + 1) for i in range(len(text))))


class ScriptedBackend(Batched):
    """Returns fixed candidates and records what it was asked: for engine and routing checks."""

    name = "scripted"

    def __init__(self, candidates: list[Candidate], model_id: str = "scripted-model") -> None:
        self.candidates = candidates
        self.model_id = model_id
        self.calls: list[tuple[list[str], GenerationParams]] = []

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        self.calls.append(([p.text for p in prompts], params))
        return [list(self.candidates) for _ in prompts]

    def close(self) -> None:
        pass


class FailingBackend(Batched):
    """Raises on the first ``failures`` calls, then answers: a model that breaks mid-run."""

    name = "failing"
    model_id = "failing-model"

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures
        self._lock = threading.Lock()

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                raise RuntimeError("CUDA error: device-side assert triggered (simulated)")
        return [[Candidate(" ok", -0.1)] for _ in prompts]

    def close(self) -> None:
        pass


class SlowBackend(Batched):
    """Takes ``delay_s`` per call and records each call's prompts: makes batching observable."""

    name = "slow"
    model_id = "slow-model"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.batches: list[list[str]] = []

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        time.sleep(self.delay_s)
        self.batches.append([p.text for p in prompts])
        return [[Candidate(f" echo {len(p.text)}", -0.5)] for p in prompts]

    def close(self) -> None:
        pass


class CharWindowBackend(ScriptedBackend):
    """Encodes one token per character (Batched's encoding) and has a small window: makes prompt fitting
    observable."""

    def __init__(self, context_window: int) -> None:
        super().__init__([Candidate(" simp", -0.1)])
        self.context_window = context_window


class ChoosyBackend(Batched):
    """Raises on prompts containing "boom" and sleeps ``hang_s`` on prompts containing "hang"."""

    name = "choosy"
    model_id = "choosy-model"

    def __init__(self, hang_s: float = 1.0) -> None:
        self.hang_s = hang_s

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        if any("boom" in p.text for p in prompts):
            raise ValueError("the model choked on this input (simulated)")
        if any("hang" in p.text for p in prompts):
            time.sleep(self.hang_s)
        return [[Candidate(" exact trivial", -0.2)] for _ in prompts]

    def close(self) -> None:
        pass


class ByPromptBackend(Batched):
    """Answers each prompt by a rule of its own: makes several-prompt formats observable."""

    name = "by-prompt"
    model_id = "by-prompt-model"

    def __init__(self, answer: Callable[[str], list[Candidate]]) -> None:
        self.answer = answer
        self.calls: list[list[str]] = []

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        self.calls.append([p.text for p in prompts])
        return [self.answer(p.text) for p in prompts]

    def close(self) -> None:
        pass


class GatedBackend(Batched):
    """Holds every ``generate`` call until ``release`` is set, or until ``should_stop`` says stop.

    Holds the backend busy deterministically: ``entered`` is set when a call has started, ``stop_seen``
    when a call returned because it was told to stop. Counts calls and prompts, and records any call
    made after ``close``, which must never happen. ``rows=True`` makes it a backend that schedules
    rows itself, so that the engine sends it each request as it comes.
    """

    name = "gated"
    model_id = "gated-model"

    def __init__(self, rows: bool = False) -> None:
        self.rows = rows
        self.release = threading.Event()
        self.entered = threading.Event()
        self.stop_seen = threading.Event()
        self.calls: list[list[str]] = []
        self.calls_after_close = 0
        self.closed = False

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        if self.closed:
            self.calls_after_close += 1
            raise RuntimeError("generate on a closed backend")
        self.calls.append([p.text for p in prompts])
        self.entered.set()
        while not self.release.wait(timeout=0.005):  # one "decoding step", then poll, as a real backend does
            if should_stop():
                self.stop_seen.set()
                return [[] for _ in prompts]
        return [[Candidate(f" done {len(p.text)}", -0.1)] for p in prompts]

    def schedules_rows(self, params: GenerationParams) -> bool:
        return self.rows

    def close(self) -> None:
        self.closed = True
