"""The transformers backend on a tiny model trained here, loaded as users load theirs."""

import asyncio
import itertools
import threading
from pathlib import Path

import pytest

from llmstep.backends import Backend, load_backend
from llmstep.backends.base import GenerationParams
from llmstep.config import DecodingConfig, EngineConfig, ModelConfig
from llmstep.engine import SuggestionEngine
from llmstep.errors import ConfigError, ModelUnavailable
from llmstep.protocol.prompt import Prompt

from support import own_pairs

PAIRS = own_pairs()


@pytest.mark.parametrize("decoding", ["sample", "beam"])
@pytest.mark.parametrize(("state", "tactic"), PAIRS, ids=[t for _, t in PAIRS])
def test_trained_pair_is_the_top_suggestion(hf_backend: Backend, decoding: str, state: str, tactic: str) -> None:
    engine = SuggestionEngine(hf_backend, DecodingConfig(decoding=decoding, num_samples=4, seed=0))
    assert asyncio.run(engine.suggest(state)).items[0].tactic == tactic


def test_prefix_is_continued(hf_backend: Backend) -> None:
    engine = SuggestionEngine(hf_backend, DecodingConfig(decoding="beam", num_samples=4))
    out = asyncio.run(engine.suggest("a b : Nat\nh : a ≤ b\n⊢ a + 1 ≤ b + 1", "exact Nat.")).items
    assert out[0].tactic == "exact Nat.succ_le_succ h"
    assert all(s.tactic.startswith("exact Nat.") for s in out)


def test_candidates_end_at_stops_and_are_ranked(hf_backend: Backend) -> None:
    engine = SuggestionEngine(hf_backend, DecodingConfig(decoding="beam", num_samples=8))
    # Unseen: many distinct, imperfect answers.
    out = asyncio.run(engine.suggest("x y : Nat\n⊢ x * y = y * x", "")).items
    assert len(out) > 1
    assert len({s.tactic for s in out}) == len(out)
    for s in out:
        assert s.tactic == s.tactic.strip() and s.tactic
        assert "\n" not in s.tactic and "[END]" not in s.tactic and "[PROOFSTEP]" not in s.tactic
        assert s.score <= 0.0
    scores = [s.score for s in out]
    assert scores == sorted(scores, reverse=True)


def test_one_call_returns_every_sample(hf_backend: Backend) -> None:
    params = GenerationParams(num_samples=6, temperature=1.5, max_new_tokens=12, seed=1)
    (cands,) = hf_backend.generate([Prompt("[GOAL]x y : Nat\n⊢ x * y = y * x[PROOFSTEP]")], params)
    assert len(cands) == 6


def test_seeded_sampling_is_reproducible(hf_backend: Backend) -> None:
    params = GenerationParams(num_samples=5, temperature=1.5, max_new_tokens=16, seed=3)
    prompt = [Prompt("[GOAL]q : Prop\n⊢ q ∨ ¬q[PROOFSTEP]")]
    assert hf_backend.generate(prompt, params) == hf_backend.generate(prompt, params)


def test_greedy_at_temperature_zero(hf_backend: Backend) -> None:
    engine = SuggestionEngine(hf_backend, DecodingConfig(temperature=0.0))
    out = asyncio.run(engine.suggest("⊢ 2 + 2 = 4")).items
    assert [s.tactic for s in out] == ["decide"]


def test_max_new_tokens_bounds_the_length(hf_backend: Backend) -> None:
    prompt = [Prompt("[GOAL]n : Nat\n⊢ n + 0 = n[PROOFSTEP]exact Nat.succ_le")]

    def texts(max_new_tokens: int) -> list[str]:
        params = GenerationParams(num_samples=2, temperature=1.0, max_new_tokens=max_new_tokens, seed=0)
        return [c.text for c in hf_backend.generate(prompt, params)[0]]

    # Same seed, same draws: a shorter budget yields a prefix of the longer answer.
    short, long = texts(1), texts(40)
    assert all(b.startswith(a) for a, b in zip(short, long, strict=True))
    assert any(len(a) < len(b) for a, b in zip(short, long, strict=True))


def test_missing_model_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as info:
        load_backend(ModelConfig(model=str(tmp_path / "no-such-model"), device="cpu"))
    message = info.value.message
    assert (
        "no-such-model" in message and "does not exist" in message and "--model DIR" in message and "\n" not in message
    )


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"choose one of: .*hf"):
        load_backend(ModelConfig(model="x", backend="nope"))


PROMPTS = [Prompt(f"[GOAL]{state}[PROOFSTEP]") for state, _ in PAIRS[:4]]  # different lengths: the batch is padded


