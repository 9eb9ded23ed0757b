"""The vLLM backend's glue code, against a stand-in async engine; the real engine only where vLLM runs.

vLLM needs an NVIDIA GPU and pins torch/transformers versions that cannot
share this environment, so most tests drive :class:`VLLMBackend` through
``from_engine`` with :class:`StandInAsyncLLM`, a stand-in for vLLM's
``AsyncLLMEngine``. It decodes with a next-token policy: the tiny model itself
(a real forward pass), or a scripted one where a test needs exact numbers. It
streams like vLLM (deltas or the final output only), stops like vLLM, and
records every request and every abort (vLLM aborts a request whose stream is
closed or whose caller is cancelled).
"""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import math
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmstep.backends import load_backend
from llmstep.backends.base import GenerationParams
from llmstep.backends.vllm import VLLMBackend, engine_kwargs
from llmstep.config import DecodingConfig, EngineConfig, ModelConfig, ServeConfig
from llmstep.engine import SuggestionEngine
from llmstep.errors import ConfigError
from llmstep.protocol.prompt import Prompt

from support import LOOP_STATE, MIXED_STATE, live_server, own_pairs, wait_until

HAS_VLLM = importlib.util.find_spec("vllm") is not None
STATE, TACTIC = own_pairs()[4]
WAIT_S = 30

#: Next-token log-probabilities: (index of the request in the engine, the prompt's ids, the ids generated so far).
Policy = Callable[[int, list[int], list[int]], dict[int, float]]


class StandInOutputKind(enum.Enum):
    """Stands in for ``vllm.sampling_params.RequestOutputKind``."""

    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class StandInSamplingParams:
    """Stands in for ``vllm.SamplingParams``: the fields we set, so a misspelt keyword fails as it would there."""

    n: int = 1
    temperature: float = 1.0
    max_tokens: int = 16
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    include_stop_str_in_output: bool = False
    logprobs: int | None = None
    seed: int | None = None
    output_kind: StandInOutputKind = StandInOutputKind.CUMULATIVE


@dataclass
class Logprob:
    """Stands in for ``vllm.sequence.Logprob``."""

    logprob: float


