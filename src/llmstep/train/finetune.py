"""Fine-tuning a causal LM on proofstep JSONL with ``transformers.Trainer`` (and ``peft`` for LoRA).

One run: read and tokenize the pairs (prompt masked), wrap the model in LoRA if
asked, train with periodic eval + checkpoints (keeping the best by eval loss),
then save model and tokenizer so that ``AutoModelForCausalLM.from_pretrained(output_dir)``
and ``llmstep serve --model output_dir`` work. Works on CPU, one GPU, or many
under ``accelerate launch`` / ``torchrun`` / ``deepspeed`` (the Trainer reads the
launcher's environment). Building a model from nothing is ``scratch.py``'s job.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmstep.data.jsonl import read_proofsteps
from llmstep.errors import ConfigError, DataError, ModelUnavailable, first_line
from llmstep.train.collate import CompletionCollator, tokenize_pairs

__all__ = [
    "METADATA_FILE",
    "TrainConfig",
    "TrainResult",
    "finetune",
    "latest_checkpoint",
    "load_pretrained",
    "resume_checkpoint",
    "train_model",
]

#: Written beside the model: what was trained, on what, with which settings, and the final losses.
METADATA_FILE = "llmstep_train.json"
#: Where a LoRA run keeps its adapter; the merged full model sits in the output folder itself.
ADAPTER_DIR = "adapter"


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults follow llmstep's Pythia recipe where it has one."""

    output_dir: Path
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs when set
    learning_rate: float = 1e-5
    batch_size: int = 4  # per device; effective = batch_size * grad_accum * devices
    grad_accum: int = 1
    max_length: int = 1024  # tokens; longer pairs are dropped, not truncated
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" (mixed precision; weights stay fp32)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    # Evaluate (with an eval set) and checkpoint every N steps; a float below 1 is a fraction of the run.
    eval_steps: float = 0.1
    save_total_limit: int = 2  # the best checkpoint is always kept besides the latest
    logging_steps: int = 10
    deepspeed: str | None = None  # path to a DeepSpeed JSON config, passed to TrainingArguments
    gradient_checkpointing: bool = False
    group_by_length: bool = False  # batch pairs of similar length: less padding, faster steps on CPU
    resume: bool = False  # continue from the latest checkpoint-* in output_dir
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    seed: int = 0
    report_to: str = "none"
    progress: bool = True

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"precision must be fp32, bf16 or fp16, not {self.precision!r}")
        if self.lora and self.deepspeed:
            raise ConfigError(
                "--lora with --deepspeed is not supported (the merge needs whole weights); "
                "LoRA runs fit one GPU, or use `accelerate launch`/`torchrun` for data parallelism"
            )
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigError(f"--max-steps must be positive, not {self.max_steps}")
        if self.eval_steps <= 0:
            raise ConfigError(f"--eval-steps must be positive, not {self.eval_steps}")
        if self.epochs <= 0 or self.batch_size <= 0 or self.grad_accum <= 0 or self.max_length <= 1:
            raise ConfigError("--epochs, --batch-size, --grad-accum and --max-length must be positive")
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise ConfigError(f"--deepspeed {self.deepspeed}: no such file")


@dataclass
class TrainResult:
    """How a run ended; ``is_main_process`` is False on the other ranks of a multi-GPU run."""

    output_dir: Path
    global_step: int
    train_loss: float | None  # the last logged training loss
    eval_loss: float | None  # of the model that was saved (the best one when there is an eval set)
    train_examples: int
    dropped_too_long: int
    is_main_process: bool = True
    log_history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        """The final line the CLI prints."""

        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4f}"

        return (
            f"done: train_loss={fmt(self.train_loss)} eval_loss={fmt(self.eval_loss)} "
            f"steps={self.global_step} examples={self.train_examples} output={self.output_dir}"
        )


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-N`` folder with the largest N in ``output_dir``, if any."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = [
        (int(p.name.split("-", 1)[1]), p)
        for p in folder.glob("checkpoint-*")
        if p.is_dir() and p.name.split("-", 1)[1].isdigit()
    ]
    return max(steps)[1] if steps else None


