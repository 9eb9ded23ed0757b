"""Build a tiny GPT-NeoX proofstep model from scratch, with no hub access.

Used by the test session fixture and by the Lean end-to-end runner:

    python tests/tiny_model.py --pairs tests/fixtures/pairs.jsonl --out /tmp/tiny

trains a byte-level BPE tokenizer (``[GOAL]``, ``[PROOFSTEP]``, ``[END]`` as
special tokens) and a 2-layer model on ``{"state", "tactic"}`` pairs until it
reproduces them, then saves both with ``save_pretrained``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

SPECIAL = ["<|endoftext|>", "[GOAL]", "[PROOFSTEP]", "[END]"]


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """``(state, tactic)`` pairs from a JSONL file."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["state"], r["tactic"]) for r in rows]


def train_tiny_model(pairs: Iterable[tuple[str, str]], out_dir: Path, steps: int = 300, seed: int = 0) -> Path:
    """Train until the pairs are memorised; returns ``out_dir``, loadable with ``from_pretrained``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    from llmstep.protocol.prompt import LLMSTEP_FORMAT

    torch.manual_seed(seed)
    texts = [LLMSTEP_FORMAT.render(s, "") + t + "[END]" for s, t in pairs]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    config = GPTNeoXConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=512,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.eos_token_id,
    )
    model = GPTNeoXForCausalLM(config)
    batch = tok([t + tok.eos_token for t in texts], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, action="append", required=True, help="JSONL of {state, tactic}")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    pairs = [p for path in args.pairs for p in read_pairs(path)]
    print(train_tiny_model(pairs, args.out, steps=args.steps))


if __name__ == "__main__":
    main()
