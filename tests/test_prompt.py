"""The prompt format: what the model sees, and which part of its output is the tactic."""

from llmstep.protocol.prompt import LLMSTEP_FORMAT, join_suggestion


def test_render_matches_llmstep_format() -> None:
    assert LLMSTEP_FORMAT.render("⊢ 2 = 2", "exact") == "[GOAL]⊢ 2 = 2[PROOFSTEP]exact"
    assert LLMSTEP_FORMAT.render("⊢ True") == "[GOAL]⊢ True[PROOFSTEP]"


def test_render_leaves_braces_in_the_state_alone() -> None:
    state = "α : Type\n{x : α} : {y // y = x}\n⊢ {0}"
    assert LLMSTEP_FORMAT.render(state, "{") == f"[GOAL]{state}[PROOFSTEP]{{"


def test_cut_stops_at_the_first_stop_string() -> None:
    assert LLMSTEP_FORMAT.cut(" simp[END]junk") == " simp"
    assert LLMSTEP_FORMAT.cut(" simp\nnext") == " simp"
    assert LLMSTEP_FORMAT.cut(" a\nb[END]") == " a"
    assert LLMSTEP_FORMAT.cut(" rfl[GOAL]⊢ x") == " rfl"
    assert LLMSTEP_FORMAT.cut(" no stop") == " no stop"


def test_join_keeps_the_prefix_and_strips() -> None:
    assert join_suggestion("exact", " h ") == "exact h"
    assert join_suggestion("", "  simp") == "simp"
    assert join_suggestion("", "   ") == ""
