"""From generated token ids to a candidate: where the step ends, and its score.

Every local backend shares this rule, so scores compare across engines: a
stop token ends the step and is scored; a stop string inside the text ends it
at the first token that reaches into the string, which is scored too; the
score is the mean log-probability of the scored tokens. ``TokenizerTools``
holds the tokenizer questions the rule needs, answered once for all backends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from llmstep.backends.base import Candidate, Encoding
from llmstep.protocol.prompt import Prompt, cut_at_first_stop

__all__ = [
    "LOOP_MAX_PERIOD",
    "LOOP_MIN_SPAN",
    "LOOP_REPEATS",
    "TokenizerTools",
    "cut_candidate",
    "ends_in_text_stop",
    "repeats_itself",
]

#: The loop guard: a row whose tail is one block of at most LOOP_MAX_PERIOD tokens repeated
#: LOOP_REPEATS times in a row, over at least LOOP_MIN_SPAN tokens, is repeating itself. On the 563
#: real tactics of the LeanDojo sample and llmstep's miniF2F traces (first lines), no tactic repeats a
#: block more than 3.5 times over 12 tokens or more (``apply_rules [sq_nonneg, mul_nonneg, mul_nonneg,
#: mul_nonneg]``), with the test tokenizer or the benchmark model's: 5 leaves a margin. A looping
#: sample (``hxr.abs := hxr.abs := ...``) is cut after 5 repeats instead of running to the cap.
LOOP_REPEATS = 5
LOOP_MAX_PERIOD = 16
LOOP_MIN_SPAN = 12


def repeats_itself(tokens: Sequence[int]) -> bool:
    """Whether ``tokens`` ends in a block repeated LOOP_REPEATS times over LOOP_MIN_SPAN tokens or more."""
    n = len(tokens)
    for period in range(1, LOOP_MAX_PERIOD + 1):
        span = max(LOOP_REPEATS * period, LOOP_MIN_SPAN)
        if span > n or tokens[-1] != tokens[-1 - period]:
            continue
        if all(tokens[i] == tokens[i - period] for i in range(n - span + period, n)):
            return True
    return False


def ends_in_text_stop(ids: Sequence[int], text_stops: Sequence[str], decode: Callable[[Sequence[int]], str]) -> bool:
    """Whether the newest token of a row ``ids`` completed one of ``text_stops``, decoding only the row's tail.

    A stop string of c characters spans at most 4c byte-level tokens (UTF-8), so a stop that the newest
    token completes lies within the last 4c + 1 tokens.
    """
    if not text_stops:
        return False
    tail = 4 * max(len(s) for s in text_stops) + 1
    return cut_at_first_stop(decode(ids[-tail:]), text_stops)[1]


class TokenizerTools:
    """Mixin for backends with a Hugging Face tokenizer in ``self.tokenizer``.

    A fast tokenizer is not safe to share between threads: each call sets its padding
    and truncation state, so a plain ``encode`` (the engine counting tokens on a request
    thread) can switch padding off under a padded batch being encoded by the batcher
    ("Unable to create tensor", seen under load). Every encode goes through ``tokenize_lock``.
    """

    tokenizer: Any
    #: Held around every tokenizer call that encodes; shared by all backends (encoding is brief).
    tokenize_lock = threading.Lock()

    def encode(self, text: str) -> Encoding:
        """``text`` as a prompt, special tokens included: the backends encode prompts with them (LLaMA's and
        Llemma's BOS), so a count without them fits a prompt one token over the window. Offsets where the
        tokenizer is a fast one, so the engine can fit a prompt from this one encoding."""
        fast = bool(self.tokenizer.is_fast)
        with self.tokenize_lock:
            enc = self.tokenizer(text, return_offsets_mapping=fast)
        offsets = tuple(enc["offset_mapping"]) if fast else None  # (start, end) tuples already
        return Encoding(tuple(enc["input_ids"]), offsets)

    def prompt_ids(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Each prompt's token ids: the engine's, where it fitted the prompt, else encoded here in one call."""
        missing = [p.text for p in prompts if p.token_ids is None]
        encoded: list[list[int]] = []
        if missing:
            with self.tokenize_lock:
                encoded = self.tokenizer(missing, padding=False)["input_ids"]
        fresh = iter(encoded)
        return [list(p.token_ids) if p.token_ids is not None else list(next(fresh)) for p in prompts]

    def _decode(self, ids: Sequence[int]) -> str:
        """The exact text of ``ids``: special tokens kept, spacing untouched."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _single_token(self, text: str) -> int | None:
        """The id of ``text`` when it is exactly one token, else None."""
        with self.tokenize_lock:
            encoded = self.tokenizer.encode(text, add_special_tokens=False)
        return encoded[0] if len(encoded) == 1 and self._decode(encoded) == text else None

    def _text_stops(self, stop: Sequence[str]) -> tuple[str, ...]:
        """The stop strings to look for in decoded text: all but the tokenizer's added tokens (``[END]``), which
        are always a token of their own. A one-token stop such as a newline may also be merged into a longer
        token (``\n⊢``), so its id alone does not catch it."""
        added = self.tokenizer.get_added_vocab()
        return tuple(s for s in stop if s and s not in added)

    def _stop_token_ids(self, stop: Sequence[str]) -> set[int]:
        """Ids that end a step: end-of-text, padding, and the stop strings that are one token."""
        tok = self.tokenizer
        ids = {i for i in (tok.pad_token_id, tok.eos_token_id) if i is not None}
        return ids | {i for i in map(self._single_token, stop) if i is not None}


def cut_candidate(
    ids: Sequence[int],
    logprobs: Sequence[float],
    stop_ids: set[int],
    stop: Sequence[str],
    decode: Callable[[Sequence[int]], str],
) -> Candidate:
    """Cut one sequence at its first stop and score the tokens up to and including the stop."""
    end = next((k for k, t in enumerate(ids) if t in stop_ids), None)
    body = list(ids if end is None else ids[:end])
    used = len(body) if end is None else end + 1
    text, found = cut_at_first_stop(decode(body), stop)
    if found:
        cut = len(text)
        # The fewest leading tokens whose text reaches past the cut: the step and its stop's first token.
        lo, hi = 1, len(body)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(decode(body[:mid])) > cut:
                hi = mid
            else:
                lo = mid + 1
        used = lo
    used = max(1, min(used, len(logprobs)))
    scored = tuple(float(x) for x in logprobs[:used])
    finish = "length" if end is None and not found else "stop"
    score = sum(scored) / len(scored) if scored else 0.0
    return Candidate(text=text, score=score, token_logprobs=scored, finish_reason=finish)
