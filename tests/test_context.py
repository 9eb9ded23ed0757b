"""The file context reaches the model: a tiny model whose answer depends on a marker only the context holds.

The model is trained here, with the project's own from-scratch training, on miniCTX's prompt format
(``minictx-context`` preset): the same goal gets a different tactic depending on which marker the
file above it contains. Served for real, it answers with the marker's tactic only when the context
is sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from llmstep.backends import Backend, load_backend
from llmstep.config import DecodingConfig, ModelConfig, ServeConfig
from llmstep.data import write_proofsteps
from llmstep.protocol.presets import find_prompt_format, load_presets
from llmstep.train.scratch import train_from_scratch

from support import live_server

FORMAT = find_prompt_format("minictx-context", load_presets())
STATE = "n : Nat\n⊢ n = n"
CASES = [  # (file context, tactic)
    ("import Foo\n-- marker ALPHA\ntheorem alpha_lemma (n : Nat) : n = n := rfl\n", "exact alpha_lemma n"),
    ("import Foo\n-- marker OMEGA\ntheorem omega_lemma (n : Nat) : n = n := rfl\n", "exact omega_lemma n"),
    ("", "rfl"),
]


@pytest.fixture(scope="module")
def context_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    root = tmp_path_factory.mktemp("context-model")
    end = FORMAT.stop[0]  # the format's end of step, [/TAC]
    records = [{"prompt": FORMAT.render(STATE, "", ctx), "completion": tactic + end} for ctx, tactic in CASES]
    data = write_proofsteps(root / "train.jsonl", records * 4)
    backend = load_backend(ModelConfig(model=str(train_from_scratch(data, root / "model", "tiny", max_steps=200))))
    yield backend
    backend.close()


def test_the_answer_follows_the_context_sent(context_model: Backend) -> None:
    config = ServeConfig(prompt_format=FORMAT, decoding=DecodingConfig(decoding="beam", num_samples=2))
    with live_server(config, context_model) as url:

        def top(context: str | None) -> str:
            body = {"tactic_state": STATE} | ({"context": context} if context is not None else {})
            r = httpx.post(url + "/v1/suggest", json=body, timeout=60)
            assert r.status_code == 200, r.text
            return r.json()["suggestions"][0]["tactic"]

        assert top(CASES[0][0]) == "exact alpha_lemma n"
        assert top(CASES[1][0]) == "exact omega_lemma n"
        assert top(None) == "rfl"  # no context sent: the marker's tactic does not appear
        # The original llmstep route carries context too.
        r = httpx.post(url + "/", json={"tactic_state": STATE, "prefix": "", "context": CASES[1][0]}, timeout=60)
        assert r.json()["suggestions"][0] == "exact omega_lemma n"


def test_formats_without_context_ignore_it() -> None:
    assert FORMAT.uses_context
    assert not find_prompt_format("llmstep", load_presets()).uses_context


def test_a_huge_context_is_cut_and_the_reply_says_by_how_much(context_model: Backend) -> None:
    config = ServeConfig(prompt_format=FORMAT, decoding=DecodingConfig(decoding="beam", num_samples=2))
    context = "-- filler line of an enormous file, ∀ ℕ α\n" * 7000 + CASES[0][0]  # ~300 KB, under the body limit
    with live_server(config, context_model) as url:
        r = httpx.post(url + "/v1/suggest", json={"tactic_state": STATE, "prefix": "exact", "context": context})
    assert r.status_code == 200, r.text
    body = r.json()
    window = context_model.context_window  # type: ignore[attr-defined]
    assert body["truncated"] is True and len(context) - window * 8 < body["truncated_chars"] < len(context)
    assert all(s["tactic"].startswith("exact") for s in body["suggestions"])  # the prefix survived whole