def load_pretrained(model_name_or_path: str) -> tuple[Any, Any]:
    """Model (float32, for stable mixed-precision training) and tokenizer, with a pad token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        model = AutoModelForCausalLM.from_pretrained(model_name_or_path, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        where = "local folder" if Path(model_name_or_path).is_dir() else "no such local folder; hub id"
        raise ModelUnavailable(
            f"could not load base model {model_name_or_path!r} ({where}): {first_line(exc)}"
        ) from exc
    if tokenizer.pad_token is None:
        # Borrowing eos avoids resizing embeddings; the collator masks by length, so eos is still learned.
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _training_arguments(config: TrainConfig, has_eval: bool) -> Any:
    import torch
    from transformers import TrainingArguments
    from transformers.training_args import ParallelMode

    schedule = "steps"
    every = config.eval_steps if config.eval_steps < 1 else int(config.eval_steps)
    try:
        args = TrainingArguments(
            output_dir=str(config.output_dir),
            num_train_epochs=config.epochs,
            max_steps=config.max_steps if config.max_steps is not None else -1,
            learning_rate=config.learning_rate,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum,
            lr_scheduler_type=config.lr_scheduler,
            warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio in transformers 5
            weight_decay=config.weight_decay,
            bf16=config.precision == "bf16",
            fp16=config.precision == "fp16",
            eval_strategy=schedule if has_eval else "no",
            eval_steps=every,
            save_strategy=schedule,
            save_steps=every,
            save_total_limit=config.save_total_limit,
            load_best_model_at_end=has_eval,
            metric_for_best_model="eval_loss",
            greater_is_better=False,
            logging_steps=config.logging_steps,
            logging_first_step=True,
            activation_checkpointing=config.gradient_checkpointing,
            deepspeed=config.deepspeed,
            seed=config.seed,
            report_to=config.report_to,
            disable_tqdm=not config.progress,
            remove_unused_columns=False,  # our examples are plain dicts already shaped for the model
            label_names=["labels"],  # PeftModel's forward hides this, and without it there is no eval_loss
            train_sampling_strategy="group_by_length" if config.group_by_length else "random",
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
    except (ValueError, ImportError) as exc:
        # e.g. a bad scheduler name, or --deepspeed without the deepspeed package.
        raise ConfigError(f"invalid training settings: {exc}") from exc
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and args.parallel_mode != ParallelMode.DISTRIBUTED:
        # Otherwise each process trains alone on all the data and they overwrite each other's files.
        raise ConfigError(
            f"launched as {launched} processes, but transformers does not run them as one job here "
            f"(device {args.device}); multi-process training needs one GPU per process"
        )
    return args


def _tokenize(tokenizer: Any, records: list[dict[str, str]], max_length: int, name: str) -> Any:
    pairs = tokenize_pairs(tokenizer, records, max_length)
    if not pairs.examples:
        raise DataError(f"{name}: all {pairs.dropped_too_long} pairs are longer than --max-length {max_length} tokens")
    return pairs


def resume_checkpoint(config: TrainConfig) -> Path | None:
    """The checkpoint a ``--resume`` run continues from; ``ConfigError`` when there is none.

    A run without ``--resume`` into a folder that already holds checkpoints is
    refused too: mixing two runs' checkpoints would make "latest" and "best" lie.
    """
    checkpoint = latest_checkpoint(config.output_dir)
    if not config.resume:
        if checkpoint is not None:
            raise ConfigError(
                f"{config.output_dir} already holds {checkpoint.name}; pass --resume to continue that run, "
                "or choose another --output"
            )
        return None
    if checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint-* folder in {config.output_dir}; run once without --resume first")
    return checkpoint


def _wrap_lora(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
    )
    if config.gradient_checkpointing:
        model.enable_input_require_grads()  # else checkpointed blocks see no grad-requiring input
    return get_peft_model(model, lora)


def _load_weights(model: Any, checkpoint: Path) -> None:
    """Copy a checkpoint's weights into ``model`` through ``from_pretrained``.

    The Trainer (transformers 5.24) resumes and loads the best model with a raw
    ``load_state_dict(strict=False)``, which misses weights saved under legacy
    names (GPT-NeoX writes ``lm_head`` as ``embed_out``) and silently keeps the
    old values; its "missing keys ... lm_head.weight" warning is that. Loading
    through ``from_pretrained`` applies the renaming, so the weights are right
    whatever the Trainer then does.
    """
    import torch

    fresh = type(model).from_pretrained(checkpoint, dtype=torch.float32)
    model.load_state_dict(fresh.state_dict())


def _last(history: list[dict[str, Any]], key: str) -> float | None:
    values = [h[key] for h in history if key in h and math.isfinite(h[key])]
    return float(values[-1]) if values else None


def train_model(
    model: Any,
    tokenizer: Any,
    train_records: list[dict[str, str]],
    config: TrainConfig,
    eval_records: list[dict[str, str]] | None = None,
    metadata: dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train ``model`` on proofstep records and save it with its tokenizer into ``config.output_dir``.

    ``metadata`` (base model or preset, data paths) is stored in
    ``llmstep_train.json`` beside the weights, with the settings and final losses.
    ``callbacks`` are extra ``transformers.TrainerCallback`` objects (the benchmark times steps).
    """
    from transformers import Trainer

    checkpoint = resume_checkpoint(config)
    train = _tokenize(tokenizer, train_records, config.max_length, "training data")
    train_examples, dropped = train.examples, train.dropped_too_long
    eval_examples = None
    if eval_records is not None:
        eval_examples = _tokenize(tokenizer, eval_records, config.max_length, "eval data").examples

    args = _training_arguments(config, has_eval=eval_examples is not None)
    # LoRA adapters and DeepSpeed engines load their own checkpoints correctly; plain weights need help.
    reload_weights = not config.lora and not config.deepspeed
    if checkpoint is not None and reload_weights:
        _load_weights(model, checkpoint)
    model.config.use_cache = False  # the KV cache only costs memory while training
    if config.lora:
        model = _wrap_lora(model, config)
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=CompletionCollator(pad_token_id=tokenizer.pad_token_id),
        train_dataset=train_examples,
        eval_dataset=eval_examples,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    best = trainer.state.best_model_checkpoint
    if args.load_best_model_at_end and best and reload_weights:
        # transformers 5.24 loads the best model without a barrier, so other ranks can look before
        # rank 0 has written it; wait here, and skip ranks that cannot see it (no shared disk).
        trainer.accelerator.wait_for_everyone()
        if any(Path(best).glob("*.safetensors")) or any(Path(best).glob("pytorch_model*.bin")):
            _load_weights(trainer.model, Path(best))
    history = list(trainer.state.log_history)
    eval_loss = trainer.evaluate()["eval_loss"] if eval_examples is not None else None

    result = TrainResult(
        output_dir=config.output_dir,
        global_step=trainer.state.global_step,
        train_loss=_last(history, "loss"),
        eval_loss=eval_loss,
        train_examples=len(train_examples),
        dropped_too_long=dropped,
        is_main_process=trainer.is_world_process_zero(),
        log_history=history,
    )
    _save(trainer, tokenizer, config)
    if result.is_main_process:
        _write_metadata(config, result, metadata or {})
    return result


