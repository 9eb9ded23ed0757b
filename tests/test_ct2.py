"""The CTranslate2 backend and ``llmstep convert ct2``, on the tiny GPT-NeoX trained here.

The tiny model is saved by transformers 5, so converting it exercises the
GPT-NeoX rename fix; the converted model must then suggest what the
transformers backend suggests, in float32 and in int8.
"""

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("ctranslate2", reason="the ct2 extra is not installed: pip install 'llmstep[ct2]'")

from llmstep.backends import Backend, load_backend
from llmstep.backends.base import GenerationParams
from llmstep.cli.main import main
from llmstep.config import DecodingConfig, ModelConfig
from llmstep.engine import SuggestionEngine
from llmstep.errors import ConfigError, ModelUnavailable
from llmstep.protocol.prompt import Prompt

from support import LOOP_STATE, MIXED_STATE, own_pairs

PAIRS = own_pairs()
QUANTIZATIONS = ["float32", "int8"]
DECODINGS = {
    "beam": DecodingConfig(decoding="beam", num_samples=4),
    "greedy": DecodingConfig(temperature=0.0),
}


def run_cli(*args: str) -> int:
    """``llmstep ARGS`` in this process; its exit code."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code or 0)


@pytest.fixture(scope="module")
def ct2_dirs(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model converted once per quantization, through the command users run."""
    root = tmp_path_factory.mktemp("ct2")
    for quantization in QUANTIZATIONS:
        out = root / quantization
        assert run_cli("convert", "ct2", str(tiny_model_dir), str(out), "--quantization", quantization) == 0
    return {q: root / q for q in QUANTIZATIONS}


@pytest.fixture(scope="module")
def ct2_backends(ct2_dirs: dict[str, Path]) -> Iterator[dict[str, Backend]]:
    backends = {
        q: load_backend(ModelConfig(model=str(path), backend="ct2", device="cpu", compute_type=q))
        for q, path in ct2_dirs.items()
    }
    yield backends
    for backend in backends.values():
        backend.close()


@pytest.mark.parametrize("decoding", list(DECODINGS))
@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_ct2_suggests_what_hf_suggests(
    hf_backend: Backend, ct2_backends: dict[str, Backend], quantization: str, decoding: str
) -> None:
    hf = SuggestionEngine(hf_backend, DECODINGS[decoding])
    ct2 = SuggestionEngine(ct2_backends[quantization], DECODINGS[decoding])
    for state, tactic in PAIRS:
        top_ct2, top_hf = (asyncio.run(engine.suggest(state)).items[0].tactic for engine in (ct2, hf))
        assert top_ct2 == top_hf == tactic


@pytest.mark.parametrize("decoding", list(DECODINGS))
def test_float32_scores_equal_hf_scores(hf_backend: Backend, ct2_backends: dict[str, Backend], decoding: str) -> None:
    """Same tactic, same score: the mean log-prob up to and including the stop, untempered."""
    hf = SuggestionEngine(hf_backend, DECODINGS[decoding])
    ct2 = SuggestionEngine(ct2_backends["float32"], DECODINGS[decoding])
    for state in [s for s, _ in PAIRS] + ["x y : Nat\n⊢ x * y = y * x"]:
        hf_scores = {s.tactic: s.score for s in asyncio.run(hf.suggest(state)).items}
        shared = [s for s in asyncio.run(ct2.suggest(state)).items if s.tactic in hf_scores]
        assert shared
        for s in shared:
            assert s.score == pytest.approx(hf_scores[s.tactic], abs=1e-4)


def test_samples_are_scored_and_bounded(ct2_backends: dict[str, Backend]) -> None:
    """Not checked: reproducibility. ctranslate2's seed does not fix its sampling (OpenNMT/CTranslate2#1757)."""
    backend = ct2_backends["int8"]
    prompt = [Prompt("[GOAL]x y : Nat\n⊢ x * y = y * x[PROOFSTEP]")]
    params = GenerationParams(num_samples=6, temperature=1.5, max_new_tokens=12, seed=3)
    (cands,) = backend.generate(prompt, params)
    assert len(cands) == 6
    for c in cands:
        assert c.token_logprobs and len(c.token_logprobs) <= 12
        assert c.score == pytest.approx(sum(c.token_logprobs) / len(c.token_logprobs))
        assert c.score <= 0.0 and "\n" not in c.text and "[END]" not in c.text
    (short,) = backend.generate(prompt, GenerationParams(num_samples=2, temperature=1.0, max_new_tokens=1, seed=0))
    assert all(len(c.token_logprobs) == 1 for c in short)


