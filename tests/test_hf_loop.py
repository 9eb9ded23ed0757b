"""The transformers backend's decoding loop: rows retire, new work is admitted between steps, budgets hold.

Real tiny models trained here. Each scenario is held in place by ``should_stop``, which the loop
calls at every step boundary on its own thread: a gate there pauses the whole loop until the test
has seen what it wants, so "while the long request is still decoding" is a state the test
controls, not a matter of timing.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llmstep.backends import load_backend
from llmstep.backends.base import Candidate, GenerationParams, ShouldStop
from llmstep.backends.candidates import repeats_itself
from llmstep.backends.hf import HFBackend
from llmstep.config import DecodingConfig, EngineConfig, ModelConfig, ServeConfig
from llmstep.engine import SuggestionEngine
from llmstep.protocol.prompt import Prompt

from support import LOOP_STATE, LOOP_TACTIC, MIXED_STATE, live_server, own_pairs, wait_until

PAIRS = own_pairs()
PROMPTS = [Prompt(f"[GOAL]{state}[PROOFSTEP]") for state, _ in PAIRS]
WAIT_S = 60

#: On this state the looping model repeats ``hxr.abs := `` for ever; on MIXED_STATE it may, or may close the goal.
#: A row of the looping model that never meets a stop: it runs to max_new_tokens (no loop guard asked).
LONG_PROMPT = Prompt(f"[GOAL]{LOOP_STATE}[PROOFSTEP]")
LONG = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=60)
SHORT = GenerationParams(num_samples=2, temperature=0.0, max_new_tokens=40)


def gate(*waits: tuple[int, Callable[[], bool]]) -> tuple[ShouldStop, list[int]]:
    """A ``should_stop`` that, at its k-th call, waits until ``condition()``; never asks to stop.

    Returns it and the list of its calls so far: call 0 is at admission, call k at the boundary after
    step k. Once ``calls`` has 2 entries the loop is held at boundary 1, with the request decoding.
    """
    calls: list[int] = []
    plan = dict(waits)

    def should_stop() -> bool:
        k = len(calls)
        calls.append(k)
        if k in plan:
            wait_until(plan[k], f"the condition of boundary {k}", WAIT_S)
        return False

    return should_stop, calls


def in_thread(fn: Callable[[], list[list[Candidate]]]) -> Future[list[list[Candidate]]]:
    future: Future[list[list[Candidate]]] = Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def backend_of(model_dir: Path, **settings: int) -> HFBackend:
    backend = load_backend(ModelConfig(model=str(model_dir), device="cpu", **settings))
    assert isinstance(backend, HFBackend)
    return backend


@pytest.fixture
def loop_backend(looping_model_dir: Path) -> Iterator[HFBackend]:
    """The looping model with a decoding loop of its own, whose counters start at zero."""
    backend = backend_of(looping_model_dir)
    yield backend
    backend.close()


def test_the_long_row_runs_to_its_length(loop_backend: HFBackend) -> None:
    (long,) = loop_backend.generate([LONG_PROMPT], LONG)[0]
    assert long.finish_reason == "length" and len(long.token_logprobs) == LONG.max_new_tokens
    assert long.text.startswith("have : hxr.abs := hxr.abs := ")


def test_short_requests_are_answered_while_a_long_one_decodes(loop_backend: HFBackend) -> None:
    hf_backend = loop_backend
    loop = hf_backend.loop
    shorts_answered = threading.Event()
    # Boundary 1: the long row is decoding; hold the loop until the short requests wait to join it.
    # Boundary 30: hold it until they have been answered, which the long row's batch-mates could
    # never be inside one generate() call that runs until its slowest row stops.
    should_stop, calls = gate((1, lambda: loop.waiting == 3), (30, shorts_answered.is_set))
    long = in_thread(lambda: hf_backend.generate([LONG_PROMPT], LONG, should_stop))
    wait_until(lambda: len(calls) >= 2, "the long request decoding", WAIT_S)
    with ThreadPoolExecutor(max_workers=3) as pool:
        shorts = list(pool.map(lambda p: hf_backend.generate([p], SHORT), PROMPTS[1:4]))
    assert not long.done()
    shorts_answered.set()
    (long_rows,) = long.result(timeout=WAIT_S)
    assert [reply[0][0].text.strip() for reply in shorts] == [t for _, t in PAIRS[1:4]]
    assert long_rows[0].finish_reason == "length" and len(long_rows[0].token_logprobs) == LONG.max_new_tokens
    assert len(calls) == LONG.max_new_tokens - 1  # admission, then every step but its last: it ran on past 30


def test_greedy_scores_equal_the_generate_paths(hf_backend: HFBackend) -> None:
    params = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=24)
    looped = hf_backend.generate(PROMPTS, params)
    hf_backend.continuous = False
    try:
        assert not hf_backend.schedules_rows(params)
        generated = hf_backend.generate(PROMPTS, params)
    finally:
        hf_backend.continuous = True
    assert [[c.text for c in row] for row in looped] == [[c.text for c in row] for row in generated]
    for a, b in zip(itertools.chain(*looped), itertools.chain(*generated), strict=True):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_a_stop_string_of_several_tokens_stops_its_row_mid_batch(loop_backend: HFBackend) -> None:
    """``succ_le`` is three tokens of the tiny tokenizer: found in the decoded tail, as it appears."""
    hf_backend = loop_backend
    params = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=40, stop=("succ_le",))
    assert hf_backend._single_token("succ_le") is None
    prompt = f"[GOAL]{PAIRS[1][0]}[PROOFSTEP]"  # the model writes "exact Nat.succ_le_succ h"
    loop = hf_backend.loop
    answered = threading.Event()
    should_stop, calls = gate((1, lambda: loop.waiting == 1), (20, answered.is_set))
    long = in_thread(lambda: hf_backend.generate([LONG_PROMPT], LONG, should_stop))
    wait_until(lambda: len(calls) >= 2, "the long request decoding", WAIT_S)
    (cut,) = hf_backend.generate([Prompt(prompt)], params)[0]
    answered.set()
    assert long.result(timeout=WAIT_S)[0][0].finish_reason == "length"  # it decoded on after the stop
    hf_backend.continuous = False
    try:
        (whole,) = hf_backend.generate([Prompt(prompt)], params)[0]  # generate() with stop_strings
    finally:
        hf_backend.continuous = True
    assert cut.text == "exact Nat." and cut.finish_reason == "stop"
    assert (cut.text, cut.token_logprobs) == (whole.text, pytest.approx(whole.token_logprobs, abs=1e-4))


def test_seeded_samples_do_not_depend_on_batch_mates(loop_backend: HFBackend) -> None:
    own_backend = loop_backend
    config = EngineConfig(cache_size=0)
    engine = SuggestionEngine(own_backend, DecodingConfig(temperature=1.5, num_samples=6, seed=7), config=config)
    states = [state for state, _ in PAIRS] + ["x y : Nat\n⊢ x * y = y * x"]

    async def one_at_a_time() -> list[list[tuple[str, float]]]:
        return [[(s.tactic, s.score) for s in (await engine.suggest(st)).items] for st in states]

    async def all_at_once() -> list[list[tuple[str, float]]]:
        replies = await asyncio.gather(*(engine.suggest(st) for st in states))
        return [[(s.tactic, s.score) for s in r.items] for r in replies]

    try:
        alone = asyncio.run(one_at_a_time())
        assert own_backend.loop.stats.peak_rows == 6  # one request at a time
        together = asyncio.run(all_at_once())
    finally:
        engine.close()
    assert own_backend.loop.stats.peak_rows > 6  # several requests' rows decoded in the same steps
    for a, b in zip(alone, together, strict=True):
        assert [t for t, _ in a] == [t for t, _ in b]
        assert [x for _, x in a] == pytest.approx([x for _, x in b], abs=1e-4)


@pytest.mark.parametrize("budget", [{"max_batch_rows": 4}, {"max_batch_tokens": 4 * 80}], ids=["rows", "positions"])
def test_admission_waits_for_rows_to_retire_within_the_budget(looping_model_dir: Path, budget: dict[str, int]) -> None:
    """Four rows of at most 80 positions each fill either budget; two more wait until they retire."""
    backend = backend_of(looping_model_dir, **budget)
    loop = backend.loop
    seen: list[tuple[int, int]] = []  # (rows decoding, requests waiting) while the second one waits

    def look() -> bool:
        seen.append((loop.rows, loop.waiting))
        return True

    should_stop, calls = gate((1, lambda: loop.waiting == 1), (2, look))
    four = GenerationParams(
        num_samples=4, temperature=1.0, max_new_tokens=80 - len(backend.encode(LONG_PROMPT.text).ids), seed=1
    )
    try:
        first = in_thread(lambda: backend.generate([LONG_PROMPT], four, should_stop))
        wait_until(lambda: len(calls) >= 2, "the first request's four rows decoding", WAIT_S)
        short = GenerationParams(num_samples=2, temperature=1.0, max_new_tokens=20, seed=1)
        second = backend.generate([PROMPTS[2]], short)
        first_rows = first.result(timeout=WAIT_S)
        stats = loop.stats
    finally:
        backend.close()
    assert seen == [(4, 1)]  # the budget was full: the second request waited, not joined
    assert stats.peak_rows == 4 and stats.admitted == 2
    assert [c.text.strip() for c in second[0]] == [PAIRS[2][1]] * 2 and len(first_rows[0]) == 4


def test_cancelling_one_request_retires_only_its_rows(loop_backend: HFBackend) -> None:
    hf_backend = loop_backend
    loop = hf_backend.loop
    params = GenerationParams(num_samples=3, temperature=1.0, max_new_tokens=40, seed=2)
    (alone,) = hf_backend.generate([LONG_PROMPT], params)
    leave = threading.Event()  # the second request's callers leave
    stopped_before = loop.stats.stopped
    # Boundary 1: wait for the second request to queue (it joins right after); boundary 3: its callers leave.
    should_stop, calls = gate((1, lambda: loop.waiting == 1), (3, lambda: leave.set() or True))
    kept = in_thread(lambda: hf_backend.generate([LONG_PROMPT], params, should_stop))
    wait_until(lambda: len(calls) >= 2, "the kept request decoding", WAIT_S)
    gone = hf_backend.generate([LONG_PROMPT], params, leave.is_set)
    (kept_rows,) = kept.result(timeout=WAIT_S)
    assert loop.stats.stopped == stopped_before + 1
    assert max(len(c.token_logprobs) for c in gone[0]) <= 3  # stopped at the boundary after it was told
    assert min(len(c.token_logprobs) for c in kept_rows) == params.max_new_tokens  # the other ran to its end
    assert [(c.text, c.token_logprobs) for c in kept_rows] == [
        (c.text, pytest.approx(c.token_logprobs, abs=1e-4)) for c in alone
    ]


def test_a_looping_row_is_cut_counted_and_its_request_answers(looping_model_dir: Path) -> None:
    backend = backend_of(looping_model_dir)
    config = ServeConfig(decoding=DecodingConfig(num_samples=8, temperature=1.0, seed=0))
    try:
        with live_server(config, backend) as url:
            reply = httpx.post(url + "/v1/suggest", json={"tactic_state": MIXED_STATE}, timeout=WAIT_S).json()
            metrics = httpx.get(url + "/metrics", timeout=WAIT_S).text
            raw = httpx.post(
                url + "/v1/completions",
                json={
                    "prompt": f"[GOAL]{MIXED_STATE}[PROOFSTEP]",
                    "n": 8,
                    "temperature": 1.0,
                    "seed": 0,
                    "max_tokens": 100,
                    "stop": ["[END]"],
                },
                timeout=WAIT_S,
            ).json()
        looped = backend.loop.stats.looped_rows
    finally:
        backend.close()
    dropped = reply["dropped_samples"]
    assert 1 <= dropped < 8
    assert [s["tactic"] for s in reply["suggestions"]] == ["simp"]  # answered from the rows that finished
    assert f"llmstep_dropped_samples {float(dropped)}" in metrics
    assert looped == dropped  # the raw completions asked for no guard: they ran to their length
    long = [c["text"] for c in raw["choices"] if c["finish_reason"] == "length"]
    assert long and all(" := hxr.abs := " in text for text in long)


def test_the_loop_guard_spares_real_tactics(hf_backend: HFBackend) -> None:
    """No step of the project's pairs or of the real traces repeats itself enough to be cut."""
    from support import real_pairs

    def cut_somewhere(text: str) -> bool:  # the guard looks at every step's tail
        ids = hf_backend.tokenizer.encode(text, add_special_tokens=False)
        return any(repeats_itself(ids[:k]) for k in range(1, len(ids) + 1))

    for _, tactic in PAIRS + real_pairs(limit=200):
        assert not cut_somewhere(tactic.split("\n")[0]), tactic  # the format stops a step at a newline
    assert cut_somewhere(LOOP_TACTIC)


def test_finished_rows_are_dropped_in_bulk_with_the_same_answers(loop_backend: HFBackend) -> None:
    """Dropping rows copies the cache, so finished rows wait until a fifth of the batch is finished; rows left
    in are never touched again, so the answers are those of dropping each row as it finishes."""
    engine = SuggestionEngine(
        loop_backend, DecodingConfig(temperature=1.0, num_samples=6, seed=3), config=EngineConfig(cache_size=0)
    )
    states = [state for state, _ in PAIRS] + [MIXED_STATE]

    async def together() -> list[list[tuple[str, float]]]:
        replies = await asyncio.gather(*(engine.suggest(st) for st in states))
        return [[(s.tactic, round(s.score, 4)) for s in r.items] for r in replies]

    answers, compactions = {}, {}
    try:
        for fraction in (0.0, 0.5):
            loop_backend.loop.compact_at = fraction
            before = loop_backend.loop.stats.compactions
            answers[fraction] = asyncio.run(together())
            compactions[fraction] = loop_backend.loop.stats.compactions - before
    finally:
        engine.close()
    assert answers[0.5] == answers[0.0]
    assert compactions[0.5] < compactions[0.0]
