"""The engine: prefix joined, duplicates merged, best first, defaults applied, errors wrapped."""

import pytest

from llmstep.backends.base import Candidate
from llmstep.config import DecodingConfig
from llmstep.engine import SuggestionEngine
from llmstep.errors import BackendError

from doubles import FailingBackend, ScriptedBackend


def test_suggestions_keep_prefix_merge_duplicates_and_rank() -> None:
    backend = ScriptedBackend(
        [
            Candidate(" h", -0.5),
            Candidate(" Nat.le_refl n", -0.1),
            Candidate(" h ", -0.2),  # the same tactic once stripped, with a better score
            Candidate("   ", -0.01),  # empty once stripped: dropped... unless the prefix alone is a tactic
        ]
    )
    out = SuggestionEngine(backend).suggest("⊢ n ≤ n", "exact")
    assert [(s.tactic, s.score) for s in out] == [
        ("exact", -0.01),
        ("exact Nat.le_refl n", -0.1),
        ("exact h", -0.2),
    ]
    assert all(s.tactic.startswith("exact") for s in out)


def test_empty_suggestions_are_dropped_without_prefix() -> None:
    backend = ScriptedBackend([Candidate("", -0.1), Candidate("  ", -0.2), Candidate("simp", -1.0)])
    assert [s.tactic for s in SuggestionEngine(backend).suggest("⊢ True")] == ["simp"]


def test_prompt_and_parameters_reach_the_backend() -> None:
    backend = ScriptedBackend([])
    engine = SuggestionEngine(backend, DecodingConfig(num_samples=7, temperature=0.3, max_new_tokens=50))
    engine.suggest("⊢ p", "intro", num_samples=3)
    engine.suggest("⊢ q", temperature=0.0, max_new_tokens=9)
    (p1, params1), (_, params2) = backend.calls
    assert p1 == ["[GOAL]⊢ p[PROOFSTEP]intro"]
    assert (params1.num_samples, params1.temperature, params1.max_new_tokens) == (3, 0.3, 50)
    assert (params2.num_samples, params2.temperature, params2.max_new_tokens) == (7, 0.0, 9)
    assert "[END]" in params1.stop and "\n" in params1.stop


def test_backend_exception_becomes_backend_error() -> None:
    engine = SuggestionEngine(FailingBackend(failures=1))
    with pytest.raises(BackendError, match="device-side assert"):
        engine.suggest("⊢ True")
    assert [s.tactic for s in engine.suggest("⊢ True")] == ["ok"]