def test_sampled_scores_are_untempered_and_need_no_vocabulary_logits(ct2_backends: dict[str, Backend]) -> None:
    """A continuation scores the same whatever the temperature that sampled it: the callback's log-probabilities
    are the model's own, read token by token (no vocabulary-wide logits are asked for)."""
    backend = ct2_backends["float32"]
    prompt = [Prompt("[GOAL]x y : Nat\n⊢ x * y = y * x[PROOFSTEP]")]

    def scores(temperature: float) -> dict[str, float]:
        (cands,) = backend.generate(
            prompt, GenerationParams(num_samples=32, temperature=temperature, max_new_tokens=12)
        )
        assert all(-1e4 < c.score <= 0.0 for c in cands)
        return {c.text: c.score for c in cands}

    hot, cool = scores(1.8), scores(0.3)
    shared = set(hot) & set(cool)
    assert shared, "no continuation sampled at both temperatures"
    for text in shared:
        assert hot[text] == pytest.approx(cool[text], abs=1e-5), text


def test_one_batch_answers_like_single_prompts(ct2_backends: dict[str, Backend]) -> None:
    backend = ct2_backends["float32"]
    prompts = [Prompt(f"[GOAL]{state}[PROOFSTEP]") for state, _ in PAIRS[:4]]  # different lengths
    params = GenerationParams(num_samples=3, decoding="beam", max_new_tokens=24)
    batched = backend.generate(prompts, params)
    single = [backend.generate([p], params)[0] for p in prompts]
    assert [[c.text for c in row] for row in batched] == [[c.text for c in row] for row in single]
    assert [row[0].text.strip() for row in batched] == [t for _, t in PAIRS[:4]]


def test_a_looping_sample_is_cut_alone_and_its_request_answers(looping_model_dir: Path, tmp_path: Path) -> None:
    """Each sample is a batch example of its own, so the callback ends a looping row without the others:
    the request answers from the rows that finished, and counts the rows the guard cut."""
    out = tmp_path / "looping-ct2"
    assert run_cli("convert", "ct2", str(looping_model_dir), str(out), "--quantization", "float32") == 0
    backend = load_backend(ModelConfig(model=str(out), backend="ct2", device="cpu", compute_type="float32"))
    engine = SuggestionEngine(backend, DecodingConfig(num_samples=8, temperature=1.0, max_new_tokens=120))
    try:
        reply = asyncio.run(engine.suggest(MIXED_STATE))
        guarded = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=120, loop_guard=True)
        unguarded = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=120)
        ((cut,),) = backend.generate([Prompt(f"[GOAL]{LOOP_STATE}[PROOFSTEP]")], guarded)
        ((whole,),) = backend.generate([Prompt(f"[GOAL]{LOOP_STATE}[PROOFSTEP]")], unguarded)
    finally:
        engine.close()
        backend.close()
    assert cut.finish_reason == "loop" and len(cut.token_logprobs) < 60
    assert whole.finish_reason == "length" and len(whole.token_logprobs) == 120  # asked for no guard
    assert 1 <= reply.dropped_samples < 8 and [s.tactic for s in reply.items] == ["simp"]


def test_conversion_records_its_source_and_keeps_the_tokenizer(ct2_dirs: dict[str, Path]) -> None:
    import json

    from transformers import AutoTokenizer

    out = ct2_dirs["int8"]
    record = json.loads((out / "llmstep-convert.json").read_text())
    assert record["quantization"] == "int8" and record["model_type"] == "gpt_neox" and record["context_window"]
    assert AutoTokenizer.from_pretrained(out).convert_tokens_to_ids("[END]") is not None


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_converting_a_missing_dir_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("convert", "ct2", str(tmp_path / "nope"), str(tmp_path / "out")) == ModelUnavailable.exit_code
    assert "does not exist" in one_line_error(capsys)


def test_converting_a_non_model_dir_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    assert run_cli("convert", "ct2", str(tmp_path), str(tmp_path / "out")) == ModelUnavailable.exit_code
    assert "no config.json" in one_line_error(capsys)