class StandInAsyncLLM:
    """Stands in for ``vllm.AsyncLLMEngine`` (vLLM's V1 ``AsyncLLM``), which cannot run without an NVIDIA GPU.

    ``generate`` is an async generator, as vLLM's: it decodes one token per step with ``policy``
    (greedy at temperature 0, else sampled with the request's seed), ends at ``max_tokens``, at a
    stop token or end-of-text, or at a stop string, and reports the chosen token's log-probability
    plus the ``logprobs`` most likely. Closing the stream or cancelling its caller aborts the request.
    ``hold`` keeps every request waiting before its first token until it is cancelled.
    """

    def __init__(self, tokenizer: Any, policy: Policy, hold: bool = False) -> None:
        self.tokenizer = tokenizer
        self.policy = policy
        self.hold = hold
        self.model_config = SimpleNamespace(max_model_len=2048)
        self.requests: list[tuple[str, Any, StandInSamplingParams]] = []
        self.aborted: list[str] = []
        self.tokens_generated = 0
        self.started = threading.Semaphore(0)
        self.shut_down = False
        self.loops: set[int] = set()  # the event loops requests ran on

    async def get_tokenizer(self) -> Any:
        return self.tokenizer

    def _prompt_ids(self, prompt: dict[str, Any]) -> list[int]:
        if "prompt_token_ids" in prompt:
            return list(prompt["prompt_token_ids"])
        return list(self.tokenizer(prompt["prompt"])["input_ids"])

    @staticmethod
    def _choose(dist: dict[int, float], params: StandInSamplingParams, rng: random.Random) -> int:
        if params.temperature == 0.0:
            return max(dist, key=lambda t: dist[t])
        tokens = list(dist)
        weights = [math.exp(dist[t] / params.temperature) for t in tokens]
        return rng.choices(tokens, weights)[0]

    async def generate(
        self, prompt: dict[str, Any], params: StandInSamplingParams, request_id: str
    ) -> AsyncIterator[SimpleNamespace]:
        index = len(self.requests)
        self.requests.append((request_id, prompt, params))
        self.loops.add(id(asyncio.get_running_loop()))
        prompt_ids = self._prompt_ids(prompt)
        rng = random.Random(params.seed if params.seed is not None else index)  # reproducible runs
        ids: list[int] = []
        logprobs: list[dict[int, Logprob]] = []
        sent = 0
        stops = set(params.stop_token_ids) | {self.tokenizer.eos_token_id}
        self.started.release()
        try:
            if self.hold:
                await asyncio.Event().wait()  # until cancelled
            finish = "length"
            for _ in range(params.max_tokens):
                dist = self.policy(index, prompt_ids, ids)
                token = self._choose(dist, params, rng)
                top = sorted(dist, key=lambda t: dist[t], reverse=True)[: params.logprobs or 0]
                ids.append(token)
                logprobs.append({t: Logprob(dist[t]) for t in [token, *top]})
                self.tokens_generated += 1
                text = self.tokenizer.decode(ids)
                if token in stops or any(s in text for s in params.stop):
                    finish = "stop"
                    break
                if params.output_kind is StandInOutputKind.DELTA:
                    yield self._output(ids[sent:], logprobs[sent:], None)
                    sent = len(ids)
                await asyncio.sleep(0)  # let other requests step, as the engine interleaves them
            if params.output_kind is StandInOutputKind.DELTA:
                yield self._output(ids[sent:], logprobs[sent:], finish)
            else:
                yield self._output(ids, logprobs, finish)
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted.append(request_id)
            raise

    @staticmethod
    def _output(ids: list[int], logprobs: list[dict[int, Logprob]], finish: str | None) -> SimpleNamespace:
        return SimpleNamespace(
            outputs=[SimpleNamespace(token_ids=list(ids), logprobs=list(logprobs), finish_reason=finish)]
        )

    def shutdown(self) -> None:
        self.shut_down = True


def scripted(tokenizer: Any, continuations: list[str]) -> Policy:
    """Request k follows ``continuations[k % len]``, its i-th token at log-probability -0.1 × (i + 1)."""
    scripts = [tokenizer.encode(text, add_special_tokens=False) for text in continuations]

    def policy(index: int, prompt_ids: list[int], ids: list[int]) -> dict[int, float]:
        script = scripts[index % len(scripts)]
        step = len(ids)
        return {script[step] if step < len(script) else tokenizer.eos_token_id: -0.1 * (step + 1)}

    return policy


