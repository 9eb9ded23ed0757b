"""Decoding means what GenerationParams say, whatever the checkpoint's generation_config.json holds.

A copy of the tiny model gets a hostile generation config (a top_p of 1e-6, a repetition penalty,
a banned 1-gram repeat, a negative length penalty): sampling and beam search must answer exactly as
on the clean model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmstep.backends import Backend, load_backend
from llmstep.backends.base import GenerationParams
from llmstep.config import ModelConfig
from llmstep.protocol.prompt import Prompt

HOSTILE = {"top_p": 1e-6, "top_k": 1, "repetition_penalty": 5.0, "no_repeat_ngram_size": 1, "length_penalty": -5.0}
PROMPT = [Prompt("[GOAL]x y : Nat\n⊢ x * y = y * x[PROOFSTEP]")]


@pytest.fixture(scope="module")
def hostile_backend(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    out = tmp_path_factory.mktemp("hostile-model")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    path = out / "generation_config.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**config, **HOSTILE}))
    backend = load_backend(ModelConfig(model=str(out), device="cpu"))
    yield backend
    backend.close()


def test_a_hostile_generation_config_is_not_inherited(hostile_backend: Backend) -> None:
    config = hostile_backend.model.generation_config
    assert all(getattr(config, key, None) in (None, 1.0, 0) for key in HOSTILE)


def test_beam_search_answers_as_on_the_clean_model(hf_backend: Backend, hostile_backend: Backend) -> None:
    params = GenerationParams(num_samples=4, decoding="beam", max_new_tokens=16)
    clean = [(c.text, round(c.score, 4)) for c in hf_backend.generate(PROMPT, params)[0]]
    assert [(c.text, round(c.score, 4)) for c in hostile_backend.generate(PROMPT, params)[0]] == clean


def test_sampling_at_a_high_temperature_stays_diverse(hostile_backend: Backend) -> None:
    params = GenerationParams(num_samples=16, temperature=2.0, max_new_tokens=8, seed=0)
    (cands,) = hostile_backend.generate(PROMPT, params)
    assert len({c.text for c in cands}) > 3
