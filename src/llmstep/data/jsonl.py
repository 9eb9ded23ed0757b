"""Proofstep JSONL files: writing them all-or-nothing, and reading them back checked.

A proofstep record is ``{"prompt": "[GOAL]…[PROOFSTEP]", "completion": "<tactic>[END]"}``,
optionally with ``theorem`` (the proof it comes from, so that splits can keep
each theorem on one side) and ``context`` (the file's source before the step,
for models that read it).
Writers go to a hidden temporary file beside the target and are renamed into
place only on ``commit()``, so an interrupted or failed conversion never leaves
a half-written file where a finished one is expected.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from llmstep.errors import DataError
from llmstep.protocol.prompt import LLMSTEP_FORMAT

__all__ = [
    "END_MARKER",
    "OPTIONAL_FIELDS",
    "AtomicJsonlWriter",
    "iter_proofsteps",
    "proofstep_record",
    "read_proofsteps",
    "write_proofsteps",
]

#: What ends every completion; the server stops generating there.
END_MARKER = "[END]"

#: String fields a record may carry besides prompt and completion; others are dropped on reading.
OPTIONAL_FIELDS = ("theorem", "context")


def proofstep_record(state: str, tactic: str, *, theorem: str | None = None) -> dict[str, str]:
    """The training record for one step: llmstep's prompt for ``state``, and ``tactic[END]``."""
    record = {"prompt": LLMSTEP_FORMAT.render(state), "completion": tactic + END_MARKER}
    if theorem is not None:
        record["theorem"] = theorem
    return record


class AtomicJsonlWriter:
    """One JSON object per line into a temp file; ``commit()`` renames it onto ``path``.

    Several writers can be committed together after all of them succeeded;
    ``discard()``, or leaving a ``with`` block without ``commit()``, removes the temp file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Not tempfile.mkstemp: its 0600 mode would survive the rename; O_EXCL with 0666 honours the umask.
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._file: IO[str] | None = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self.committed = False
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a line of compact, non-ASCII-escaped JSON."""
        assert self._file is not None, "write after commit/discard"
        self._file.write(json.dumps(record, ensure_ascii=False))
        self._file.write("\n")
        self.count += 1

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def commit(self) -> Path:
        """Flush to disk and move the finished file onto ``path``."""
        assert self._file is not None, "commit after commit/discard"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._close()
        os.replace(self._tmp, self.path)
        self.committed = True
        return self.path

    def discard(self) -> None:
        """Drop the temp file; ``path`` keeps whatever it held before. No-op after ``commit()``."""
        self._close()
        if not self.committed:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicJsonlWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.discard()


def iter_proofsteps(path: str | Path) -> Iterator[dict[str, str]]:
    """Yield ``{"prompt", "completion"}`` records (plus any ``OPTIONAL_FIELDS``) of a JSONL file, checked.

    Blank lines are skipped; anything else that is not an object with string
    ``prompt`` and ``completion`` (and string optional fields, where present)
    raises ``DataError`` naming ``file:line``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected an object, found {type(record).__name__}")
            for key in ("prompt", "completion"):
                if not isinstance(record.get(key), str):
                    raise DataError(
                        f"{path}:{lineno}: field '{key}' must be a string "
                        '(records are {"prompt": ..., "completion": ...}; see `llmstep data leandojo`)'
                    )
            kept = {"prompt": record["prompt"], "completion": record["completion"]}
            for key in OPTIONAL_FIELDS:
                if key in record:
                    if not isinstance(record[key], str):
                        raise DataError(f"{path}:{lineno}: field '{key}' must be a string when present")
                    kept[key] = record[key]
            yield kept


def read_proofsteps(path: str | Path) -> list[dict[str, str]]:
    """All records of a proofstep JSONL file; an empty file is a ``DataError``."""
    records = list(iter_proofsteps(path))
    if not records:
        raise DataError(f"{path}: no proofstep records")
    return records


def write_proofsteps(path: str | Path, records: Iterable[dict[str, str]]) -> Path:
    """Write ``records`` to ``path`` all-or-nothing; e.g. ``(proofstep_record(s, t) for s, t in pairs)``."""
    with AtomicJsonlWriter(path) as writer:
        for record in records:
            writer.write(record)
        return writer.commit()