def model_policy(model_dir: Path) -> Policy:
    """The model's own next-token log-probabilities: a real forward pass over the prompt and the row."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def policy(index: int, prompt_ids: list[int], ids: list[int]) -> dict[int, float]:
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids + ids])).logits[0, -1]
        values, tokens = torch.log_softmax(logits.float(), -1).topk(32)
        return dict(zip(tokens.tolist(), values.tolist(), strict=True))

    return policy


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def make_backend() -> Iterator[Callable[[StandInAsyncLLM], VLLMBackend]]:
    made: list[VLLMBackend] = []

    def make(engine: StandInAsyncLLM) -> VLLMBackend:
        made.append(VLLMBackend.from_engine(lambda: engine, "tiny", StandInSamplingParams, StandInOutputKind))
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def test_one_engine_request_per_sample_with_its_own_seed(tokenizer: Any, make_backend: Any) -> None:
    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["exact h[END]", "simp[END]"]))
    params = GenerationParams(num_samples=4, temperature=0.7, max_new_tokens=30, seed=9)
    rows = make_backend(engine).generate([Prompt(f"[GOAL]{x}[PROOFSTEP]") for x in "ab"], params)
    assert [prompt["prompt"] for _, prompt, _ in engine.requests] == ["[GOAL]a[PROOFSTEP]"] * 4 + [
        "[GOAL]b[PROOFSTEP]"
    ] * 4
    requests = [request for _, _, request in engine.requests]
    assert [r.seed for r in requests] == [9, 10, 11, 12] * 2  # sample k gets seed + k, as vLLM does
    first = requests[0]
    assert (first.n, first.temperature, first.max_tokens, first.logprobs) == (1, 0.7, 30, 0)
    assert first.stop == ["[END]", "\n"] and first.include_stop_str_in_output
    assert tokenizer.convert_tokens_to_ids("[END]") in first.stop_token_ids
    assert first.output_kind is StandInOutputKind.FINAL_ONLY  # no loop guard: the finished row only
    assert len({request_id for request_id, _, _ in engine.requests}) == 8
    assert [[c.text for c in row] for row in rows] == [["exact h", "simp", "exact h", "simp"]] * 2


@pytest.mark.parametrize("decoding", ["sample", "beam"])
def test_fitted_ids_go_to_vllm_as_a_tokens_prompt(tokenizer: Any, make_backend: Any, decoding: str) -> None:
    """A prompt the engine fitted carries its ids: vLLM gets them (a ``TokensPrompt``), not text to encode."""
    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["exact h[END]"]))
    ids = tuple(tokenizer("[GOAL]a[PROOFSTEP]")["input_ids"])
    params = GenerationParams(num_samples=2, decoding=decoding, max_new_tokens=8)
    make_backend(engine).generate([Prompt("[GOAL]a[PROOFSTEP]", token_ids=ids)], params)
    assert engine.requests[0][1]["prompt_token_ids"][: len(ids)] == list(ids)


def test_cut_at_the_stop_token_and_scored_including_it(tokenizer: Any, make_backend: Any) -> None:
    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["exact h[END]decide"]))
    (cands,) = make_backend(engine).generate([Prompt("[GOAL]x[PROOFSTEP]")], GenerationParams(num_samples=1))
    n = len(tokenizer.encode("exact h", add_special_tokens=False)) + 1  # the tactic and [END]
    assert cands[0].text == "exact h" and cands[0].finish_reason == "stop"
    assert cands[0].token_logprobs == pytest.approx([-0.1 * (k + 1) for k in range(n)])
    assert cands[0].score == pytest.approx(sum(cands[0].token_logprobs) / n)


def test_a_multi_token_stop_string_is_scored_to_its_first_token(tokenizer: Any, make_backend: Any) -> None:
    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["intro hp STOP here"]))
    params = GenerationParams(num_samples=1, stop=("STOP",))
    (cands,) = make_backend(engine).generate([Prompt("[GOAL]x[PROOFSTEP]")], params)
    assert cands[0].text == "intro hp "
    ids = tokenizer.encode("intro hp STOP here", add_special_tokens=False)
    reaching = next(k for k in range(1, len(ids) + 1) if len(tokenizer.decode(ids[:k])) > len("intro hp "))
    assert len(cands[0].token_logprobs) == reaching  # like hf: up to the token where the stop begins


def test_max_tokens_ends_with_length(tokenizer: Any, make_backend: Any) -> None:
    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["exact Nat.succ_le_succ h[END]"]))
    (cands,) = make_backend(engine).generate(
        [Prompt("[GOAL]x[PROOFSTEP]")], GenerationParams(num_samples=1, max_new_tokens=2)
    )
    assert cands[0].finish_reason == "length" and len(cands[0].token_logprobs) == 2


def test_greedy_asks_for_one_sequence(tokenizer: Any, make_backend: Any) -> None:
    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["decide[END]"]))
    greedy = SuggestionEngine(make_backend(engine), DecodingConfig(temperature=0.0, num_samples=8))
    asyncio.run(greedy.suggest("⊢ 2 + 2 = 4"))
    ((_, _, request),) = engine.requests
    assert request.n == 1 and request.temperature == 0.0


def test_the_model_through_the_stand_in_suggests_its_trained_tactic(
    tiny_model_dir: Path, tokenizer: Any, make_backend: Any
) -> None:
    backend = make_backend(StandInAsyncLLM(tokenizer, model_policy(tiny_model_dir)))
    for decoding in (DecodingConfig(temperature=0.0), DecodingConfig(decoding="beam", num_samples=4)):
        engine = SuggestionEngine(backend, decoding)
        assert asyncio.run(engine.suggest(STATE)).items[0].tactic == TACTIC


def test_beam_search_keeps_the_best_sum_not_the_greedy_path(tokenizer: Any, make_backend: Any) -> None:
    """Greedy takes ``a`` (-0.5) and then must pay -2.0 for ``x``; ``c`` (-0.9) then [END] (-0.2) sums higher.
    Two beams find both, ``c`` first; a beam ends at the stop token, and the search ends once no live beam
    can pass the finished ones."""
    a, c, x, y = (tokenizer.encode(w, add_special_tokens=False)[0] for w in ("simp", "ring", "norm_num", "omega"))
    end = tokenizer.convert_tokens_to_ids("[END]")
    tree = {
        (): {a: -0.5, c: -0.9},
        (a,): {x: -2.0, y: -2.1},
        (a, x): {end: -0.1},
        (a, y): {end: -0.1},
        (c,): {end: -0.2},
    }
    prompt = Prompt("[GOAL]x[PROOFSTEP]")
    prompt_len = len(tokenizer(prompt.text)["input_ids"])

    def policy(index: int, prompt_ids: list[int], ids: list[int]) -> dict[int, float]:
        return tree.get(tuple(prompt_ids[prompt_len:] + ids), {end: -5.0})

    engine = StandInAsyncLLM(tokenizer, policy)
    params = GenerationParams(num_samples=2, decoding="beam", max_new_tokens=20)
    (cands,) = make_backend(engine).generate([prompt], params)
    assert [c.text for c in cands] == [tokenizer.decode([c]), tokenizer.decode([a, x])]
    assert [c.token_logprobs for c in cands] == [pytest.approx((-0.9, -0.2)), pytest.approx((-0.5, -2.0, -0.1))]
    assert all(r.max_tokens == 1 and r.logprobs == 4 and r.temperature == 0.0 for _, _, r in engine.requests)
    assert len(engine.requests) == 1 + 2 + 2  # the root, its two beams, then a x and a y; then no live beam


def test_a_looping_row_is_aborted_alone_and_its_request_answers(looping_model_dir: Path, make_backend: Any) -> None:
    """With the loop guard, rows stream in deltas; a row repeating itself is closed (vLLM aborts it) long
    before its cap, and the request answers from the rows that finished, counting the dropped one."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(looping_model_dir)
    engine = StandInAsyncLLM(tokenizer, model_policy(looping_model_dir))
    backend = make_backend(engine)
    guarded = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=120, loop_guard=True)
    ((cut,),) = backend.generate([Prompt(f"[GOAL]{LOOP_STATE}[PROOFSTEP]")], guarded)
    assert cut.finish_reason == "loop" and len(cut.token_logprobs) < 60
    assert engine.requests[-1][2].output_kind is StandInOutputKind.DELTA
    assert engine.aborted == [engine.requests[-1][0]]
    reply = asyncio.run(
        SuggestionEngine(backend, DecodingConfig(num_samples=8, temperature=1.0, max_new_tokens=120)).suggest(
            MIXED_STATE
        )
    )
    assert 1 <= reply.dropped_samples < 8 and [s.tactic for s in reply.items] == ["simp"]


