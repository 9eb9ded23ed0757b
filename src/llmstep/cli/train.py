"""``llmstep train``: fine-tune a causal LM, or train a small one from scratch, on proofstep JSONL.

Only parsing and printing here; runs are ``llmstep.train.finetune`` and
``llmstep.train.scratch``. Multi-GPU: launch this same command under
``accelerate launch -m llmstep train ...`` or ``torchrun -m llmstep train ...``.
"""

from __future__ import annotations

import argparse
from typing import Any

from llmstep.errors import ConfigError

__all__ = ["register"]

_EPILOG = """\
examples:
  llmstep train --model EleutherAI/pythia-160m --data data/train.jsonl --eval data/val.jsonl --output out/
  llmstep train --from-scratch tiny --data data/train.jsonl --output out/tiny --max-steps 300
  llmstep train --model out/ --data data/train.jsonl --output out/ --resume
See docs/training.md for multi-GPU runs and llmstep's Pythia-2.8B recipe.
"""


def register(subparsers: Any) -> None:
    """Add ``train`` to the top-level parser."""
    p = subparsers.add_parser(
        "train",
        help="fine-tune (or train from scratch) a proofstep model",
        description="Fine-tune a causal LM, or train a small one from scratch, on proofstep JSONL.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    base = p.add_mutually_exclusive_group(required=True)
    base.add_argument("--model", metavar="BASE", help="causal LM to fine-tune: a hub name or a local folder")
    base.add_argument(
        "--from-scratch",
        choices=("tiny", "small"),
        metavar="PRESET",
        help="train a new tokenizer and GPT-NeoX of this size (tiny, small) instead",
    )
    p.add_argument("--data", required=True, metavar="TRAIN.jsonl", help="proofstep JSONL (llmstep data ...)")
    p.add_argument("--eval", metavar="VAL.jsonl", help="eval set: enables eval loss and keeping the best checkpoint")
    p.add_argument("--output", required=True, metavar="DIR", help="checkpoints, then the final model + tokenizer")

    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help="passes over the data (default 3)")
    length.add_argument("--max-steps", type=int, help="optimizer steps; overrides epochs")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-5; from-scratch presets pick their own)")
    p.add_argument("--batch-size", type=int, help="per device (default 4; presets pick their own)")
    p.add_argument("--grad-accum", type=int, help="gradient accumulation steps (default 1)")
    p.add_argument("--max-length", type=int, default=1024, help="tokens; longer pairs are dropped (default 1024)")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (Ampere+ GPUs)")
    precision.add_argument("--fp16", action="store_true", help="float16 mixed precision (GPUs)")
    p.add_argument("--lr-scheduler", help="transformers scheduler name (default cosine; presets: constant)")
    p.add_argument("--warmup-ratio", type=float, help="fraction of steps spent warming up (default 0.03)")
    p.add_argument(
        "--eval-steps",
        type=float,
        help="evaluate and checkpoint every N steps; below 1, a fraction of the run (default 0.1)",
    )
    p.add_argument("--save-total-limit", type=int, help="checkpoints kept, the best included (default 2)")
    p.add_argument("--logging-steps", type=int, help="log the loss every N steps (default 10)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    p.add_argument(
        "--deepspeed", metavar="CONFIG", help="DeepSpeed JSON config, e.g. configs/deepspeed_zero3_fp16.json"
    )
    p.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for activation memory")
    p.add_argument(
        "--group-by-length",
        action="store_true",
        help="batch pairs of similar length together: less padding, so faster steps (batches are less random)",
    )
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter; saves it and a merged model")
    p.add_argument("--lora-r", type=int, help="LoRA rank (default 16)")
    p.add_argument("--lora-alpha", type=int, help="LoRA alpha (default 32)")
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument("--report-to", help="tensorboard, wandb, ... (default none)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run_train)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields the user set; unset ones keep the run kind's defaults."""
    precision = "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"
    given = {
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "max_length": args.max_length,
        "precision": precision,
        "lr_scheduler": args.lr_scheduler,
        "warmup_ratio": args.warmup_ratio,
        "eval_steps": args.eval_steps,
        "save_total_limit": args.save_total_limit,
        "logging_steps": args.logging_steps,
        "deepspeed": args.deepspeed,
        "gradient_checkpointing": args.gradient_checkpointing,
        "group_by_length": args.group_by_length or None,
        "resume": args.resume,
        "lora": args.lora,
        "lora_r": args.lora_r,
        "lora_alpha": args.lora_alpha,
        "seed": args.seed,
        "report_to": args.report_to,
        "progress": not args.no_progress,
    }
    return {k: v for k, v in given.items() if v is not None}


def run_train(args: argparse.Namespace) -> int:
    """Run one training job and print its final line on the main process."""
    from llmstep.train.finetune import TrainConfig, finetune
    from llmstep.train.scratch import scratch_config, train_scratch_run

    overrides = _overrides(args)
    if args.from_scratch:
        if args.lora:
            raise ConfigError("--lora needs a pretrained --model; a --from-scratch model trains all its weights")
        config = scratch_config(args.from_scratch, args.output, **overrides)
        result = train_scratch_run(args.from_scratch, args.data, config, args.eval)
    else:
        config = TrainConfig(output_dir=args.output, **overrides)
        result = finetune(args.model, args.data, config, args.eval)
    if result.is_main_process:
        if result.dropped_too_long:
            print(f"note: dropped {result.dropped_too_long} pairs longer than --max-length {config.max_length}")
        print(result.summary())
    return 0
