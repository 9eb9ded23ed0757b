"""`llmstep convert gguf`: a GGUF file becomes a model directory that computes what the original did.

The GGUF is written here (tests/tiny_gguf.py) from a random-init tiny LLaMA, with llama.cpp's
tensor names and rotary permutation; the import must undo all of it, so the imported model's
logits and tokens must equal the source model's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmstep.cli.main import main
from llmstep.errors import ConfigError, ModelUnavailable
from tiny_gguf import write_tiny_llama_gguf

TEXTS = [
    "[GOAL]n : ℕ\n⊢ n + 0 = n[PROOFSTEP]simp[END]",
    "[GOAL]a b : ℕ\n⊢ a + b = b + a[PROOFSTEP]rw [Nat.add_comm][END]",
    "[GOAL]p q : Prop\nhp : p\n⊢ p ∨ q[PROOFSTEP]exact Or.inl hp[END]",
] * 4


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"
    model, tokenizer = write_tiny_llama_gguf(path, TEXTS)
    return path, model, tokenizer


def test_imported_model_matches_the_source(gguf_file: tuple[Path, object, object], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, source_model, source_tokenizer = gguf_file
    out = tmp_path / "imported"
    # As a user runs it: a subprocess, the one-line summary on stdout.
    proc = subprocess.run(
        [sys.executable, "-m", "llmstep", "convert", "gguf", str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"imported {path} to {out}" in proc.stdout
    provenance = json.loads((out / "llmstep-import.json").read_text())
    assert provenance["architecture"] == "LlamaForCausalLM" and provenance["dtype"] == "float32"
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    for text in TEXTS[:3]:
        ids = source_tokenizer(text).input_ids
        assert tokenizer(text).input_ids == ids
        with torch.no_grad():
            expected = source_model(torch.tensor([ids])).logits
            got = model(torch.tensor([ids])).logits
        assert torch.allclose(got, expected, atol=1e-5)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left


def test_import_refuses_to_overwrite_without_force(gguf_file: tuple[Path, object, object], tmp_path: Path) -> None:
    from llmstep.convert.gguf import import_gguf

    path, _, _ = gguf_file
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my work")
    with pytest.raises(ConfigError, match="--force"):
        import_gguf(path, tmp_path / "mine")
    with pytest.raises(ConfigError, match="not the output of an earlier"):
        import_gguf(path, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my work"
    import_gguf(path, tmp_path / "model")
    import_gguf(path, tmp_path / "model", force=True)  # an earlier import may be replaced


@pytest.mark.parametrize("kind", ["missing", "not-gguf"])
def test_bad_input_is_one_line(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "model.gguf"
    if kind == "not-gguf":
        source.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "gguf", str(source), str(tmp_path / "out")])
    assert exit_info.value.code == ModelUnavailable.exit_code
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and str(source) in line
    assert not (tmp_path / "out").exists()
