"""Fitting a prompt into the model's window, in the backend's own tokens, from one encoding.

The prompt is encoded once. If it fits, those ids go to the backend, which does not encode it
again. If not, the encoding's character offsets say how many tokens each shortening would
save (``protocol.goals`` lists the shortenings, in the order they are tried: the file context's
start, then trailing goals, then the main goal's earliest hypotheses), so the shortening is
chosen without encoding every candidate. Only the chosen prompt is encoded again, to be
sure: where a cut merged tokens differently, the budget is tightened by what it ran over and
the choice is made again. A tokenizer with no offsets is counted the slow way, one encoding
per candidate, as ``shorten_state`` asks.
"""

from __future__ import annotations

import bisect
import logging
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmstep.backends.base import Encoding
from llmstep.protocol.goals import GoalDoesNotFit, Shortening, Span, keep_tail, shorten_state, shortest
from llmstep.protocol.prompt import Prompt, PromptFormat

__all__ = ["Fitted", "fit_prompt"]

log = logging.getLogger(__name__)

#: Encodings of a chosen shortening before falling back to counting every candidate; a cut that
#: merges tokens differently overshoots by a token or two, so one retry nearly always suffices.
MAX_ROUNDS = 4


@dataclass(frozen=True)
class Fitted:
    """A prompt that fits, and the characters of state and context cut to make it fit."""

    prompt: Prompt
    cut: int = 0


class _Removed:
    """How many tokens of one encoding lie inside character ranges of the rendered prompt's fields."""

    def __init__(self, encoding: Encoding) -> None:
        assert encoding.offsets is not None
        spans = [span for span in encoding.offsets if span[1] > span[0]]  # special tokens cover no text
        self.starts = [a for a, _ in spans]
        self.ends = [b for _, b in spans]

    def tokens(self, field_starts: Sequence[int], removed: Sequence[Span]) -> int:
        """Tokens wholly inside ``removed`` (ranges of a field, at each of ``field_starts``): what removing saves.

        A token reaching across a range's edge is counted as kept; the edge re-encodes a little
        differently anyway, which the caller's check of the chosen prompt settles."""
        gone = 0
        for base in field_starts:
            for start, end in removed:
                first = bisect.bisect_left(self.starts, base + start)  # the first token starting inside
                last = bisect.bisect_right(self.ends, base + end)  # past the last token ending inside
                gone += max(0, last - first)
        return gone


def _field_starts(template: str, values: dict[str, str], name: str) -> list[int] | None:
    """Where each ``{name}`` of ``template`` starts once rendered; None if it uses conversions or specs."""
    starts, at = [], 0
    for literal, field, spec, conversion in string.Formatter().parse(template):
        at += len(literal)
        if field is None:
            continue
        if spec or conversion:
            return None
        if field == name:
            starts.append(at)
        at += len(values[field])
    return starts


#: Tokens of the prompt with the state shortened to ``s`` and the file context to ``c``.
Count = Callable[[Shortening, Shortening], int]


def _choose(state: str, context: str, count: Count, budget: int) -> tuple[Shortening, Shortening]:
    """The first shortening, in the module's order, within ``budget`` by ``count``; GoalDoesNotFit if none."""
    whole, no_context = Shortening(state), Shortening.nothing_of(context)
    if context and count(whole, no_context) <= budget:
        return whole, keep_tail(context, lambda c: count(whole, c) <= budget)
    return shorten_state(state, lambda s: count(s, no_context) <= budget), no_context


def fit_prompt(
    fmt: PromptFormat,
    state: str,
    prefix: str,
    context: str,
    budget: int,
    encode: Callable[[str], Encoding],
) -> Fitted:
    """The prompt for ``state`` in at most ``budget`` tokens, cut as the module says, with its ids.

    Raises GoalDoesNotFit when even the main goal's target and the prefix do not fit.
    """

    def render(s: Shortening, c: Shortening) -> str:
        return fmt.render(s.text, prefix, c.text)

    def exact(s: Shortening, c: Shortening) -> int:
        return len(encode(render(s, c)).ids)

    def fitted(s: Shortening, c: Shortening, text: str, encoding: Encoding) -> Fitted:
        if c.cut:
            log.warning("file context cut from %d to %d characters to fit the window", len(context), len(c.text))
        if s.cut:
            log.warning("tactic state cut from %d to %d characters to fit the window", len(state), len(s.text))
        return Fitted(fmt.prompt(text, prefix, encoding.ids), s.cut + c.cut)

    text = fmt.render(state, prefix, context)
    whole = encode(text)
    if len(whole.ids) <= budget:
        return Fitted(fmt.prompt(text, prefix, whole.ids))
    if exact(shortest(state), Shortening.nothing_of(context)) > budget:  # one short encoding settles a refusal
        raise GoalDoesNotFit("even the main goal's target and the prefix do not fit")
    estimate = _estimator(fmt, whole, state, prefix, context)
    if estimate is not None:
        aim = budget
        for _ in range(MAX_ROUNDS):
            try:
                s, c = _choose(state, context, estimate, aim)
            except GoalDoesNotFit:
                break  # the estimate is off by more than the least prompt's room: count exactly
            text = render(s, c)
            encoding = encode(text)
            if len(encoding.ids) <= budget:
                return fitted(s, c, text, encoding)
            aim -= len(encoding.ids) - budget  # the cut merged tokens differently: cut that much more
    s, c = _choose(state, context, exact, budget)  # the least prompt fits, so this finds one
    text = render(s, c)
    return fitted(s, c, text, encode(text))


def _estimator(fmt: PromptFormat, whole: Encoding, state: str, prefix: str, context: str) -> Count | None:
    """Counts from ``whole``'s offsets; None when they are unknown, or the template's fields cannot be located."""
    values = {"state": state, "prefix": prefix, "context": context}
    state_at = _field_starts(fmt.template, values, "state")
    context_at = _field_starts(fmt.template, values, "context")
    if whole.offsets is None or state_at is None or context_at is None:
        return None
    removed = _Removed(whole)
    total = len(whole.ids)

    def estimate(s: Shortening, c: Shortening) -> int:
        return total - removed.tokens(state_at, s.removed) - removed.tokens(context_at, c.removed)

    return estimate
