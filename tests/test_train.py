"""`llmstep train`: completion-only loss, a tiny model from scratch, LoRA, resuming, and bad inputs.

All runs use the project's own made-up theorems (tests/fixtures/leandojo_2023.json,
10 traced tactics) and real, small GPT-NeoX models trained here on the CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub, even by accident

import pytest

from llmstep.cli.main import main
from llmstep.data import convert_leandojo, proofstep_record, read_proofsteps, write_proofsteps
from llmstep.train.collate import IGNORE_INDEX, CompletionCollator, tokenize_pairs
from llmstep.train.scratch import PROMPT_TOKENS, build_tokenizer, train_from_scratch

from support import FIXTURES

pytestmark = pytest.mark.slow


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``llmstep`` in-process; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*argv])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def trainer_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pairs_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pairs")
    convert_leandojo(FIXTURES / "leandojo_2023.json", out, progress=False)
    return out / "leandojo_2023.jsonl"


@pytest.fixture(scope="module")
def tiny_dir(pairs_jsonl: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset trained 300 steps on the 10 fixture pairs (about 5 s on 2 cores)."""
    return train_from_scratch(pairs_jsonl, tmp_path_factory.mktemp("tiny") / "model", max_steps=300)


def test_tokenizer_round_trips_lean_text_and_keeps_markers_whole() -> None:
    tok = build_tokenizer(["[GOAL]n : ℕ\n⊢ n + 0 = n[PROOFSTEP]simp[END]"], vocab_size=400)
    unseen = [
        "α : Type u_1\ninst✝ : Fintype α\n⊢ ∑ i ∈ Finset.range n, f i ≤ ∏ x, g x",
        "  intro ⟨h₁, h₂⟩ ; exact h₂ . symm ,  ",
        "emoji 🦆 and tabs\tand CJK 定理",
    ]
    for text in unseen:
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id and tok.decode(ids[1:]) == text
    for marker in PROMPT_TOKENS:
        assert len(tok(marker, add_special_tokens=False)["input_ids"]) == 1
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token_id != tok.eos_token_id


def test_prompt_tokens_are_masked_and_completion_ends_with_eos() -> None:
    tok = build_tokenizer(["[GOAL]⊢ True[PROOFSTEP]trivial[END]"], vocab_size=300)
    record = proofstep_record("⊢ True", "trivial")
    [example] = tokenize_pairs(tok, [record], max_length=64).examples
    prompt_len = len(tok(record["prompt"])["input_ids"])
    assert example["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert example["labels"][prompt_len:] == example["input_ids"][prompt_len:]
    assert tok.decode(example["input_ids"][prompt_len:]) == "trivial[END]<|endoftext|>"

    too_long = tokenize_pairs(tok, [record, proofstep_record("⊢ " + "x ∧ " * 50, "simp")], max_length=32)
    assert (len(too_long.examples), too_long.dropped_too_long) == (1, 1)

    batch = CompletionCollator(pad_token_id=tok.pad_token_id)([example, {"input_ids": [5], "labels": [5]}])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, len(example["input_ids"]))
    assert batch["attention_mask"][1].tolist() == [1] + [0] * (len(example["input_ids"]) - 1)
    assert batch["labels"][1, 1:].eq(IGNORE_INDEX).all()


def test_tiny_model_loss_falls(tiny_dir: Path) -> None:
    losses = [h["loss"] for h in trainer_state(tiny_dir / "checkpoint-300")["log_history"] if "loss" in h]
    assert losses[0] > 3.0  # about ln(vocab) for random weights
    assert losses[-1] < 0.05 * losses[0]
    meta = json.loads((tiny_dir / "llmstep_train.json").read_text(encoding="utf-8"))
    assert meta["preset"] == "tiny" and meta["global_step"] == 300


