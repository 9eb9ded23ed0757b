"""Prompts are fitted in the tokens the backend will really use, special tokens included, on every route.

The tiny model's tokenizer adds no BOS, so a copy of it is given one (as LLaMA's, Llemma's and
DeepSeek's add one): a prompt counted without it would land one token over the window.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from llmstep.backends import load_backend
from llmstep.config import DecodingConfig, ModelConfig
from llmstep.engine import SuggestionEngine


@pytest.fixture(scope="module")
def bos_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, with a tokenizer that starts every encoding with a BOS token."""
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("bos-model")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    bos = "[END]"  # any special token of the vocabulary serves as the BOS of this test
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tokenizer.convert_tokens_to_ids(bos))]
    )
    tokenizer.save_pretrained(out)
    return out


def test_tokens_are_counted_as_the_prompt_is_encoded(bos_model_dir: Path) -> None:
    backend = load_backend(ModelConfig(model=str(bos_model_dir), device="cpu"))
    try:
        text = "[GOAL]n : ℕ\n⊢ n + 0 = n[PROOFSTEP]"
        plain = len(backend.tokenizer.encode(text, add_special_tokens=False))
        assert backend.count_tokens(text) == len(backend.tokenizer(text)["input_ids"]) == plain + 1
    finally:
        backend.close()


def test_a_prompt_fitted_to_the_window_fits_it_with_its_bos(bos_model_dir: Path) -> None:
    """The window is set so that the prompt fits exactly when its BOS is forgotten: it must be shortened."""
    backend = load_backend(ModelConfig(model=str(bos_model_dir), device="cpu"))
    try:
        state = "\n".join(f"h{i} : x{i} ≤ x{i + 1}" for i in range(12)) + "\n⊢ x0 ≤ x12"
        engine = SuggestionEngine(backend, DecodingConfig(max_new_tokens=8))
        prompt = engine.prompt_format.render(state)
        backend.context_window = len(backend.tokenizer.encode(prompt, add_special_tokens=False)) + 8
        fitted, cut = engine.fit_prompt(state, "", "", 8)
        assert cut > 0 and fitted.endswith("⊢ x0 ≤ x12[PROOFSTEP]")
        assert len(backend.tokenizer(fitted)["input_ids"]) + 8 <= backend.context_window
        engine.close()
    finally:
        backend.close()


def test_a_raw_completion_over_the_window_is_refused_before_the_model(server_url: str) -> None:
    """/v1/completions cannot shorten a raw prompt: past the window it is a 400, not a 500 or a long run."""
    health = httpx.get(server_url + "/health").json()
    assert health["backend"] == "hf"
    prompt = "[GOAL]" + "h : x ≤ y\n" * 3000 + "⊢ x ≤ y[PROOFSTEP]"
    r = httpx.post(server_url + "/v1/completions", json={"prompt": prompt, "max_tokens": 8}, timeout=60)
    assert r.status_code == 400, r.text
    body = r.json()["error"]
    assert body["code"] == "context_too_long" and "window" in body["message"]
    ok = httpx.post(server_url + "/v1/completions", json={"prompt": "[GOAL]⊢ p[PROOFSTEP]", "max_tokens": 4})
    assert ok.status_code == 200
