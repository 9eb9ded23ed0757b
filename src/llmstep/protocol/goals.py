"""Shortening a tactic state without losing the goal the tactic acts on.

Lean sends every unsolved goal, the main goal first, each as ``Meta.ppGoal``
prints it (an optional ``case`` line, the hypotheses, then the ``⊢`` target),
separated by blank lines. The next tactic acts on the main goal, so when a
state must be shortened (a character limit, or the model's window), it loses,
in this order:

1. trailing goals, the last first;
2. the main goal's earliest hypotheses (a hypothesis wrapped over several lines
   goes whole);

and never the main goal's ``case`` line or its target. Text that is not in
this shape (no ``⊢`` or conv ``|`` target line) keeps its tail instead, as it
would with no structure to go by. Pure functions; the engine decides what fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Goal", "GoalDoesNotFit", "keep_tail", "parse_goal", "shorten_state"]

GOAL_SEPARATOR = "\n\n"
#: How a target line starts: ``⊢`` for a tactic goal, ``|`` for a conv goal.
TARGET_MARKS = ("⊢ ", "| ")


class GoalDoesNotFit(ValueError):
    """Even the main goal's ``case`` line and target alone do not fit."""


@dataclass(frozen=True)
class Goal:
    """One goal as ``ppGoal`` prints it."""

    #: The ``case`` line, or "".
    case: str
    #: Hypotheses, each with its continuation lines.
    hypotheses: tuple[str, ...]
    #: The target, from its ``⊢`` (or ``|``) line to the end.
    target: str

    def render(self, drop: int = 0) -> str:
        """The goal without its first ``drop`` hypotheses."""
        lines = ([self.case] if self.case else []) + list(self.hypotheses[drop:]) + [self.target]
        return "\n".join(lines)


def parse_goal(text: str) -> Goal | None:
    """``text`` split into its parts; None when it has no target line (not ``ppGoal``'s shape)."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith(TARGET_MARKS)]
    if not starts:
        return None
    target_at = starts[0]
    head = lines[:target_at]
    case = head.pop(0) if head and head[0].startswith("case ") else ""
    hypotheses: list[str] = []
    for line in head:
        if hypotheses and line[:1].isspace():  # a wrapped hypothesis goes on, indented
            hypotheses[-1] += "\n" + line
        else:
            hypotheses.append(line)
    return Goal(case, tuple(hypotheses), "\n".join(lines[target_at:]))


def _fewest(n: int, fits: Callable[[int], bool]) -> int | None:
    """The smallest ``k`` in ``0..n`` with ``fits(k)``, for ``fits`` false then true as ``k`` grows; None if none."""
    if not fits(n):
        return None
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def shorten_state(state: str, fits: Callable[[str], bool]) -> tuple[str, int]:
    """The longest shortening of ``state`` that ``fits``, in the order the module names, and the characters cut.

    ``fits`` must be monotone (a shorter text fits whenever a longer one does); it is called
    O(log) times, so it may count tokens. Raises GoalDoesNotFit when the main goal's target
    alone does not fit.
    """
    if fits(state):
        return state, 0
    goals = state.split(GOAL_SEPARATOR)
    main = parse_goal(goals[0])
    if main is None:
        return keep_tail(state, fits)
    # 1. Trailing goals: keep the most that fit with the whole main goal.
    dropped = _fewest(len(goals) - 1, lambda k: fits(GOAL_SEPARATOR.join(goals[: len(goals) - k])))
    if dropped is not None:
        kept = GOAL_SEPARATOR.join(goals[: len(goals) - dropped])
        return kept, len(state) - len(kept)
    # 2. The main goal alone, without its earliest hypotheses.
    drop = _fewest(len(main.hypotheses), lambda d: fits(main.render(d)))
    if drop is None:
        raise GoalDoesNotFit("the main goal's target does not fit even without its hypotheses and the other goals")
    kept = main.render(drop)
    return kept, len(state) - len(kept)


def keep_tail(text: str, fits: Callable[[str], bool]) -> tuple[str, int]:
    """Text without goal structure (a state in another shape, the file context): drop the fewest leading
    characters so that the rest ``fits``, and say how many; GoalDoesNotFit when not even "" fits."""
    cut = _fewest(len(text), lambda c: fits(text[c:]))
    if cut is None:
        raise GoalDoesNotFit("even an empty state does not fit")
    return text[cut:], cut
