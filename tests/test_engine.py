"""The engine: ranking, defaults, errors, the cache, batching and fitting long states."""

import asyncio
from dataclasses import replace

import pytest

from llmstep.backends.base import Candidate
from llmstep.config import DecodingConfig, EngineConfig
from llmstep.engine import SuggestionEngine, Suggestions
from llmstep.engine.cache import LRUCache
from llmstep.errors import BackendError, ContextTooLong, GenerationTimeout
from llmstep.protocol.prompt import PromptFormat

from doubles import ByPromptBackend, CharWindowBackend, FailingBackend, ScriptedBackend, SlowBackend


def test_suggestions_keep_prefix_merge_duplicates_and_rank() -> None:
    backend = ScriptedBackend(
        [
            Candidate(" h", -0.5),
            Candidate(" Nat.le_refl n", -0.1),
            Candidate(" h ", -0.2),  # the same tactic once stripped, with a better score
            Candidate("   ", -0.01),  # empty once stripped: dropped... unless the prefix alone is a tactic
        ]
    )
    out = asyncio.run(SuggestionEngine(backend).suggest("⊢ n ≤ n", "exact")).items
    assert [(s.tactic, s.score) for s in out] == [
        ("exact", -0.01),
        ("exact Nat.le_refl n", -0.1),
        ("exact h", -0.2),
    ]
    assert all(s.tactic.startswith("exact") for s in out)


def test_empty_suggestions_are_dropped_without_prefix() -> None:
    backend = ScriptedBackend([Candidate("", -0.1), Candidate("  ", -0.2), Candidate("simp", -1.0)])
    assert [s.tactic for s in asyncio.run(SuggestionEngine(backend).suggest("⊢ True")).items] == ["simp"]


def test_prompt_and_parameters_reach_the_backend() -> None:
    backend = ScriptedBackend([])
    engine = SuggestionEngine(backend, DecodingConfig(num_samples=7, temperature=0.3, max_new_tokens=50))
    asyncio.run(engine.suggest("⊢ p", "intro", num_samples=12))
    asyncio.run(engine.suggest("⊢ q", temperature=0.0, max_new_tokens=9))
    (p1, params1), (_, params2) = backend.calls
    assert p1 == ["[GOAL]⊢ p[PROOFSTEP]intro"]
    assert (params1.num_samples, params1.temperature, params1.max_new_tokens) == (12, 0.3, 50)
    assert (params2.num_samples, params2.temperature, params2.max_new_tokens) == (7, 0.0, 9)
    assert "[END]" in params1.stop and "\n" in params1.stop


def test_a_request_for_fewer_suggestions_gets_the_servers_width_and_the_best_few() -> None:
    """Lean asks for 5; a preset that searches 8 beams wide must still search 8 wide, and show the best 5."""
    ranked = [Candidate(f" t{i}", -0.1 * i) for i in range(8)]
    backend = ScriptedBackend(ranked)
    engine = SuggestionEngine(backend, DecodingConfig(decoding="beam", num_samples=8))
    five = asyncio.run(engine.suggest("⊢ p", "", num_samples=5))
    ((_, params),) = backend.calls
    assert params.num_samples == 8 and params.decoding == "beam"
    assert [s.tactic for s in five.items] == ["t0", "t1", "t2", "t3", "t4"]
    every = asyncio.run(engine.suggest("⊢ p", ""))  # the same search: from the cache, all 8
    assert every.cached and len(every.items) == 8 and len(backend.calls) == 1


def test_backend_exception_becomes_backend_error() -> None:
    engine = SuggestionEngine(FailingBackend(failures=1))
    with pytest.raises(BackendError, match="device-side assert"):
        asyncio.run(engine.suggest("⊢ True"))
    assert [s.tactic for s in asyncio.run(engine.suggest("⊢ True")).items] == ["ok"]


def test_repeated_requests_come_from_the_cache() -> None:
    backend = ScriptedBackend([Candidate(" simp", -0.1)])
    engine = SuggestionEngine(backend)
    first = asyncio.run(engine.suggest("⊢ p", ""))
    again = asyncio.run(engine.suggest("⊢ p", ""))
    assert not first.cached and again.cached and again.items == first.items
    assert len(backend.calls) == 1
    asyncio.run(engine.suggest("⊢ p", "s"))  # another prefix
    assert asyncio.run(engine.suggest("⊢ p", "", num_samples=3)).cached  # fewer wanted: the same decoding
    asyncio.run(engine.suggest("⊢ p", "", temperature=0.9))  # other decoding parameters
    asyncio.run(engine.suggest("⊢ p", "", context="-- a file"))  # llmstep's format ignores context: still a hit
    assert len(backend.calls) == 3
    assert engine.stats()["cache_hits"] == 3 and engine.stats()["cache_misses"] == 3


