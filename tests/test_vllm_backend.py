"""The vLLM backend's glue code, against a stand-in engine; the real engine only where vLLM runs.

vLLM needs an NVIDIA GPU and pins torch/transformers versions that cannot
share this environment, so most tests drive :class:`VLLMBackend` through
``from_engine`` with :class:`StandInLLM`. The stand-in uses the tiny model's
real tokenizer, so decoding, stop tokens and cuts are the real ones.
"""

import asyncio
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmstep.backends import load_backend
from llmstep.backends.base import GenerationParams
from llmstep.backends.vllm import VLLMBackend, engine_kwargs
from llmstep.config import DecodingConfig, ModelConfig
from llmstep.engine import SuggestionEngine
from llmstep.errors import ConfigError
from llmstep.protocol.prompt import Prompt

from support import own_pairs

HAS_VLLM = importlib.util.find_spec("vllm") is not None
STATE, TACTIC = own_pairs()[4]


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


@dataclass
class StandInBeamSearchParams:
    """Stands in for ``vllm.BeamSearchParams`` (vLLM 0.6.3 and later)."""

    beam_width: int
    max_tokens: int
    ignore_eos: bool = False
    temperature: float = 0.0
    length_penalty: float = 1.0


@dataclass
class Logprob:
    """Stands in for ``vllm.sequence.Logprob``."""

    logprob: float


class StandInLLM:
    """Stands in for ``vllm.LLM``, which cannot run without an NVIDIA GPU.

    It answers every prompt with scripted continuations (cycled to ``n``),
    tokenized by the real tokenizer, cut at ``max_tokens`` like vLLM, with
    log-probability -0.1 × (position + 1) for each token, and records calls.
    Like vLLM, ``token_ids`` keep the stop string's tokens and the final
    end-of-text token.
    """

    def __init__(self, tokenizer: Any, continuations: list[str]) -> None:
        self.tokenizer = tokenizer
        self.continuations = continuations
        self.calls: list[tuple[str, list[str], Any]] = []

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def _completion(self, text: str, max_tokens: int) -> SimpleNamespace:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        finish = "length" if len(ids) > max_tokens else "stop"
        ids = ids[:max_tokens]
        logprobs = [{t: Logprob(-0.1 * (k + 1))} for k, t in enumerate(ids)]
        return SimpleNamespace(token_ids=ids, logprobs=logprobs, finish_reason=finish, text="")

    @staticmethod
    def _shown(prompt: dict[str, Any]) -> Any:
        """A ``TextPrompt``'s text, a ``TokensPrompt``'s ids: vLLM takes either."""
        return prompt["prompt"] if "prompt" in prompt else prompt["prompt_token_ids"]

    def generate(
        self, prompts: list[dict[str, Any]], params: StandInSamplingParams, use_tqdm: bool = True
    ) -> list[Any]:
        self.calls.append(("generate", [self._shown(p) for p in prompts], params))
        return [
            SimpleNamespace(
                outputs=[
                    self._completion(self.continuations[k % len(self.continuations)], params.max_tokens)
                    for k in range(params.n)
                ]
            )
            for _ in prompts
        ]

    def beam_search(self, prompts: list[dict[str, Any]], params: StandInBeamSearchParams) -> list[Any]:
        self.calls.append(("beam_search", [self._shown(p) for p in prompts], params))
        outputs = []
        for p in prompts:
            prompt_ids = p.get("prompt_token_ids") or self.tokenizer.encode(p["prompt"])
            sequences = []
            for text in self.continuations[: params.beam_width]:
                done = self._completion(text, params.max_tokens)
                sequences.append(SimpleNamespace(tokens=prompt_ids + done.token_ids, logprobs=done.logprobs))
            outputs.append(SimpleNamespace(sequences=sequences))
        return outputs


class StandInLLMWithoutBeamSearch(StandInLLM):
    """Stands in for a vLLM older than 0.6.3, whose ``LLM`` has no ``beam_search``."""

    beam_search = None  # type: ignore[assignment]

    def __getattribute__(self, name: str) -> Any:
        if name == "beam_search":
            raise AttributeError(name)
        return super().__getattribute__(name)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def backend_for(engine: StandInLLM) -> VLLMBackend:
    return VLLMBackend.from_engine(engine, "tiny", StandInSamplingParams, StandInBeamSearchParams)


def test_one_generate_call_for_a_batch(tokenizer: Any) -> None:
    engine = StandInLLM(tokenizer, ["exact h[END]", "simp[END]"])
    params = GenerationParams(num_samples=4, temperature=0.7, max_new_tokens=30, seed=9)
    rows = backend_for(engine).generate([Prompt(f"[GOAL]{x}[PROOFSTEP]") for x in "abc"], params)
    ((kind, prompts, request),) = engine.calls
    assert kind == "generate" and prompts == ["[GOAL]a[PROOFSTEP]", "[GOAL]b[PROOFSTEP]", "[GOAL]c[PROOFSTEP]"]
    assert (request.n, request.temperature, request.max_tokens, request.seed) == (4, 0.7, 30, 9)
    assert request.logprobs == 0 and request.stop == ["[END]", "\n"]
    assert tokenizer.convert_tokens_to_ids("[END]") in request.stop_token_ids
    assert [[c.text for c in row] for row in rows] == [["exact h", "simp", "exact h", "simp"]] * 3