def test_an_existing_output_needs_force(
    tiny_model_dir: Path, ct2_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ct2_dirs["int8"]
    assert run_cli("convert", "ct2", str(tiny_model_dir), str(out)) == ConfigError.exit_code
    assert "--force" in one_line_error(capsys)
    (tmp_path / "keep.txt").write_text("precious")
    assert run_cli("convert", "ct2", str(tiny_model_dir), str(tmp_path), "--force") == ConfigError.exit_code
    assert "refusing to delete" in one_line_error(capsys)
    assert (tmp_path / "keep.txt").exists()


def test_a_neox_with_another_rope_base_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ctranslate2's NeoX converter would silently use rope_theta 10000."""
    from transformers import GPTNeoXConfig

    config = GPTNeoXConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=128)
    config.rope_parameters["rope_theta"] = 500000.0
    config.save_pretrained(tmp_path)
    assert run_cli("convert", "ct2", str(tmp_path), str(tmp_path / "out")) == ConfigError.exit_code
    assert "rope_theta=500000" in one_line_error(capsys)


def test_serving_an_unconverted_dir_says_to_convert(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelUnavailable, match="llmstep convert ct2"):
        load_backend(ModelConfig(model=str(tiny_model_dir), backend="ct2"))


def test_an_unsupported_compute_type_lists_the_supported(ct2_dirs: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"choose one of: .*int8"):
        load_backend(ModelConfig(model=str(ct2_dirs["int8"]), backend="ct2", device="cpu", compute_type="int3"))


@pytest.mark.parametrize("temperature", [0.5, 0.0], ids=["sample", "greedy"])
def test_ct2_stops_where_it_is_told_to(ct2_backends: dict[str, Backend], temperature: float) -> None:
    """ctranslate2's per-token callback ends the decoding of a batch that nobody waits for."""
    backend = ct2_backends["float32"]
    params = GenerationParams(num_samples=3, temperature=temperature, max_new_tokens=100, stop=(), seed=0)
    prompt = "[GOAL]x : Nat\n⊢ x = x[PROOFSTEP]"
    (full,) = backend.generate([Prompt(prompt)], params)
    asked = itertools.count()
    (cut,) = backend.generate([Prompt(prompt)], params, should_stop=lambda: next(asked) >= 2)
    assert max(len(c.token_logprobs) for c in full) > 3  # with no stop string the model runs on past [END]
    assert cut and all(len(c.token_logprobs) <= 3 for c in cut)


def test_requests_decode_on_parallel_workers_and_a_waiting_one_that_is_given_up_never_starts(
    ct2_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers: two calls are inside ctranslate2 at once (each held in its per-token callback, which runs
    on ctranslate2's worker thread); a third waits for a worker, and once its caller has gone it returns
    without generating. Through the engine, concurrent requests are never merged into one call."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a budget of two threads: one for each worker
    backend = load_backend(ModelConfig(model=str(ct2_dirs["int8"]), backend="ct2", device="cpu", ct2_workers=2))
    params = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=4)
    prompt = [Prompt("[GOAL]x : Nat\n⊢ x = x[PROOFSTEP]")]
    entered = [threading.Event() for _ in range(3)]
    release, gone = threading.Event(), threading.Event()

    def held(k: int) -> bool:
        entered[k].set()
        assert release.wait(30)
        return False

    try:
        assert backend.schedules_rows(params) and backend.workers == 2
        with ThreadPoolExecutor(3) as pool:
            first, second = (pool.submit(backend.generate, prompt, params, lambda k=k: held(k)) for k in range(2))
            assert entered[0].wait(30) and entered[1].wait(30)  # both workers decode at once
            third = pool.submit(backend.generate, prompt, params, lambda: gone.is_set() or held(2))
            gone.set()  # its caller leaves while it waits for a worker
            release.set()
            results = [f.result(timeout=30) for f in (first, second, third)]
        assert [len(r[0]) for r in results] == [1, 1, 0] and not entered[2].is_set()
        engine = SuggestionEngine(backend, DecodingConfig(temperature=0.0))

        async def together() -> None:
            await asyncio.gather(*(engine.suggest(state) for state, _ in PAIRS[:4]))

        asyncio.run(together())
        assert engine.stats()["largest_batch"] == 1
    finally:
        backend.close()
