"""Turning a tactic state into a prompt, and a model's continuation into a tactic.

Pure functions over strings: the backends generate, this module decides what
the model sees and which part of its output is the tactic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LLMSTEP_FORMAT", "PromptFormat", "join_suggestion"]


@dataclass(frozen=True)
class PromptFormat:
    """How one model family wants its input, and where its steps end.

    ``template`` has ``{state}`` and ``{prefix}`` fields, and optionally
    ``{context}`` (the file's source before the call); the model continues
    right after the prefix. ``stop`` lists the strings that end a step; the
    end-of-text token ends it too, and is handled by the backend.
    """

    name: str
    template: str
    stop: tuple[str, ...] = field(default=())

    @property
    def uses_context(self) -> bool:
        """Whether the model sees the file context; if not, it is ignored (and not cached on)."""
        return "{context}" in self.template

    def render(self, state: str, prefix: str = "", context: str = "") -> str:
        """The prompt for ``state``, ending in ``prefix`` for the model to continue."""
        # str.format does not re-read braces inside the values, so Lean's `{x : α}` is safe.
        return self.template.format(state=state, prefix=prefix, context=context)

    def cut(self, continuation: str) -> str:
        """The part of ``continuation`` before the first stop string."""
        end = len(continuation)
        for stop in self.stop:
            i = continuation.find(stop)
            if i != -1:
                end = min(end, i)
        return continuation[:end]


#: llmstep's format, the one the LeanDojo-trained Pythia saw: ``[GOAL]state[PROOFSTEP]tactic[END]``.
#: A step also ends at a newline, and at a prompt marker: a model that writes
#: ``[GOAL]`` or ``[PROOFSTEP]`` has started inventing the next example.
LLMSTEP_FORMAT = PromptFormat(
    name="llmstep",
    template="[GOAL]{state}[PROOFSTEP]{prefix}",
    stop=("[END]", "\n", "[GOAL]", "[PROOFSTEP]"),
)


def join_suggestion(prefix: str, continuation: str) -> str:
    """The full tactic: the user's prefix followed by the model's continuation, stripped."""
    return (prefix + continuation).strip()
