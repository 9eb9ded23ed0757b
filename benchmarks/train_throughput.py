"""Training throughput of the from-scratch presets on this machine, in real (non-padding) tokens per second.

    python benchmarks/train_throughput.py [--epochs 2] [--presets tiny small]

Trains each preset through the same path as ``llmstep train --from-scratch``
(tokenizer, GPT-NeoX, ``train_model`` with ``transformers.Trainer``) on LeanDojo's 100-theorem
Mathlib sample from ../shared when present (else the project's own fixture
pairs), and writes the figures to benchmarks/results/train_throughput.json.
Whole epochs are run so the token count is exact: every example once per epoch.
Only optimizer steps are timed (no tokenizer training, loading or saving).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import shared_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "train_throughput.json"


def training_data(workdir: Path) -> tuple[Path, str]:
    """Proofstep JSONL to train on, and where it came from."""
    from llmstep.data import convert_leandojo

    shared = shared_dir()
    sample = shared / "data/leandojo-benchmark4-sample/mathlib4-random-test-sample.json" if shared else None
    source = sample if sample and sample.is_file() else REPO / "tests" / "fixtures" / "leandojo_2023.json"
    [counts] = convert_leandojo(source, workdir, progress=False)
    return counts.output, str(source)


def step_timer() -> tuple[Any, list[float]]:
    """A TrainerCallback that appends each optimizer step's wall time (s) to the returned list."""
    from transformers import TrainerCallback

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            times.append(time.perf_counter() - self.started)

    return StepTimer(), times


def measure(preset: str, data: Path, workdir: Path, epochs: float) -> dict[str, Any]:
    """Train ``preset`` for whole epochs through ``train_model``, timing every step.

    Tokens/s is given twice: over the summed step times, and from the median step
    (robust to other processes stealing the cores for a while).
    """
    from llmstep.data import read_proofsteps
    from llmstep.train.collate import tokenize_pairs
    from llmstep.train.finetune import train_model
    from llmstep.train.scratch import PRESETS, build_model, build_tokenizer, scratch_config

    records = read_proofsteps(data)
    config = scratch_config(
        preset, workdir / preset, epochs=epochs, eval_steps=10**9, logging_steps=10**9, progress=False
    )
    tokenizer = build_tokenizer((r["prompt"] + r["completion"] for r in records), PRESETS[preset].vocab_size)
    model = build_model(tokenizer, preset)
    n_params = sum(p.numel() for p in model.parameters())
    timer, step_s = step_timer()
    result = train_model(model, tokenizer, records, config, callbacks=[timer])

    tokens_per_epoch = sum(len(ex["input_ids"]) for ex in tokenize_pairs(tokenizer, records, 1024).examples)
    tokens = tokens_per_epoch * epochs
    median_s = statistics.median(step_s)
    return {
        "preset": preset,
        "parameters": n_params,
        "vocab_size": len(tokenizer),
        "examples": result.train_examples,
        "mean_tokens_per_example": round(tokens_per_epoch / result.train_examples, 1),
        "batch_size": config.batch_size,
        "steps": len(step_s),
        "step_s_median": round(median_s, 3),
        "step_s_min_max": [round(min(step_s), 3), round(max(step_s), 3)],
        "tokens_per_s": round(tokens / sum(step_s)),
        "tokens_per_s_at_median_step": round(tokens / (median_s * len(step_s))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--epochs", type=float, default=2.0, help="whole epochs per preset (default 2)")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads; 1 is steadier when other processes load the cores"
    )
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data, source = training_data(workdir)
        rows = [measure(preset, data, workdir, args.epochs) for preset in args.presets]
    report = {
        "what": "from-scratch training throughput, real (non-padding) tokens per second of optimizer steps, fp32",
        "data": source,
        "epochs": args.epochs,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cuda": torch.cuda.is_available(),
            # Other processes share these cores; a load well above the core count means slower figures.
            "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for row in rows:
        print(
            f"{row['preset']:>5}: {row['tokens_per_s']:>7} tokens/s ({row['tokens_per_s_at_median_step']} at the "
            f"median step of {row['step_s_median']} s); {row['parameters']:,} parameters, "
            f"{row['examples']} examples x {args.epochs:g} epochs, batch {row['batch_size']}"
        )
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
