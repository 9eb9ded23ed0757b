"""The file context reaches the model: a tiny model whose answer depends on a marker only the context holds.

The model is trained here, with the project's own from-scratch training, on miniCTX's prompt format
(``minictx-context`` preset): the same goal gets a different tactic depending on which marker the
file above it contains. Served for real, it answers with the marker's tactic only when the context
is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmstep.backends import Backend, load_backend
from llmstep.config import DecodingConfig, ModelConfig, ServeConfig
from llmstep.data import write_proofsteps
from llmstep.presets import find_prompt_format, load_presets
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


def test_eval_reports_accuracy_with_and_without_context(
    context_model: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmstep.cli.main import main

    records = [
        {"prompt": f"[GOAL]{STATE}[PROOFSTEP]", "completion": tactic + "[END]", "context": ctx} for ctx, tactic in CASES
    ]
    data = write_proofsteps(tmp_path / "test.jsonl", records)
    config = ServeConfig(prompt_format=FORMAT, decoding=DecodingConfig(decoding="beam", num_samples=2))
    with live_server(config, context_model) as url:
        argv = ["eval", "--data", str(data), "--url", url, "-k", "1", "--context", "both", "--out", str(tmp_path)]
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--no-progress", "--no-plots"])
    assert exit_info.value.code == 0
    with_ctx = json.loads((tmp_path / "with-context" / "report.json").read_text())
    without = json.loads((tmp_path / "without-context" / "report.json").read_text())
    # With the file, every step is predicted; without it, only the one that never needed it.
    assert with_ctx["summary"]["accuracy"]["exact"]["1"] == 1.0
    assert without["summary"]["accuracy"]["exact"]["1"] == pytest.approx(1 / 3)
    assert (with_ctx["provenance"]["context"], without["provenance"]["context"]) == ("with", "without")
    comparison = (tmp_path / "context-comparison.txt").read_text()
    assert "with context" in comparison and "without context" in comparison
    assert comparison in capsys.readouterr().out


def test_eval_with_a_model_takes_the_prompt_format_of_a_preset(
    context_model: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``eval --model`` prompts as ``serve`` would with --prompt-format: both runs differ, as with --url."""
    from llmstep.cli.main import main

    records = [{"prompt": f"[GOAL]{STATE}[PROOFSTEP]", "completion": t + "[END]", "context": c} for c, t in CASES]
    data = write_proofsteps(tmp_path / "test.jsonl", records)
    argv = ["eval", "--data", str(data), "--model", context_model.model_id, "--prompt-format", "minictx-context"]
    argv += ["-k", "1", "--num-samples", "2", "--context", "both", "--out", str(tmp_path)]
    argv += ["--no-progress", "--no-plots"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0, capsys.readouterr().err
    with_ctx = json.loads((tmp_path / "with-context" / "report.json").read_text())
    without = json.loads((tmp_path / "without-context" / "report.json").read_text())
    assert with_ctx["summary"]["accuracy"]["exact"]["1"] == 1.0
    assert without["summary"]["accuracy"]["exact"]["1"] == pytest.approx(1 / 3)


def test_eval_both_ways_with_a_format_that_ignores_the_context_is_refused(
    context_model: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """llmstep's own format never shows the context: "both" would run one prompt twice and compare it with itself."""
    from llmstep.cli.main import main

    records = [{"prompt": "[GOAL]⊢ p[PROOFSTEP]", "completion": "simp[END]", "context": "-- a file"}]
    data = write_proofsteps(tmp_path / "test.jsonl", records)
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--data", str(data), "--model", context_model.model_id, "--context", "both"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not show the file context" in err


def test_eval_without_any_context_to_leave_out_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmstep.cli.main import main

    data = write_proofsteps(tmp_path / "test.jsonl", [{"prompt": "[GOAL]⊢ p[PROOFSTEP]", "completion": "simp[END]"}])
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--data", str(data), "--url", "http://127.0.0.1:9", "--context", "both"])
    assert exit_info.value.code == 2
    assert "no record" in capsys.readouterr().err


def test_llemma_format_runs_both_prompts_in_one_batch_of_the_real_model(context_model: Backend) -> None:
    # The model was not trained on this format, so what it says is noise; what is checked is the plumbing:
    # the few-shot prompt and the file prompt reach the transformers backend together, as one batch.
    llemma = find_prompt_format("llemma-fewshot", load_presets())
    config = ServeConfig(prompt_format=llemma, decoding=DecodingConfig(num_samples=2, max_new_tokens=8, seed=0))
    with live_server(config, context_model) as url:
        r = httpx.post(url + "/", json={"tactic_state": STATE, "prefix": "", "context": CASES[0][0]}, timeout=60)
        assert r.status_code == 200 and isinstance(r.json()["suggestions"], list)
        stats = httpx.get(url + "/health", timeout=10).json()["stats"]
        assert (stats["batches"], stats["batched_requests"], stats["largest_batch"]) == (1, 2, 2)
        r = httpx.post(url + "/", json={"tactic_state": STATE, "prefix": "", "context": ""}, timeout=60)
        assert r.status_code == 200
        stats = httpx.get(url + "/health", timeout=10).json()["stats"]
        assert (stats["batches"], stats["batched_requests"]) == (2, 3)  # no context: the few-shot prompt alone
