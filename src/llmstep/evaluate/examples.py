"""The (tactic state, reference tactic) pairs an eval runs over, read from either input format.

Proofstep JSONL (what ``llmstep data`` writes) is read with
``llmstep.data.jsonl``; a LeanDojo Benchmark 4 JSON file is read with
``llmstep.data.leandojo``, so both formats are checked exactly as the
converter and the trainer check them. Every example remembers where it came
from, and a malformed one is a ``DataError`` naming that place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from llmstep.data.jsonarray import iter_json_array
from llmstep.data.jsonl import END_MARKER, iter_proofsteps
from llmstep.data.leandojo import proofstep_records
from llmstep.errors import DataError

__all__ = ["Example", "detect_format", "load_examples"]

_GOAL, _PROOFSTEP = "[GOAL]", "[PROOFSTEP]"


@dataclass(frozen=True)
class Example:
    """One step to predict: the state before it, the tactic that was used, and where it was read.

    ``context`` is the file's source before the step, for records that carry one (empty otherwise).
    """

    state: str
    reference: str
    where: str
    context: str = ""


def detect_format(path: Path) -> str:
    """``leandojo-json`` when the file is a JSON array, ``proofstep-jsonl`` otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (pass --data with a proofstep JSONL or a LeanDojo JSON file)")
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "leandojo-json" if head.startswith(b"[") else "proofstep-jsonl"


def _nonblank_line_numbers(path: Path) -> Iterator[int]:
    """Line numbers of the lines ``iter_proofsteps`` yields a record for, in the same order."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield lineno


def _from_record(record: dict[str, str], where: str) -> Example:
    """The example in one proofstep record; a prompt not in llmstep's format is a DataError."""
    prompt = record["prompt"]
    if not (prompt.startswith(_GOAL) and prompt.endswith(_PROOFSTEP)):
        raise DataError(
            f"{where}: field 'prompt' is not in llmstep's format {_GOAL}<state>{_PROOFSTEP} "
            f"(starts {prompt[:40]!r}); regenerate the file with `llmstep data leandojo`"
        )
    completion = record["completion"]
    reference = completion.removesuffix(END_MARKER).strip()
    if not reference:
        raise DataError(f"{where}: field 'completion' holds no tactic ({completion!r})")
    return Example(prompt[len(_GOAL) : -len(_PROOFSTEP)], reference, where, record.get("context", ""))


def _iter_jsonl(path: Path) -> Iterator[Example]:
    for lineno, record in zip(_nonblank_line_numbers(path), iter_proofsteps(path), strict=True):
        yield _from_record(record, f"{path}:{lineno}")


def _iter_leandojo(path: Path) -> Iterator[Example]:
    for i, theorem in enumerate(iter_json_array(path)):
        where = f"{path}: theorem #{i}"
        for j, record in enumerate(proofstep_records(theorem, where)):
            yield _from_record(record, f"{where} traced_tactics[{j}]")


def load_examples(path: str | Path, limit: int | None = None) -> tuple[list[Example], str]:
    """The first ``limit`` examples of ``path`` (all when None), and the format they were read in.

    The whole selection is read before any request is sent, so a malformed line
    stops the run at once instead of halfway through.
    """
    path = Path(path)
    fmt = detect_format(path)
    examples = _iter_leandojo(path) if fmt == "leandojo-json" else _iter_jsonl(path)
    selected = list(islice(examples, limit))
    if not selected:
        raise DataError(f"{path}: no examples to evaluate" + (f" (--limit {limit})" if limit is not None else ""))
    return selected, fmt
