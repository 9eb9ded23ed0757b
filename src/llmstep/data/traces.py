"""Converting llmstep's proof-search results into proofstep JSONL.

llmstep's search script (``python/search.py`` in wellecks/llmstep) writes one
JSON file per shard: ``{"results": [{"attempt_results": [...], "example":
{...}}, ...], "args": {...}}``. Every proof it found carries a ``trace`` of
``{"state_before", "tactic"}`` steps that Lean accepted, which makes them
real, checked training and evaluation pairs. Only successful attempts are
kept; a theorem found in several shards is written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmstep.data.jsonl import AtomicJsonlWriter, proofstep_record
from llmstep.errors import DataError

__all__ = ["TraceCounts", "convert_traces", "trace_records"]


@dataclass
class TraceCounts:
    """What a set of result files turned into."""

    output: Path
    files: int = 0
    theorems: int = 0  # theorems with a proof found, each counted once
    duplicates: int = 0  # proofs skipped because the theorem was already written
    proofsteps: int = 0
    seen: set[str] = field(default_factory=set, repr=False)

    def summary(self) -> str:
        """One line for the end-of-run report."""
        return (
            f"{self.output.name}: {self.proofsteps} proofsteps from {self.theorems} proved theorems "
            f"in {self.files} files ({self.duplicates} repeated proofs skipped)"
        )


def _expect(value: Any, kind: type, where: str, what: str) -> Any:
    if not isinstance(value, kind):
        raise DataError(f"{where}: {what} must be a {kind.__name__}; is this an llmstep search results file?")
    return value


def trace_records(result: Any, where: str) -> tuple[str, list[dict[str, str]]] | None:
    """(theorem name, records) of the first successful attempt in one result, or None if none succeeded."""
    result = _expect(result, dict, where, "each result")
    for i, attempt in enumerate(_expect(result.get("attempt_results"), list, where, "'attempt_results'")):
        at = f"{where}: attempt_results[{i}]"
        attempt = _expect(attempt, dict, at, "an attempt")
        if attempt.get("success") is not True:
            continue
        name = _expect(attempt.get("theorem"), str, at, "'theorem'")
        records = []
        for j, step in enumerate(_expect(attempt.get("trace"), list, at, "'trace'")):
            step_at = f"{at}: trace[{j}]"
            step = _expect(step, dict, step_at, "a step")
            state = _expect(step.get("state_before"), str, step_at, "'state_before'")
            tactic = _expect(step.get("tactic"), str, step_at, "'tactic'")
            records.append(proofstep_record(state, tactic, theorem=name))
        return name, records
    return None


def convert_traces(paths: list[str | Path], output: str | Path) -> TraceCounts:
    """Write the proof steps of every successful search in ``paths`` to ``output``, all-or-nothing."""
    counts = TraceCounts(output=Path(output))
    with AtomicJsonlWriter(output) as writer:
        for path in sorted(Path(p) for p in paths):
            if not path.is_file():
                raise DataError(f"{path}: no such file")
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: invalid JSON: {exc.msg} (line {exc.lineno})") from exc
            document = _expect(document, dict, str(path), "the file")
            results = _expect(document.get("results"), list, str(path), "'results'")
            counts.files += 1
            for i, result in enumerate(results):
                found = trace_records(result, f"{path}: results[{i}]")
                if found is None:
                    continue
                name, records = found
                if name in counts.seen:
                    counts.duplicates += 1
                    continue
                counts.seen.add(name)
                counts.theorems += 1
                for record in records:
                    writer.write(record)
                counts.proofsteps += len(records)
        writer.commit()
    return counts