def test_cancelling_the_caller_aborts_every_row_in_the_engine(tokenizer: Any, make_backend: Any) -> None:
    """The engine runs on its own loop; cancelling the task that awaits it, on another loop, aborts the rows."""
    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["simp[END]"]), hold=True)
    backend = make_backend(engine)
    params = GenerationParams(num_samples=3, temperature=0.5)

    async def main() -> None:
        task = asyncio.ensure_future(backend.generate_async([Prompt("[GOAL]x[PROOFSTEP]")], params))
        for _ in range(3):
            assert await asyncio.to_thread(engine.started.acquire, True, WAIT_S)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    wait_until(lambda: len(engine.aborted) == 3, "the engine to abort the three rows")
    assert sorted(engine.aborted) == sorted(request_id for request_id, _, _ in engine.requests)
    assert engine.tokens_generated == 0


def test_a_server_passes_requests_straight_on_and_a_deadline_aborts_them(tokenizer: Any, make_backend: Any) -> None:
    """Through a live server: concurrent requests reach the engine together (nothing merges or queues them in
    front), each past its deadline is a 504 whose rows vLLM is told to abort, and the server answers on."""
    import httpx

    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["simp[END]", "exact h[END]"]), hold=True)
    backend = make_backend(engine)
    config = ServeConfig(decoding=DecodingConfig(num_samples=2), engine=EngineConfig(request_timeout_s=2.0))
    with live_server(config, backend) as url, httpx.Client(timeout=WAIT_S) as client:
        with ThreadPoolExecutor(3) as pool:
            held = [pool.submit(client.post, url + "/v1/suggest", json={"tactic_state": f"⊢ {x}"}) for x in "abc"]
            for _ in range(6):  # two rows for each of the three requests, in the engine at once
                assert engine.started.acquire(timeout=WAIT_S)
            late = [future.result() for future in held]
        wait_until(lambda: len(engine.aborted) == 6, "the held rows to be aborted")
        engine.hold = False
        reply = client.post(url + "/v1/suggest", json={"tactic_state": "⊢ d"})
        stats = client.get(url + "/health").json()["stats"]
    assert [r.status_code for r in late] == [504] * 3
    assert reply.status_code == 200
    assert sorted(s["tactic"] for s in reply.json()["suggestions"]) == ["exact h", "simp"]
    assert (stats["batches"], stats["largest_batch"], stats["jobs_cancelled"]) == (4, 1, 3)
    assert len(engine.loops) == 1  # every request ran on the engine's own loop


