"""What counts as a hit, and the small statistics an eval report is made of.

Pure functions over strings and numbers: tactic normalisation, the exact and
loose matches, the reference tactic's head, goal-length buckets, the rank of
the first hit, and latency percentiles. No I/O and no model code here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

__all__ = [
    "GOAL_LENGTH_BUCKETS",
    "LEMMA_LIST_TACTICS",
    "goal_length_bucket",
    "latency_stats",
    "loose_key",
    "match_rank",
    "normalize_tactic",
    "percentile",
    "tactic_head",
]

#: Tactics whose ``[...]`` list names rewrite or simp lemmas; the loose match ignores what the list holds.
LEMMA_LIST_TACTICS = frozenset(
    {
        "rw",
        "rwa",
        "erw",
        "rewrite",
        "rw_mod_cast",
        "nth_rw",
        "nth_rewrite",
        "simp_rw",
        "simp",
        "simp_all",
        "simpa",
        "dsimp",
        "field_simp",
        "norm_num",
    }
)

#: (label, smallest state length in characters); a state falls in the last bucket whose bound it reaches.
#: Fixed bounds, so that reports of different runs can be compared bucket by bucket.
GOAL_LENGTH_BUCKETS: tuple[tuple[str, int], ...] = (
    ("<100", 0),
    ("100-299", 100),
    ("300-999", 300),
    ("1000+", 1000),
)

_OPENERS = "[(⟨{"
_CLOSERS = "])⟩}"
_SPACE_AFTER_OPENER = re.compile(rf"([{re.escape(_OPENERS)}]) ")
_SPACE_BEFORE_CLOSER = re.compile(rf" ([{re.escape(_CLOSERS)},])")
_COMMA = re.compile(r",(?=[^ \]\)⟩}])")
_HEAD = re.compile(r"[^\s\[\]()⟨⟩{},;]+")


def normalize_tactic(tactic: str) -> str:
    """``tactic`` up to whitespace that Lean ignores.

    Runs of whitespace (newlines included) become one space; spaces just inside
    brackets and before commas go; a comma is followed by exactly one space. So
    ``rw [a,b ]`` and ``rw  [a, b]`` are equal, but ``f (x)`` and ``f(x)`` are not.
    """
    text = " ".join(tactic.split())
    text = _SPACE_AFTER_OPENER.sub(r"\1", text)
    text = _SPACE_BEFORE_CLOSER.sub(r"\1", text)
    return _COMMA.sub(", ", text)


def tactic_head(tactic: str) -> str:
    """The tactic's name: ``simp`` for ``simp only [h] at h'``, ``exact`` for ``· exact h``.

    A leading focusing dot is skipped; for ``t₁ <;> t₂`` it is ``t₁``'s head.
    """
    text = normalize_tactic(tactic).lstrip("·. ")
    match = _HEAD.match(text)
    return match.group(0) if match else "(empty)"


def _blank_lists(text: str) -> str:
    """``text`` with every top-level ``[...]`` group (nested brackets included) replaced by ``[_]``."""
    out: list[str] = []
    depth = 0
    for ch in text:
        if ch == "[":
            if depth == 0:
                out.append("[_]")
            depth += 1
        elif ch == "]" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def loose_key(tactic: str) -> str:
    """What the loose match compares: the normalised tactic, with rw/simp lemma lists blanked.

    ``rw [add_comm] at h`` and ``rw [mul_comm, h₂] at h`` share a key; ``simp``
    and ``simp [h]`` do not (one has a list, the other none), nor do ``simp``
    and ``simp only [...]``. Tactics outside ``LEMMA_LIST_TACTICS`` keep their
    arguments, so for them loose and exact agree.
    """
    text = normalize_tactic(tactic)
    return _blank_lists(text) if tactic_head(text) in LEMMA_LIST_TACTICS else text


def match_rank(reference: str, suggestions: Sequence[str], *, loose: bool = False) -> int | None:
    """The 1-based rank of the first suggestion matching ``reference``; None when none does."""
    key = loose_key if loose else normalize_tactic
    target = key(reference)
    for rank, suggestion in enumerate(suggestions, start=1):
        if key(suggestion) == target:
            return rank
    return None


def goal_length_bucket(state: str) -> str:
    """The ``GOAL_LENGTH_BUCKETS`` label for a tactic state of this many characters."""
    label = GOAL_LENGTH_BUCKETS[0][0]
    for name, lower in GOAL_LENGTH_BUCKETS:
        if len(state) >= lower:
            label = name
    return label


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolating linearly between ranks as numpy does by default."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_stats(latencies_s: Sequence[float]) -> dict[str, float | None]:
    """Mean, median, 95th percentile and maximum in seconds; all None when nothing was timed."""
    if not latencies_s:
        return {"mean": None, "p50": None, "p95": None, "max": None}
    return {
        "mean": sum(latencies_s) / len(latencies_s),
        "p50": percentile(latencies_s, 50),
        "p95": percentile(latencies_s, 95),
        "max": max(latencies_s),
    }
