"""Fine-tuning and from-scratch training of proofstep models on JSONL from ``llmstep.data``.

Importing this package is light; torch, transformers and peft load when a run starts.
"""

from llmstep.train.finetune import TrainConfig, TrainResult, finetune, latest_checkpoint, train_model
from llmstep.train.scratch import PRESETS, build_model, build_tokenizer, train_from_scratch

__all__ = [
    "PRESETS",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "build_tokenizer",
    "finetune",
    "latest_checkpoint",
    "train_from_scratch",
    "train_model",
]
