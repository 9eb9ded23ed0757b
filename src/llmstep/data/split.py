"""Splitting proofstep JSONL into train and held-out sets by theorem.

Steps of one proof share hypotheses, names and often whole goals, so a
random split by step leaks the held-out answers into training and inflates
accuracy. Here every theorem goes to one side only. The assignment depends on
the seed and the set of theorem names alone (not on file order), so the same
inputs and seed always give the same split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from llmstep.data.jsonl import AtomicJsonlWriter, iter_proofsteps
from llmstep.errors import DataError

__all__ = ["SplitCounts", "split_by_theorem"]


@dataclass(frozen=True)
class SplitCounts:
    """How many theorems and steps went to each side."""

    train: Path
    held_out: Path
    train_theorems: int
    train_steps: int
    held_out_theorems: int
    held_out_steps: int

    def summary(self) -> str:
        """One line for the end-of-run report."""
        return (
            f"{self.train.name}: {self.train_steps} steps from {self.train_theorems} theorems; "
            f"{self.held_out.name}: {self.held_out_steps} steps from {self.held_out_theorems} theorems"
        )


def _rank(name: str, seed: int) -> str:
    """A seeded, platform-independent sort key (Python's hash() is salted per process)."""
    return hashlib.sha256(f"{seed}\0{name}".encode()).hexdigest()


def split_by_theorem(
    paths: list[str | Path], out_dir: str | Path, *, held_out: float = 0.2, seed: int = 0
) -> SplitCounts:
    """Write ``train.jsonl`` and ``test.jsonl`` under ``out_dir``; ``held_out`` is the fraction of theorems held out.

    Every record needs a ``theorem`` field (``llmstep data leandojo`` and
    ``llmstep data traces`` write one). Both files are committed together.
    """
    if not 0.0 < held_out < 1.0:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {held_out}")
    by_theorem: dict[str, list[dict[str, str]]] = {}
    for path in paths:
        for lineno, record in enumerate(iter_proofsteps(path), start=1):
            name = record.get("theorem")
            if name is None:
                raise DataError(
                    f"{path}: record {lineno} has no 'theorem' field, so it cannot be split by theorem; "
                    "regenerate the file with `llmstep data leandojo` or `llmstep data traces`"
                )
            by_theorem.setdefault(name, []).append(record)
    if len(by_theorem) < 2:
        raise DataError(f"need at least 2 theorems to split, found {len(by_theorem)}")
    names = sorted(by_theorem, key=lambda n: _rank(n, seed))
    n_held = min(len(names) - 1, max(1, round(held_out * len(names))))
    held, kept = set(names[:n_held]), names[n_held:]
    out = Path(out_dir)
    with AtomicJsonlWriter(out / "train.jsonl") as train, AtomicJsonlWriter(out / "test.jsonl") as test:
        for name in sorted(by_theorem):  # a stable order in the files, whatever the inputs' order
            writer = test if name in held else train
            for record in by_theorem[name]:
                writer.write(record)
        counts = SplitCounts(train.path, test.path, len(kept), train.count, len(held), test.count)
        train.commit()
        test.commit()
    return counts
