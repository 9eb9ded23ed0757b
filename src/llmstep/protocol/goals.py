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
would with no structure to go by. A shortening is a set of character ranges
removed from the text, so that whoever decides what fits can count it from
one tokenization of the whole text (``engine.fit``), without building and
counting every candidate. Pure functions; the engine decides what fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Goal", "GoalDoesNotFit", "Shortening", "Span", "keep_tail", "parse_goal", "shorten_state", "shortest"]

GOAL_SEPARATOR = "\n\n"
#: How a target line starts: ``⊢`` for a tactic goal, ``|`` for a conv goal.
TARGET_MARKS = ("⊢ ", "| ")

#: A character range ``[start, end)`` of a text.
Span = tuple[int, int]


class GoalDoesNotFit(ValueError):
    """Even the main goal's ``case`` line and target alone do not fit."""


@dataclass(frozen=True)
class Shortening:
    """``source`` less the character ranges ``removed`` (in order, disjoint)."""

    source: str
    removed: tuple[Span, ...] = ()

    @classmethod
    def nothing_of(cls, source: str) -> Shortening:
        """All of ``source`` removed."""
        return cls(source, ((0, len(source)),) if source else ())

    @property
    def text(self) -> str:
        """What is left."""
        pieces, at = [], 0
        for start, end in self.removed:
            pieces.append(self.source[at:start])
            at = end
        pieces.append(self.source[at:])
        return "".join(pieces)

    @property
    def cut(self) -> int:
        """Characters removed."""
        return sum(end - start for start, end in self.removed)


@dataclass(frozen=True)
class Goal:
    """One goal as ``ppGoal`` prints it."""

    #: The ``case`` line, or "".
    case: str
    #: Hypotheses, each with its continuation lines.
    hypotheses: tuple[str, ...]
    #: The target, from its ``⊢`` (or ``|``) line to the end.
    target: str

    def hypothesis_start(self, index: int) -> int:
        """Where hypothesis ``index`` starts in the goal's text; the target's start for ``len(hypotheses)``."""
        at = len(self.case) + 1 if self.case else 0
        return at + sum(len(h) + 1 for h in self.hypotheses[:index])


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


def _trailing(state: str, goals: list[str], k: int) -> tuple[Span, ...]:
    """The range that holds the last ``k`` goals of ``state``."""
    end = len(GOAL_SEPARATOR.join(goals[: len(goals) - k]))
    return ((end, len(state)),) if end < len(state) else ()


def _main_without(state: str, goals: list[str], main: Goal, d: int) -> Shortening:
    """The main goal alone, without its first ``d`` hypotheses."""
    first, kept = main.hypothesis_start(0), main.hypothesis_start(d)
    early = ((first, kept),) if kept > first else ()
    return Shortening(state, early + _trailing(state, goals, len(goals) - 1))


def shorten_state(state: str, fits: Callable[[Shortening], bool]) -> Shortening:
    """The longest shortening of ``state`` that ``fits``, in the order the module names.

    ``fits`` must be monotone (a shorter text fits whenever a longer one does); it is called
    O(log) times. Raises GoalDoesNotFit when the main goal's target alone does not fit.
    """
    whole = Shortening(state)
    if fits(whole):
        return whole
    goals = state.split(GOAL_SEPARATOR)
    main = parse_goal(goals[0])
    if main is None:
        return keep_tail(state, fits)
    # 1. Trailing goals: keep the most that fit with the whole main goal.
    dropped = _fewest(len(goals) - 1, lambda k: fits(Shortening(state, _trailing(state, goals, k))))
    if dropped is not None:
        return Shortening(state, _trailing(state, goals, dropped))
    # 2. The main goal alone, without its earliest hypotheses.
    drop = _fewest(len(main.hypotheses), lambda d: fits(_main_without(state, goals, main, d)))
    if drop is None:
        raise GoalDoesNotFit("the main goal's target does not fit even without its hypotheses and the other goals")
    return _main_without(state, goals, main, drop)


def shortest(state: str) -> Shortening:
    """The least that ``shorten_state`` ever keeps: the main goal's ``case`` line and target; nothing, for
    text in another shape. When that does not fit, nothing does."""
    goals = state.split(GOAL_SEPARATOR)
    main = parse_goal(goals[0])
    if main is None:
        return Shortening.nothing_of(state)
    return _main_without(state, goals, main, len(main.hypotheses))


def keep_tail(text: str, fits: Callable[[Shortening], bool]) -> Shortening:
    """Text without goal structure (a state in another shape, the file context): drop the fewest leading
    characters so that the rest ``fits``; GoalDoesNotFit when not even "" fits."""

    def without_first(c: int) -> Shortening:
        return Shortening(text, ((0, c),) if c else ())

    cut = _fewest(len(text), lambda c: fits(without_first(c)))
    if cut is None:
        raise GoalDoesNotFit("even an empty state does not fit")
    return without_first(cut)
