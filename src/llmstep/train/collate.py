"""Tokenizing proofstep pairs so that only the completion is learned.

The prompt (``[GOAL]…[PROOFSTEP]``) and the completion are tokenized
separately and concatenated: the prompt's ids are then exactly what the server
feeds the model for an empty prefix, and every prompt position gets label
-100 so the loss covers only the tactic, ``[END]`` and the end-of-text token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmstep.errors import DataError

__all__ = ["IGNORE_INDEX", "CompletionCollator", "TokenizedPairs", "tokenize_pairs"]

#: Label value that ``torch.nn.CrossEntropyLoss`` (and so every HF causal LM) skips.
IGNORE_INDEX = -100


@dataclass
class TokenizedPairs:
    """Examples ready for the Trainer, and how many were too long to keep."""

    examples: list[dict[str, list[int]]]
    dropped_too_long: int


def tokenize_pairs(tokenizer: Any, records: Sequence[dict[str, str]], max_length: int) -> TokenizedPairs:
    """``input_ids`` and ``labels`` (prompt masked) for each record; drops those over ``max_length``.

    Over-long examples are dropped rather than truncated: cutting the prompt
    would teach tactics for goals the model never saw, and cutting the
    completion would teach it never to stop.
    """
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no eos token; set one so generation can stop")
    # The prompt gets the tokenizer's usual specials (e.g. BOS), as at serving time; the completion none.
    prompts = tokenizer([r["prompt"] for r in records], add_special_tokens=True)["input_ids"]
    completions = tokenizer([r["completion"] for r in records], add_special_tokens=False)["input_ids"]
    examples, dropped = [], 0
    for prompt_ids, completion_ids in zip(prompts, completions, strict=True):
        completion_ids = [*completion_ids, tokenizer.eos_token_id]
        if len(prompt_ids) + len(completion_ids) > max_length:
            dropped += 1
            continue
        examples.append(
            {
                "input_ids": prompt_ids + completion_ids,
                "labels": [IGNORE_INDEX] * len(prompt_ids) + completion_ids,
            }
        )
    return TokenizedPairs(examples=examples, dropped_too_long=dropped)


@dataclass
class CompletionCollator:
    """Right-pads a batch: ``pad_token_id`` for inputs, -100 for labels, a 0/1 attention mask.

    The mask comes from lengths, not from ``input_ids != pad``, so a tokenizer
    whose pad token is its eos token still learns to emit eos.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(ex["input_ids"]) for ex in batch)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ex in enumerate(batch):
            n = len(ex["input_ids"])
            input_ids[row, :n] = torch.tensor(ex["input_ids"])
            labels[row, :n] = torch.tensor(ex["labels"])
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
