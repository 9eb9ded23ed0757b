"""Shared fixtures: a tiny real model trained here, and live servers on 127.0.0.1.

The model is trained from scratch in a few seconds on the project's own pairs
(tests/fixtures/pairs.jsonl), plus a handful of real (state, tactic) pairs
from llmstep's miniF2F search traces when ../shared is present. Nothing is
downloaded: HF_HUB_OFFLINE is set before transformers is imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread per process: the suite runs servers in subprocesses beside itself, and on a
# 2-core machine several processes each spinning 2 threads run 5-20x slower than 1 thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from llmstep.backends import Backend
from llmstep.config import DecodingConfig, ModelConfig, ServeConfig

from support import LOOP_STATE, LOOP_TACTIC, MIXED_STATE, live_server, own_pairs, real_pairs


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LLMSTEP_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("LLMSTEP_") and name != "LLMSTEP_SHARED_DIR":
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-NeoX + BPE tokenizer, trained here until it reproduces its pairs."""
    from tiny_model import train_tiny_model

    pairs = own_pairs() + real_pairs()
    return train_tiny_model(pairs, tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def hf_backend(tiny_model_dir: Path) -> Iterator[Backend]:
    """The tiny model loaded through the same path ``llmstep serve --model DIR`` takes."""
    from llmstep.backends import load_backend

    backend = load_backend(ModelConfig(model=str(tiny_model_dir), device="cpu"))
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def server_url(hf_backend: Backend) -> Iterator[str]:
    """A live server with the tiny model and default decoding (sampling, seeded)."""
    config = ServeConfig(decoding=DecodingConfig(seed=0))
    with live_server(config, hf_backend) as url:
        yield url


@pytest.fixture(scope="session")
def beam_server_url(hf_backend: Backend) -> Iterator[str]:
    """A live server with the tiny model and beam search: deterministic, several distinct answers."""
    config = ServeConfig(decoding=DecodingConfig(decoding="beam", num_samples=5))
    with live_server(config, hf_backend) as url:
        yield url


@pytest.fixture(scope="session")
def looping_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's pairs, plus a state whose tactic loops and one whose tactic may loop or be ``simp``."""
    from tiny_model import train_tiny_model

    pairs = [*own_pairs(), (LOOP_STATE, LOOP_TACTIC), (MIXED_STATE, "simp"), (MIXED_STATE, LOOP_TACTIC)]
    return train_tiny_model(pairs, tmp_path_factory.mktemp("looping-model"))
