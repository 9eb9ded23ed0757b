"""Converting LeanDojo Benchmark 4 into llmstep's proofstep JSONL.

Each traced tactic becomes ``{"prompt": "[GOAL]<state_before>[PROOFSTEP]",
"completion": "<tactic>[END]", "theorem": "<full_name>"}``. Both LeanDojo formats are read: the 2023
release (``traced_tactics`` with ``state_before``, ``state_after``, ``tactic``)
and the newer traces that add ``annotated_tactic`` (the tactic with premise
markup such as ``simp [<a>Nat.mul_comm</a>]``; the plain ``tactic`` string is
what Lean accepts, so it is the one used). Files are streamed; outputs are
written all-or-nothing. Tokenizing and training are left to ``llmstep.train``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmstep.data.jsonarray import iter_json_array
from llmstep.data.jsonl import AtomicJsonlWriter, proofstep_record
from llmstep.errors import DataError

__all__ = [
    "PARTS",
    "SPLITS",
    "ConversionCounts",
    "convert_leandojo",
    "plan_conversion",
    "proofstep_records",
]

#: LeanDojo's two ways of splitting theorems into train/val/test.
SPLITS = ("random", "novel_premises")
#: The files of one split, in the order they are converted.
PARTS = ("train", "val", "test")

_PREMISE_MARKUP = re.compile(r"</?a>")


@dataclass
class ConversionCounts:
    """What one input file turned into."""

    source: Path
    output: Path
    theorems: int = 0
    skipped: int = 0  # theorems with an empty ``traced_tactics``
    proofsteps: int = 0

    def summary(self) -> str:
        """One line for the end-of-run report."""
        return (
            f"{self.output.name}: {self.proofsteps} proofsteps from {self.theorems} theorems "
            f"({self.skipped} without tactics skipped) <- {self.source}"
        )


def _tactic_text(step: dict[str, Any], where: str) -> str:
    """The plain tactic of one traced step, from ``tactic`` or, failing that, ``annotated_tactic``."""
    tactic = step.get("tactic")
    if isinstance(tactic, str):
        return tactic
    annotated = step.get("annotated_tactic")
    if isinstance(annotated, list) and annotated and isinstance(annotated[0], str):
        return _PREMISE_MARKUP.sub("", annotated[0])
    raise DataError(f"{where}: field 'tactic' is missing or not a string (and no usable 'annotated_tactic')")


def proofstep_records(theorem: Any, where: str) -> list[dict[str, str]]:
    """The proofstep records of one LeanDojo theorem; ``where`` prefixes error messages."""
    if not isinstance(theorem, dict):
        raise DataError(f"{where}: expected a theorem object, found {type(theorem).__name__}")
    name = theorem.get("full_name")
    if isinstance(name, str):
        where = f"{where} ({name})"
    else:
        name = None
    steps = theorem.get("traced_tactics")
    if not isinstance(steps, list):
        problem = "is missing" if steps is None else f"is a {type(steps).__name__}, not a list"
        raise DataError(f"{where}: field 'traced_tactics' {problem}; is this a LeanDojo Benchmark 4 file?")
    records = []
    for j, step in enumerate(steps):
        step_where = f"{where}: traced_tactics[{j}]"
        if not isinstance(step, dict):
            raise DataError(f"{step_where}: expected an object, found {type(step).__name__}")
        state = step.get("state_before")
        if not isinstance(state, str):
            raise DataError(f"{step_where}: field 'state_before' is missing or not a string")
        tactic = _tactic_text(step, step_where)
        records.append(proofstep_record(state, tactic, theorem=name))
    return records


def plan_conversion(path: str | Path, out_dir: str | Path, split: str = "random") -> list[tuple[Path, Path]]:
    """The (input, output) file pairs for ``path``: one JSON file, or a benchmark folder.

    A folder may be the benchmark root (holding ``random/`` and
    ``novel_premises/``) or one split folder; it must hold ``train.json``,
    ``val.json`` and ``test.json``. A single file ``X.json`` becomes ``X.jsonl``.
    """
    path, out_dir = Path(path), Path(out_dir)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if path.is_file():
        return [(path, out_dir / f"{path.stem}.jsonl")]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    folder = path / split if (path / split).is_dir() else path
    missing = [f"{part}.json" for part in PARTS if not (folder / f"{part}.json").is_file()]
    if missing:
        raise DataError(
            f"{folder}: missing {', '.join(missing)}; expected a LeanDojo Benchmark 4 folder "
            f"with {split}/{{train,val,test}}.json, or a single JSON file"
        )
    return [(folder / f"{part}.json", out_dir / f"{part}.jsonl") for part in PARTS]


def _convert_one(source: Path, writer: AtomicJsonlWriter, progress: bool) -> ConversionCounts:
    from tqdm import tqdm

    counts = ConversionCounts(source=source, output=writer.path)
    with tqdm(total=source.stat().st_size, unit="B", unit_scale=True, desc=source.name, disable=not progress) as bar:
        for i, theorem in enumerate(iter_json_array(source, on_bytes=bar.update)):
            records = proofstep_records(theorem, f"{source}: theorem #{i}")
            counts.theorems += 1
            if not records:
                counts.skipped += 1
            for record in records:
                writer.write(record)
            counts.proofsteps += len(records)
            bar.set_postfix(proofsteps=counts.proofsteps, refresh=False)
    return counts


def convert_leandojo(
    path: str | Path, out_dir: str | Path, split: str = "random", *, progress: bool = True
) -> list[ConversionCounts]:
    """Convert a LeanDojo file or folder to proofstep JSONL under ``out_dir``.

    Outputs are committed together only after every input converted cleanly;
    on any ``DataError`` no output file is created or changed.
    """
    pairs = plan_conversion(path, out_dir, split)
    writers: list[AtomicJsonlWriter] = []
    try:
        results = []
        for source, target in pairs:
            writer = AtomicJsonlWriter(target)
            writers.append(writer)
            results.append(_convert_one(source, writer, progress))
        for writer in writers:
            writer.commit()
        return results
    finally:
        for writer in writers:
            writer.discard()
