"""Shortening a tactic state keeps the main goal's target: trailing goals go first, then its earliest hypotheses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmstep.protocol.goals import GoalDoesNotFit, parse_goal, shorten_state

MAIN = "case left\nα : Type u_1\ns t : Set α\nh : s ⊆ t\n⊢ s ∩ t = s"
SECOND = "case right\nα : Type u_1\ns t : Set α\nh : s ⊆ t\n⊢ s ∪ t = t"
THIRD = "case other\nn : ℕ\n⊢ n + 0 = n"
STATE = "\n\n".join([MAIN, SECOND, THIRD])


def within(limit: int) -> Callable[[str], bool]:
    """A ``fits`` that allows at most ``limit`` characters."""
    return lambda text: len(text) <= limit


def test_a_state_that_fits_is_left_alone() -> None:
    assert shorten_state(STATE, within(len(STATE))) == (STATE, 0)


def test_trailing_goals_go_first_and_the_main_goal_stays_whole() -> None:
    two = MAIN + "\n\n" + SECOND
    kept, cut = shorten_state(STATE, within(len(two)))
    assert kept == two and cut == len(STATE) - len(two)
    kept, cut = shorten_state(STATE, within(len(MAIN)))
    assert kept == MAIN and cut == len(STATE) - len(MAIN)


def test_then_the_earliest_hypotheses_but_never_the_case_line_or_the_target() -> None:
    kept, cut = shorten_state(STATE, within(len(MAIN) - 1))
    assert kept == "case left\ns t : Set α\nh : s ⊆ t\n⊢ s ∩ t = s"
    assert cut == len(STATE) - len(kept)
    assert shorten_state(STATE, within(len("case left\n⊢ s ∩ t = s")))[0] == "case left\n⊢ s ∩ t = s"


def test_a_wrapped_hypothesis_goes_whole_and_a_wrapped_target_stays_whole() -> None:
    goal = "f : ℕ → ℕ\nh : ∀ (x : ℕ),\n    f x = x\nk : ℕ\n⊢ f (f k) =\n    k"
    parsed = parse_goal(goal)
    assert parsed is not None
    assert parsed.hypotheses == ("f : ℕ → ℕ", "h : ∀ (x : ℕ),\n    f x = x", "k : ℕ")
    assert parsed.target == "⊢ f (f k) =\n    k"
    kept, _ = shorten_state(goal, within(len("k : ℕ\n⊢ f (f k) =\n    k")))
    assert kept == "k : ℕ\n⊢ f (f k) =\n    k"


def test_conv_goals_have_a_bar_for_a_target() -> None:
    goal = "a b : ℕ\nh : a = b\n| a + 0"
    assert shorten_state(goal, within(len("h : a = b\n| a + 0")))[0] == "h : a = b\n| a + 0"


def test_a_target_too_long_on_its_own_is_refused_not_cut() -> None:
    with pytest.raises(GoalDoesNotFit):
        shorten_state(STATE, within(len("case left\n⊢ s ∩ t = s") - 1))


def test_text_in_another_shape_keeps_its_tail() -> None:
    text = "some free-form description of a goal"
    kept, cut = shorten_state(text, within(10))
    assert kept == text[-10:] and cut == len(text) - 10


def test_the_fit_is_asked_a_logarithmic_number_of_times() -> None:
    """``fits`` may count tokens; 400 hypotheses and 50 goals need a few dozen calls, not hundreds."""
    main = "\n".join(f"h{i} : x{i} ≤ x{i + 1}" for i in range(400)) + "\n⊢ x0 ≤ x400"
    state = "\n\n".join([main] + [f"⊢ goal {i}" for i in range(50)])
    calls = 0

    def fits(text: str) -> bool:
        nonlocal calls
        calls += 1
        return len(text) <= 1000

    kept, _ = shorten_state(state, fits)
    assert kept.endswith("⊢ x0 ≤ x400") and len(kept) <= 1000 and "h399 : x399 ≤ x400" in kept
    assert calls <= 2 + 2 * (6 + 9)
