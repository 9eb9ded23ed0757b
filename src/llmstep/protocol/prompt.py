"""Turning a tactic state into a prompt, and a model's continuation into a tactic.

Pure functions over strings: the backends generate, this module decides what
the model sees and which part of its output is the tactic. Which format a
model wants is data (``presets.toml``, loaded by ``llmstep.presets``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

__all__ = [
    "LLMSTEP_FORMAT",
    "Prompt",
    "PromptFormat",
    "cut_at_first_stop",
    "join_suggestion",
]


@dataclass(frozen=True)
class Prompt:
    """What a backend is asked to continue, in named parts: nothing is packed into the text to split again.

    A causal model continues ``text``. An encoder-decoder model reads ``text`` in its encoder and
    continues ``decoder_prefix`` (the user's prefix) in its decoder. ``token_ids`` is ``text``
    encoded by the backend's own tokenizer, special tokens included, when the engine already
    encoded it to fit the window; the backend then uses them instead of encoding ``text`` again.
    """

    text: str
    decoder_prefix: str = ""
    token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PromptFormat:
    """How one model family wants its input, and where its steps end.

    ``template`` has ``{state}`` and, optionally, ``{context}`` (the file's
    source before the call) and ``{prefix}``. For a causal model it ends in
    ``{prefix}`` and the model continues right after it. For an
    encoder-decoder model (``encoder_decoder``) the template is the encoder
    input only, and the prefix becomes the start of the decoder's output
    (:meth:`prompt` puts it in its own field). ``stop`` lists the strings that end a step (the
    end-of-text token ends it too, and is handled by the backend); ``remove``
    lists strings deleted from the continuation, such as ReProver's premise
    marks ``<a>``/``</a>``.

    Some servers ask the model twice per request: llmstep's Llemma server runs a
    few-shot state-to-tactic prompt and, separately, the raw file continued
    after the prefix. ``extra_templates`` holds such further prompts; the
    engine merges the candidates of all of them into one ranking. ``drop``
    lists whole tactics never suggested (``sorry``, ``admit``).
    """

    name: str
    template: str
    stop: tuple[str, ...] = field(default=())
    remove: tuple[str, ...] = field(default=())
    encoder_decoder: bool = False
    extra_templates: tuple[str, ...] = field(default=())
    drop: tuple[str, ...] = field(default=())

    @property
    def templates(self) -> tuple[str, ...]:
        """Every prompt of a request: the main one first."""
        return (self.template, *self.extra_templates)

    @property
    def uses_context(self) -> bool:
        """Whether the model sees the file context; if not, it is ignored (and not cached on)."""
        return any("{context}" in t for t in self.templates)

    def parts(self) -> tuple[PromptFormat, ...]:
        """One single-prompt format per template: the engine fits each on its own and runs them together."""
        if not self.extra_templates:
            return (self,)
        return tuple(replace(self, template=t, extra_templates=()) for t in self.templates)

    def needs_context(self) -> bool:
        """Whether this (single-prompt) format shows nothing but the context, so is pointless without one."""
        return "{context}" in self.template and "{state}" not in self.template

    def render(self, state: str, prefix: str = "", context: str = "") -> str:
        """The template filled in: a causal model's whole prompt, an encoder-decoder model's encoder input."""
        # str.format does not re-read braces inside the values, so Lean's `{x : α}` is safe.
        return self.template.format(state=state, prefix=prefix, context=context)

    def prompt(self, text: str, prefix: str, token_ids: tuple[int, ...] | None = None) -> Prompt:
        """The backend's prompt for a rendered ``text``: an encoder-decoder model continues ``prefix``
        in its decoder; a causal model's ``text`` already ends in it."""
        return Prompt(text, prefix if self.encoder_decoder else "", token_ids)

    def clean(self, continuation: str) -> str:
        """``continuation`` without the marks the model was trained to emit but Lean must not see."""
        for mark in self.remove:
            continuation = continuation.replace(mark, "")
        return continuation

    def keeps(self, tactic: str) -> bool:
        """Whether a whole suggested tactic may be shown (not empty, not in ``drop``)."""
        tactic = tactic.strip()
        return bool(tactic) and tactic not in self.drop


#: llmstep's format, the one the LeanDojo-trained Pythia saw: ``[GOAL]state[PROOFSTEP]tactic[END]``.
#: A step also ends at a newline, and at a prompt marker: a model that writes
#: ``[GOAL]`` or ``[PROOFSTEP]`` has started inventing the next example.
LLMSTEP_FORMAT = PromptFormat(
    name="llmstep",
    template="[GOAL]{state}[PROOFSTEP]{prefix}",
    stop=("[END]", "\n", "[GOAL]", "[PROOFSTEP]"),
)


def cut_at_first_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` before the earliest of the ``stop`` strings (empty ones ignored), and whether one was found.

    The one rule for where a step ends in text; the backends apply it to what they decode.
    """
    cut = min((i for i in (text.find(s) for s in stop if s) if i != -1), default=-1)
    return (text, False) if cut == -1 else (text[:cut], True)


def join_suggestion(prefix: str, continuation: str) -> str:
    """The full tactic: the user's prefix followed by the model's continuation, stripped."""
    return (prefix + continuation).strip()