@pytest.mark.parametrize("num_beams", [1, 4], ids=["greedy", "beam4"])
def test_tiny_model_reproduces_its_training_pairs(tiny_dir: Path, pairs_jsonl: Path, num_beams: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert tok.eos_token == "<|endoftext|>"
    for record in read_proofsteps(pairs_jsonl):
        inputs = tok(record["prompt"], return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=48, num_beams=num_beams, do_sample=False)
        continuation = tok.decode(out[0, inputs["input_ids"].shape[1] :])
        # The saved generation config stops at [END] itself.
        assert continuation == record["completion"]


def test_lora_run_saves_adapter_and_a_merged_model(
    tiny_dir: Path, pairs_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "lora"
    code, stdout, err = run_cli(
        capsys, "train", "--model", str(tiny_dir), "--data", str(pairs_jsonl), "--eval", str(pairs_jsonl),
        "--output", str(out), "--lora", "--max-steps", "4", "--eval-steps", "2", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("done: train_loss=") and "eval_loss=n/a" not in last and "steps=4" in last
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert type(merged).__name__ == "GPTNeoXForCausalLM"
    assert not any("lora" in name for name in merged.state_dict())
    AutoTokenizer.from_pretrained(out)


def test_full_finetune_keeps_the_best_checkpoint_and_resumes_past_it(
    tiny_dir: Path, pairs_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "ft"
    common = ["train", "--model", str(tiny_dir), "--data", str(pairs_jsonl), "--eval", str(pairs_jsonl)]
    common += ["--output", str(out), "--eval-steps", "2", "--no-progress"]
    code, _, err = run_cli(capsys, *common, "--max-steps", "4")
    assert code == 0, err
    first = trainer_state(out / "checkpoint-4")
    assert first["global_step"] == 4 and first["best_model_checkpoint"]

    code, stdout, err = run_cli(capsys, *common, "--max-steps", "6", "--resume")
    assert code == 0, err
    assert trainer_state(out / "checkpoint-6")["global_step"] == 6 > first["global_step"]
    assert "steps=6" in stdout.strip().splitlines()[-1]
    AutoModelForCausalLM.from_pretrained(out)


def test_resumed_scratch_run_continues_from_trained_weights(
    pairs_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Loss at the first resumed step must stay near the checkpoint's, not jump back to random-init level:
    # transformers' own checkpoint loading misses GPT-NeoX's renamed lm_head (see finetune._load_weights).
    out = tmp_path / "scratch"
    common = ["train", "--from-scratch", "tiny", "--data", str(pairs_jsonl), "--output", str(out)]
    common += ["--logging-steps", "1", "--no-progress"]
    assert run_cli(capsys, *common, "--max-steps", "60")[0] == 0
    before = [h["loss"] for h in trainer_state(out / "checkpoint-60")["log_history"] if "loss" in h][-1]
    code, _, err = run_cli(capsys, *common, "--max-steps", "62", "--resume")
    assert code == 0, err
    history = trainer_state(out / "checkpoint-62")["log_history"]
    resumed = [h["loss"] for h in history if "loss" in h and h["step"] > 60]
    assert resumed and resumed[0] < max(2 * before, 0.5)


def _bad_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "[GOAL]⊢ True[PROOFSTEP]", "completion": "trivial[END]"}\n{"prompt": \n', "utf-8")
    return path


def _no_completion(tmp_path: Path) -> Path:
    path = tmp_path / "nocompletion.jsonl"
    path.write_text('{"prompt": "[GOAL]⊢ True[PROOFSTEP]", "tactic": "trivial"}\n', "utf-8")
    return path


BAD_RUNS = {
    "missing-data": (lambda d: ["--data", str(d / "nope.jsonl")], 5, "nope.jsonl: no such file"),
    "invalid-jsonl": (lambda d: ["--data", str(_bad_jsonl(d))], 5, "bad.jsonl:2: invalid JSON"),
    "no-completion": (lambda d: ["--data", str(_no_completion(d))], 5, "field 'completion' must be a string"),
    "empty-data": (
        lambda d: ["--data", str(write_proofsteps(d / "empty.jsonl", []))],
        5,
        "no proofstep records",
    ),
    "resume-without-checkpoint": (lambda d: ["--resume"], 2, "--resume: no checkpoint-* folder"),
    "lora-from-scratch": (lambda d: ["--lora"], 2, "--lora needs a pretrained --model"),
    "too-long-for-max-length": (lambda d: ["--max-length", "4"], 5, "longer than --max-length 4"),
}


@pytest.mark.parametrize("case", list(BAD_RUNS), ids=list(BAD_RUNS))
def test_bad_scratch_run_gives_its_message_and_exit_code(
    pairs_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    make_args, exit_code, message = BAD_RUNS[case]
    args = ["--data", str(pairs_jsonl), *make_args(tmp_path)]
    code, _, err = run_cli(
        capsys, "train", "--from-scratch", "tiny", "--output", str(tmp_path / "out"), "--max-steps", "1",
        "--no-progress", *args,
    )  # fmt: skip
    assert code == exit_code
    [line] = err.strip().splitlines()
    assert line.startswith("error: ") and message in line


def test_missing_base_model_is_model_unavailable(
    pairs_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "train", "--model", str(tmp_path / "no-such-model"), "--data", str(pairs_jsonl),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 3
    assert "could not load base model" in err


def test_existing_checkpoints_need_resume(
    tiny_dir: Path, pairs_jsonl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "train", "--from-scratch", "tiny", "--data", str(pairs_jsonl), "--output", str(tiny_dir)
    )
    assert code == 2
    assert "already holds checkpoint-300; pass --resume" in err


def test_epochs_and_max_steps_are_exclusive(pairs_jsonl: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys, "train", "--from-scratch", "tiny", "--data", str(pairs_jsonl), "--output", "x",
        "--epochs", "1", "--max-steps", "1",
    )  # fmt: skip
    assert code == 2
    assert "not allowed with argument" in err