def test_cache_size_zero_turns_it_off() -> None:
    backend = ScriptedBackend([Candidate(" simp", -0.1)])
    engine = SuggestionEngine(backend, config=EngineConfig(cache_size=0))
    asyncio.run(engine.suggest("⊢ p"))
    asyncio.run(engine.suggest("⊢ p"))
    assert len(backend.calls) == 2


def test_cache_evicts_the_least_recently_used() -> None:
    cache: LRUCache[int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3


def test_concurrent_requests_share_a_backend_call() -> None:
    backend = SlowBackend(delay_s=0.3)
    engine = SuggestionEngine(backend, config=EngineConfig(cache_size=0, batch_window_ms=50, max_batch_size=8))
    states = [f"⊢ goal {i}" for i in range(6)]

    async def all_at_once() -> list[Suggestions]:
        return await asyncio.gather(*(engine.suggest(s) for s in states))

    results = asyncio.run(all_at_once())
    # Each request got its own answer back, from fewer backend calls than requests.
    assert [r.items[0].tactic for r in results] == [f"echo {len(f'[GOAL]{s}[PROOFSTEP]')}" for s in states]
    assert len(backend.batches) < len(states)
    assert max(len(b) for b in backend.batches) > 1
    assert engine.stats()["largest_batch"] > 1
    assert sorted(p for b in backend.batches for p in b) == sorted(f"[GOAL]{s}[PROOFSTEP]" for s in states)


def test_requests_with_other_parameters_are_not_merged() -> None:
    backend = SlowBackend(delay_s=0.2)
    engine = SuggestionEngine(backend, config=EngineConfig(cache_size=0, batch_window_ms=100))

    async def both() -> None:
        await asyncio.gather(engine.suggest("⊢ a", temperature=0.2), engine.suggest("⊢ b", temperature=0.9))

    asyncio.run(both())
    assert sorted(len(batch) for batch in backend.batches) == [1, 1]


def test_a_request_past_its_deadline_is_a_timeout() -> None:
    engine = SuggestionEngine(SlowBackend(delay_s=1.0), config=EngineConfig(request_timeout_s=0.1))
    with pytest.raises(GenerationTimeout, match="deadline"):
        asyncio.run(engine.suggest("⊢ slow"))


def test_a_long_state_loses_its_earliest_hypotheses_never_its_target() -> None:
    backend = CharWindowBackend(context_window=100)
    engine = SuggestionEngine(backend, DecodingConfig(max_new_tokens=20))
    state = "\n".join(f"h{i} : x{i} ≤ x{i + 1}" for i in range(10)) + "\n⊢ the goal"
    result = asyncio.run(engine.suggest(state, "exact"))
    (prompt,), _ = backend.calls[0]
    assert len(prompt) <= 80 and prompt.startswith("[GOAL]") and prompt.endswith("\n⊢ the goal[PROOFSTEP]exact")
    assert "h9 : x9 ≤ x10" in prompt and "h0 : " not in prompt  # the latest hypotheses stay
    kept = prompt.removeprefix("[GOAL]").removesuffix("[PROOFSTEP]exact")
    assert state.endswith(kept) and result.truncated_chars == len(state) - len(kept)
    assert not asyncio.run(engine.suggest("⊢ short", "exact")).truncated


def test_a_long_multi_goal_state_keeps_the_main_goal_whole() -> None:
    """Lean sends the main goal first: the goals after it go before any of its hypotheses."""
    backend = CharWindowBackend(context_window=100)
    engine = SuggestionEngine(backend, DecodingConfig(max_new_tokens=20))
    main = "case left\na b : ℕ\nh : a ≤ b\n⊢ a ≤ b + 1"
    state = main + "\n\ncase right\n" + "c : ℕ\n" * 20 + "⊢ c = c"
    result = asyncio.run(engine.suggest(state, "exact"))
    (prompt,), _ = backend.calls[0]
    assert prompt == f"[GOAL]{main}[PROOFSTEP]exact"
    assert result.truncated_chars == len(state) - len(main)


def test_a_max_state_chars_cap_keeps_the_main_goal_too() -> None:
    backend = CharWindowBackend(context_window=10_000)
    engine = SuggestionEngine(backend, config=EngineConfig(max_state_chars=60))
    main = "n : ℕ\nh : 0 < n\n⊢ n ≠ 0"
    result = asyncio.run(engine.suggest(main + "\n\n" + "⊢ other goal that is long enough to be cut" * 2, "exact"))
    (prompt,), _ = backend.calls[0]
    assert prompt == f"[GOAL]{main}[PROOFSTEP]exact" and result.truncated


def test_a_prefix_that_cannot_fit_is_context_too_long() -> None:
    engine = SuggestionEngine(CharWindowBackend(context_window=40), DecodingConfig(max_new_tokens=20))
    with pytest.raises(ContextTooLong, match="40-token window"):
        asyncio.run(engine.suggest("⊢ p", "exact " + "a" * 30))


CONTEXT_FORMAT = PromptFormat(name="ctx-test", template="{context}[GOAL]{state}[PROOFSTEP]{prefix}", stop=("\n",))


def test_file_context_is_cut_before_the_state() -> None:
    backend = CharWindowBackend(context_window=100)
    engine = SuggestionEngine(backend, DecodingConfig(max_new_tokens=20), prompt_format=CONTEXT_FORMAT)
    context = "theorem a : True := trivial\n" * 10 + "-- nearest the cursor"
    result = asyncio.run(engine.suggest("⊢ the goal", "exact", context=context))
    (prompt,), _ = backend.calls[0]
    assert result.truncated and len(prompt) == 80
    kept = len(prompt) - len("[GOAL]⊢ the goal[PROOFSTEP]exact")  # characters of context still in the prompt
    assert result.truncated_chars == len(context) - kept
    assert prompt.endswith("-- nearest the cursor[GOAL]⊢ the goal[PROOFSTEP]exact")


def test_the_state_is_cut_only_when_no_context_is_left() -> None:
    backend = CharWindowBackend(context_window=100)
    engine = SuggestionEngine(backend, DecodingConfig(max_new_tokens=20), prompt_format=CONTEXT_FORMAT)
    state = "h : " + "x" * 200 + "\nk : ℕ\n⊢ goal"
    result = asyncio.run(engine.suggest(state, "exact", context="-- some file"))
    (prompt,), _ = backend.calls[0]
    assert prompt == "[GOAL]k : ℕ\n⊢ goal[PROOFSTEP]exact"  # no context, and the long hypothesis gone whole
    assert result.truncated_chars == len("-- some file") + len(state) - len("k : ℕ\n⊢ goal")


# A two-prompt format shaped like llmstep's Llemma server: a state prompt, and the file continued.
TWO_PROMPTS = PromptFormat(
    name="two-prompts",
    template="STATE {state} TAC {prefix}",
    extra_templates=("{context}{prefix}",),
    stop=("\n",),
    drop=("sorry", "admit"),
)


def _two_prompt_answers(prompt: str) -> list[Candidate]:
    if prompt.startswith("STATE "):
        return [Candidate("simp", -0.5), Candidate("sorry", -0.01), Candidate("ring", -2.0)]
    return [Candidate("linarith", -0.1), Candidate("simp", -0.2), Candidate(" admit", -0.05)]


def test_several_prompts_are_run_together_and_ranked_as_one() -> None:
    backend = ByPromptBackend(_two_prompt_answers)
    engine = SuggestionEngine(backend, prompt_format=TWO_PROMPTS, config=EngineConfig(batch_window_ms=50))
    result = asyncio.run(engine.suggest("⊢ x = x", "", context="theorem foo : 1 = 1 := by\n  "))
    # Both prompts reach the model in one batch; the file prompt is the context followed by the prefix.
    assert backend.calls == [["STATE ⊢ x = x TAC ", "theorem foo : 1 = 1 := by\n  "]]
    # One ranking across both, duplicates merged at their best score, sorry/admit never shown.
    assert [(s.tactic, s.score) for s in result.items] == [("linarith", -0.1), ("simp", -0.2), ("ring", -2.0)]


def test_a_context_only_prompt_is_skipped_without_context() -> None:
    backend = ByPromptBackend(_two_prompt_answers)
    engine = SuggestionEngine(backend, prompt_format=TWO_PROMPTS)
    result = asyncio.run(engine.suggest("⊢ x = x", ""))
    assert backend.calls == [["STATE ⊢ x = x TAC "]]
    assert [s.tactic for s in result.items] == ["simp", "ring"]


def test_the_file_prompt_keeps_the_end_of_the_context_when_cut() -> None:
    backend = CharWindowBackend(context_window=60)
    fmt = replace(TWO_PROMPTS, template="S {state} T {prefix}")
    engine = SuggestionEngine(backend, DecodingConfig(max_new_tokens=20), prompt_format=fmt)
    context = "x" * 100 + "-- the cursor is here "
    result = asyncio.run(engine.suggest("⊢ p", "exact", context=context))
    (state_prompt, file_prompt), _ = backend.calls[0]
    assert state_prompt == "S ⊢ p T exact"
    assert len(file_prompt) == 40 and file_prompt.endswith("-- the cursor is here exact")
    assert result.truncated_chars == len(context) - (40 - len("exact"))