def test_close_shuts_the_engine_down_once(tokenizer: Any) -> None:
    engine = StandInAsyncLLM(tokenizer, scripted(tokenizer, ["simp[END]"]))
    backend = VLLMBackend.from_engine(lambda: engine, "tiny", StandInSamplingParams, StandInOutputKind)
    backend.close()
    backend.close()
    assert engine.shut_down


def test_engine_settings_come_from_the_config() -> None:
    kwargs = engine_kwargs(ModelConfig(model="org/model", backend="vllm", tensor_parallel_size=4, dtype="bfloat16"))
    assert kwargs == {
        "model": "org/model",
        "tokenizer": "org/model",
        "tensor_parallel_size": 4,
        "dtype": "bfloat16",
        "max_logprobs": 128,  # 2 × the widest beam search
    }
    with pytest.raises(ConfigError, match="CUDA GPUs only"):
        engine_kwargs(ModelConfig(backend="vllm", device="cpu"))


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here, so the missing-dependency message cannot show")
def test_without_vllm_the_error_says_how_to_install_it() -> None:
    with pytest.raises(ConfigError, match=r"pip install 'llmstep\[vllm\]'"):
        load_backend(ModelConfig(backend="vllm"))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(
    not HAS_VLLM or not _cuda_available(), reason="the real vLLM engine needs `import vllm` and an NVIDIA GPU"
)
def test_real_vllm_suggests_the_trained_pair(tiny_model_dir: Path) -> None:
    backend = load_backend(ModelConfig(model=str(tiny_model_dir), backend="vllm", device="cuda"))
    try:
        for decoding in (DecodingConfig(temperature=0.0), DecodingConfig(decoding="beam", num_samples=4)):
            assert asyncio.run(SuggestionEngine(backend, decoding).suggest(STATE)).items[0].tactic == TACTIC
    finally:
        backend.close()