def _save(trainer: Any, tokenizer: Any, config: TrainConfig) -> None:
    """Model + tokenizer into ``output_dir``; for LoRA also the adapter under ``adapter/``."""
    if not config.lora:
        trainer.model.config.use_cache = True
        trainer.save_model(str(config.output_dir))  # gathers ZeRO-3 shards; writes on rank 0 only
        return
    trainer.save_model(str(config.output_dir / ADAPTER_DIR))
    if trainer.is_world_process_zero():
        merged = trainer.model.merge_and_unload()
        merged.config.use_cache = True
        merged.save_pretrained(str(config.output_dir))
        tokenizer.save_pretrained(str(config.output_dir))


def _write_metadata(config: TrainConfig, result: TrainResult, metadata: dict[str, Any]) -> None:
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    record = {
        **metadata,
        "settings": settings,
        "global_step": result.global_step,
        "train_loss": result.train_loss,
        "eval_loss": result.eval_loss,
        "train_examples": result.train_examples,
        "dropped_too_long": result.dropped_too_long,
    }
    (config.output_dir / METADATA_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def finetune(
    model_name_or_path: str,
    train_path: str | Path,
    config: TrainConfig,
    eval_path: str | Path | None = None,
) -> TrainResult:
    """Fine-tune a pretrained causal LM (a hub name or a local folder) on proofstep JSONL.

    Inputs are checked before the model loads, so a bad file fails in seconds.
    """
    resume_checkpoint(config)
    train_records = read_proofsteps(train_path)
    eval_records = read_proofsteps(eval_path) if eval_path is not None else None
    model, tokenizer = load_pretrained(model_name_or_path)
    metadata = {"base_model": model_name_or_path, **data_metadata(train_path, eval_path)}
    return train_model(model, tokenizer, train_records, config, eval_records, metadata)


def data_metadata(train_path: str | Path, eval_path: str | Path | None) -> dict[str, str | None]:
    """The data paths as recorded in ``llmstep_train.json``."""
    return {"train_data": str(train_path), "eval_data": None if eval_path is None else str(eval_path)}
