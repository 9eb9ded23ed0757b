"""Shortening a tactic state keeps the main goal's target: trailing goals go first, then its earliest hypotheses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmstep.protocol.goals import GoalDoesNotFit, Shortening, parse_goal, shorten_state

MAIN = "case left\nα : Type u_1\ns t : Set α\nh : s ⊆ t\n⊢ s ∩ t = s"
SECOND = "case right\nα : Type u_1\ns t : Set α\nh : s ⊆ t\n⊢ s ∪ t = t"
THIRD = "case other\nn : ℕ\n⊢ n + 0 = n"
STATE = "\n\n".join([MAIN, SECOND, THIRD])


def within(limit: int) -> Callable[[Shortening], bool]:
    """A ``fits`` that allows at most ``limit`` characters."""
    return lambda s: len(s.text) <= limit


def cut(state: str, limit: int) -> tuple[str, int]:
    """What is kept of ``state`` within ``limit`` characters, and how much is cut; checks the two agree."""
    s = shorten_state(state, within(limit))
    assert s.cut == len(state) - len(s.text)
    return s.text, s.cut


def test_a_state_that_fits_is_left_alone() -> None:
    assert cut(STATE, len(STATE)) == (STATE, 0)


def test_trailing_goals_go_first_and_the_main_goal_stays_whole() -> None:
    two = MAIN + "\n\n" + SECOND
    kept, n = cut(STATE, len(two))
    assert kept == two and n == len(STATE) - len(two)
    kept, n = cut(STATE, len(MAIN))
    assert kept == MAIN and n == len(STATE) - len(MAIN)


def test_then_the_earliest_hypotheses_but_never_the_case_line_or_the_target() -> None:
    kept, n = cut(STATE, len(MAIN) - 1)
    assert kept == "case left\ns t : Set α\nh : s ⊆ t\n⊢ s ∩ t = s"
    assert n == len(STATE) - len(kept)
    assert cut(STATE, len("case left\n⊢ s ∩ t = s"))[0] == "case left\n⊢ s ∩ t = s"


def test_a_wrapped_hypothesis_goes_whole_and_a_wrapped_target_stays_whole() -> None:
    goal = "f : ℕ → ℕ\nh : ∀ (x : ℕ),\n    f x = x\nk : ℕ\n⊢ f (f k) =\n    k"
    parsed = parse_goal(goal)
    assert parsed is not None
    assert parsed.hypotheses == ("f : ℕ → ℕ", "h : ∀ (x : ℕ),\n    f x = x", "k : ℕ")
    assert parsed.target == "⊢ f (f k) =\n    k"
    kept, _ = cut(goal, len("k : ℕ\n⊢ f (f k) =\n    k"))
    assert kept == "k : ℕ\n⊢ f (f k) =\n    k"


def test_conv_goals_have_a_bar_for_a_target() -> None:
    goal = "a b : ℕ\nh : a = b\n| a + 0"
    assert cut(goal, len("h : a = b\n| a + 0"))[0] == "h : a = b\n| a + 0"


def test_a_target_too_long_on_its_own_is_refused_not_cut() -> None:
    with pytest.raises(GoalDoesNotFit):
        shorten_state(STATE, within(len("case left\n⊢ s ∩ t = s") - 1))


def test_text_in_another_shape_keeps_its_tail() -> None:
    text = "some free-form description of a goal"
    kept, n = cut(text, 10)
    assert kept == text[-10:] and n == len(text) - 10


def test_the_fit_is_asked_a_logarithmic_number_of_times() -> None:
    """``fits`` may count tokens; 400 hypotheses and 50 goals need a few dozen calls, not hundreds."""
    main = "\n".join(f"h{i} : x{i} ≤ x{i + 1}" for i in range(400)) + "\n⊢ x0 ≤ x400"
    state = "\n\n".join([main] + [f"⊢ goal {i}" for i in range(50)])
    calls = 0

    def fits(s: Shortening) -> bool:
        nonlocal calls
        calls += 1
        return len(s.text) <= 1000

    kept = shorten_state(state, fits).text
    assert kept.endswith("⊢ x0 ≤ x400") and len(kept) <= 1000 and "h399 : x399 ≤ x400" in kept
    assert calls <= 2 + 2 * (6 + 9)
