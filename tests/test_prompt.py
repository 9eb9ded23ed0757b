"""The prompt format: what the model sees, and which part of its output is the tactic."""

from llmstep.protocol.prompt import LLMSTEP_FORMAT, cut_at_first_stop, join_suggestion


def test_render_matches_llmstep_format() -> None:
    assert LLMSTEP_FORMAT.render("⊢ 2 = 2", "exact") == "[GOAL]⊢ 2 = 2[PROOFSTEP]exact"
    assert LLMSTEP_FORMAT.render("⊢ True") == "[GOAL]⊢ True[PROOFSTEP]"


def test_render_leaves_braces_in_the_state_alone() -> None:
    state = "α : Type\n{x : α} : {y // y = x}\n⊢ {0}"
    assert LLMSTEP_FORMAT.render(state, "{") == f"[GOAL]{state}[PROOFSTEP]{{"


def test_a_step_ends_at_the_first_of_the_formats_stop_strings() -> None:
    def cut(text: str) -> str:
        return cut_at_first_stop(text, LLMSTEP_FORMAT.stop)[0]

    assert cut(" simp[END]junk") == " simp"
    assert cut(" simp\nnext") == " simp"
    assert cut(" a\nb[END]") == " a"
    assert cut(" rfl[GOAL]⊢ x") == " rfl"
    assert cut(" no stop") == " no stop"
    assert cut_at_first_stop(" no stop", LLMSTEP_FORMAT.stop) == (" no stop", False)
    assert cut_at_first_stop(" x", ["", "x"]) == (" ", True)  # an empty stop string ends nothing


def test_join_keeps_the_prefix_and_strips() -> None:
    assert join_suggestion("exact", " h ") == "exact h"
    assert join_suggestion("", "  simp") == "simp"
    assert join_suggestion("", "   ") == ""