def test_shared_prefill_gives_what_per_sample_prefill_gives(hf_backend: Backend) -> None:
    params = GenerationParams(num_samples=4, temperature=1.0, max_new_tokens=16, seed=5)
    fast = hf_backend.generate(PROMPTS, params)
    hf_backend.shared_prefill = False  # type: ignore[attr-defined]
    try:
        plain = hf_backend.generate(PROMPTS, params)
    finally:
        hf_backend.shared_prefill = True  # type: ignore[attr-defined]
    assert [[c.text for c in row] for row in fast] == [[c.text for c in row] for row in plain]
    for row_fast, row_plain in zip(fast, plain, strict=True):
        for a, b in zip(row_fast, row_plain, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)


@pytest.mark.parametrize("decoding", ["sample", "beam"])
def test_a_padded_batch_answers_like_single_prompts(hf_backend: Backend, decoding: str) -> None:
    params = GenerationParams(num_samples=3, temperature=0.0, decoding=decoding, max_new_tokens=24)
    batched = hf_backend.generate(PROMPTS, params)
    single = [hf_backend.generate([p], params)[0] for p in PROMPTS]
    assert [[c.text for c in row] for row in batched] == [[c.text for c in row] for row in single]
    assert [row[0].text.strip() for row in batched] == [t for _, t in PAIRS[:4]]


def test_counting_tokens_while_a_padded_batch_is_encoded(hf_backend: Backend) -> None:
    """A fast tokenizer's padding state is shared: the engine's token counting on request threads
    once switched padding off under the batcher's padded batch (HTTP 500s under load)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def count() -> None:
        while not stop.is_set():
            hf_backend.encode(PROMPTS[0].text)  # type: ignore[attr-defined]

    counters = [threading.Thread(target=count) for _ in range(3)]
    for t in counters:
        t.start()
    try:
        params = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=1)
        for _ in range(60):
            try:
                hf_backend.generate(PROMPTS, params)
            except Exception as exc:
                errors.append(exc)
    finally:
        stop.set()
        for t in counters:
            t.join()
    assert not errors, errors[0]


@pytest.mark.parametrize("decoding", ["sample", "beam"])
def test_generation_stops_after_the_token_where_it_is_told_to(hf_backend: Backend, decoding: str) -> None:
    """``should_stop`` is polled after every token: a batch nobody waits for ends there."""
    params = GenerationParams(num_samples=3, max_new_tokens=100, decoding=decoding, stop=(), seed=0)
    prompt = "[GOAL]x : Nat\n⊢ x = x[PROOFSTEP]"
    (full,) = hf_backend.generate([Prompt(prompt)], params)
    asked = itertools.count()
    (cut,) = hf_backend.generate([Prompt(prompt)], params, should_stop=lambda: next(asked) >= 2)
    assert max(len(c.token_logprobs) for c in full) > 3  # with no stop string the model runs on past [END]
    assert cut and all(len(c.token_logprobs) <= 3 for c in cut)


def test_seeded_requests_batched_together_answer_as_each_alone(hf_backend: Backend) -> None:
    """A backend that batches seeds once per call (here a model decoded by whole ``generate`` calls), so the
    batcher keeps a seeded request out of other requests' batches: sent together inside one batch window,
    each gets the samples it gets alone. Unseeded requests still share batches."""
    config = EngineConfig(cache_size=0, batch_window_ms=200, max_batch_size=8)
    states = [state for state, _ in PAIRS[:4]]

    def run(seed: int | None) -> tuple[list[list[str]], list[list[str]], dict[str, int]]:
        engine = SuggestionEngine(hf_backend, DecodingConfig(temperature=1.5, num_samples=6, seed=seed), config=config)

        async def alone() -> list[list[str]]:
            return [[s.tactic for s in (await engine.suggest(st)).items] for st in states]

        async def together() -> list[list[str]]:
            replies = await asyncio.gather(*(engine.suggest(st) for st in states))
            return [[s.tactic for s in r.items] for r in replies]

        try:
            return asyncio.run(alone()), asyncio.run(together()), engine.stats()
        finally:
            engine.close()

    hf_backend.continuous = False  # type: ignore[attr-defined]
    try:
        one_by_one, at_once, stats = run(seed=5)
        _, _, unseeded = run(seed=None)
    finally:
        hf_backend.continuous = True  # type: ignore[attr-defined]
    assert at_once == one_by_one and len({tuple(x) for x in one_by_one}) > 1
    assert stats["largest_batch"] == 1 and unseeded["largest_batch"] > 1
