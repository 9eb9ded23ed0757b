"""Build a tiny GPT-NeoX proofstep model from scratch, with no hub access.

Used by the test session fixture and by the Lean end-to-end runner:

    python tests/tiny_model.py --pairs tests/fixtures/pairs.jsonl --out /tmp/tiny

trains a byte-level BPE tokenizer (``[GOAL]``, ``[PROOFSTEP]``, ``[END]`` as
special tokens) and a 2-layer GPT-NeoX on ``{"state", "tactic"}`` pairs until
it reproduces them, with ``llmstep train --from-scratch tiny``'s code, and
saves both with ``save_pretrained``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """``(state, tactic)`` pairs from a JSONL file."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["state"], r["tactic"]) for r in rows]


def train_tiny_model(pairs: Iterable[tuple[str, str]], out_dir: Path, steps: int = 300, seed: int = 0) -> Path:
    """Train the ``tiny`` preset until the pairs are memorised; returns ``out_dir``, loadable with ``from_pretrained``.

    This is ``llmstep train --from-scratch tiny``: the tests use the project's own training code.
    """
    from llmstep.data import proofstep_record, write_proofsteps
    from llmstep.train.scratch import train_from_scratch

    out_dir.mkdir(parents=True, exist_ok=True)
    data = write_proofsteps(out_dir.parent / f"{out_dir.name}.train.jsonl", (proofstep_record(s, t) for s, t in pairs))
    return train_from_scratch(data, out_dir, "tiny", max_steps=steps, seed=seed)


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