@pytest.mark.parametrize("decoding", ["sample", "beam"])
def test_fitted_ids_go_to_vllm_as_a_tokens_prompt(tokenizer: Any, decoding: str) -> None:
    """A prompt the engine fitted carries its ids: vLLM gets them (a ``TokensPrompt``), not text to encode."""
    engine = StandInLLM(tokenizer, ["exact h[END]"])
    ids = tuple(tokenizer("[GOAL]a[PROOFSTEP]")["input_ids"])
    params = GenerationParams(num_samples=2, decoding=decoding, max_new_tokens=8)
    backend_for(engine).generate([Prompt("[GOAL]a[PROOFSTEP]", token_ids=ids)], params)
    assert engine.calls[0][1] == [list(ids)]


def test_cut_at_the_stop_token_and_scored_including_it(tokenizer: Any) -> None:
    engine = StandInLLM(tokenizer, ["exact h[END]decide"])
    (cands,) = backend_for(engine).generate([Prompt("[GOAL]x[PROOFSTEP]")], GenerationParams(num_samples=1))
    n = len(tokenizer.encode("exact h", add_special_tokens=False)) + 1  # the tactic and [END]
    assert cands[0].text == "exact h" and cands[0].finish_reason == "stop"
    assert cands[0].token_logprobs == pytest.approx([-0.1 * (k + 1) for k in range(n)])
    assert cands[0].score == pytest.approx(sum(cands[0].token_logprobs) / n)


def test_a_multi_token_stop_string_is_scored_to_its_first_token(tokenizer: Any) -> None:
    engine = StandInLLM(tokenizer, ["intro hp STOP here"])
    params = GenerationParams(num_samples=1, stop=("STOP",))
    (cands,) = backend_for(engine).generate([Prompt("[GOAL]x[PROOFSTEP]")], params)
    assert cands[0].text == "intro hp "
    ids = tokenizer.encode("intro hp STOP here", add_special_tokens=False)
    reaching = next(k for k in range(1, len(ids) + 1) if len(tokenizer.decode(ids[:k])) > len("intro hp "))
    assert len(cands[0].token_logprobs) == reaching  # like hf: up to the token where the stop begins


def test_max_tokens_ends_with_length(tokenizer: Any) -> None:
    engine = StandInLLM(tokenizer, ["exact Nat.succ_le_succ h[END]"])
    (cands,) = backend_for(engine).generate(
        [Prompt("[GOAL]x[PROOFSTEP]")], GenerationParams(num_samples=1, max_new_tokens=2)
    )
    assert cands[0].finish_reason == "length" and len(cands[0].token_logprobs) == 2


def test_greedy_asks_for_one_sequence(tokenizer: Any) -> None:
    engine = StandInLLM(tokenizer, ["decide[END]"])
    greedy = SuggestionEngine(backend_for(engine), DecodingConfig(temperature=0.0, num_samples=8))
    asyncio.run(greedy.suggest("⊢ 2 + 2 = 4"))
    request = engine.calls[0][2]
    assert request.n == 1 and request.temperature == 0.0


def test_beam_uses_llm_beam_search_and_ranks_by_score(tokenizer: Any) -> None:
    # Longer continuations get lower mean log-probs from the stand-in, so the short one ranks first.
    engine = StandInLLM(tokenizer, [f"{TACTIC} junk junk junk[END]", f"{TACTIC}[END]", "simp[END]"])
    engine_defaults = DecodingConfig(decoding="beam", num_samples=3, max_new_tokens=40)
    out = asyncio.run(SuggestionEngine(backend_for(engine), engine_defaults).suggest(STATE)).items
    ((kind, _, request),) = engine.calls
    assert kind == "beam_search"
    assert request == StandInBeamSearchParams(beam_width=3, max_tokens=40, length_penalty=0.0)
    assert [s.tactic for s in out] == ["simp", TACTIC, f"{TACTIC} junk junk junk"]


def test_beam_without_beam_search_falls_back_to_sampling(tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    engine = StandInLLMWithoutBeamSearch(tokenizer, ["simp[END]"])
    params = GenerationParams(num_samples=3, decoding="beam")
    with caplog.at_level(logging.WARNING, logger="llmstep.backends.vllm"):
        (cands,) = backend_for(engine).generate([Prompt("[GOAL]x[PROOFSTEP]")], params)
    assert "no LLM.beam_search" in caplog.text
    assert engine.calls[0][0] == "generate" and engine.calls[0][2].n == 3 and len(cands) == 3


def test_engine_settings_come_from_the_config() -> None:
    kwargs = engine_kwargs(ModelConfig(model="org/model", backend="vllm", tensor_parallel_size=4, dtype="bfloat16"))
    assert kwargs == {"model": "org/model", "tokenizer": "org/model", "tensor_parallel_size": 4, "dtype": "bfloat16"}
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
