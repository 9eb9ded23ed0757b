"""Reading one huge top-level JSON array item by item, without loading it whole.

LeanDojo Benchmark 4 ships each split as a single JSON array of theorems
(hundreds of MB for ``random/train.json``), and ijson is not a dependency. This
reader feeds ``json.JSONDecoder.raw_decode`` from a growing text buffer, so
memory holds one theorem plus one chunk. It knows nothing about theorems.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llmstep.errors import DataError

__all__ = ["iter_json_array"]

_WHITESPACE = " \t\n\r"
_DELIMITER = re.compile(r"[ \t\n\r,\]]")


class _Buffer:
    """Decoded text of a binary file, read on demand; remembers line numbers for messages."""

    def __init__(self, path: Path, chunk_bytes: int, on_bytes: Callable[[int], None] | None) -> None:
        self.path = path
        self._file = path.open("rb")
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._chunk_bytes = chunk_bytes
        self._on_bytes = on_bytes
        self.text = ""
        self.pos = 0  # index into ``text`` of the next unread character
        self.eof = False
        self._lines_dropped = 0  # newlines in text already discarded, for line numbers
        self._line_start_dropped = 0  # chars since the last discarded newline

    def close(self) -> None:
        self._file.close()

    def read_more(self, at_least_chars: int = 0) -> bool:
        """Append the next chunk (bigger when one item spans many chunks); False at end of file."""
        if self.eof:
            return False
        self._compact()
        raw = self._file.read(max(self._chunk_bytes, at_least_chars))
        if self._on_bytes is not None and raw:
            self._on_bytes(len(raw))
        try:
            self.text += self._decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.path}: not UTF-8 text near {self.where()}: {exc.reason}") from exc
        if not raw:
            self.eof = True
        return True

    def _compact(self) -> None:
        """Drop consumed text so the buffer never holds more than the current item."""
        dropped = self.text[: self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self._lines_dropped += newlines
            self._line_start_dropped = len(dropped) - dropped.rfind("\n") - 1
        else:
            self._line_start_dropped += len(dropped)
        self.text = self.text[self.pos :]
        self.pos = 0

    def where(self, pos: int | None = None) -> str:
        """``line L, column C`` (1-based) of ``pos`` in the whole file."""
        pos = self.pos if pos is None else pos
        before = self.text[:pos]
        newlines = before.count("\n")
        column = pos - before.rfind("\n") if newlines else self._line_start_dropped + pos + 1
        return f"line {self._lines_dropped + newlines + 1}, column {column}"

    def next_char(self) -> str:
        """The next non-whitespace character (not consumed), or "" at end of file."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.read_more():
                return ""


def iter_json_array(
    path: str | Path,
    *,
    chunk_bytes: int = 1 << 20,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[Any]:
    """Yield the items of the JSON array that makes up ``path``, one at a time.

    ``on_bytes`` is called with the size of each chunk read, to drive a progress
    bar. A file that is missing, not an array, or not valid JSON raises
    ``DataError`` naming the file and the line and column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    decoder = json.JSONDecoder()
    buf = _Buffer(path, chunk_bytes, on_bytes)
    try:
        first = buf.next_char()
        if first != "[":
            found = "an empty file" if first == "" else f"{first!r}"
            raise DataError(f"{path}: expected a JSON array of theorems ('[') at {buf.where()}, found {found}")
        buf.pos += 1
        if buf.next_char() == "]":
            buf.pos += 1
        else:
            while True:
                yield _decode_item(buf, decoder)
                sep = buf.next_char()
                if sep == "]":
                    buf.pos += 1
                    break
                if sep != ",":
                    found = "end of file" if sep == "" else repr(sep)
                    raise DataError(f"{path}: expected ',' or ']' at {buf.where()}, found {found}")
                buf.pos += 1
        if buf.next_char() != "":
            raise DataError(f"{path}: unexpected text after the array at {buf.where()}")
    finally:
        buf.close()


def _decode_item(buf: _Buffer, decoder: json.JSONDecoder) -> Any:
    """Decode the value at ``buf.pos``, reading more until it is complete."""
    if buf.next_char() == "":
        raise DataError(f"{buf.path}: the file ends inside the array at {buf.where()}")
    while True:
        try:
            value, end = decoder.raw_decode(buf.text, buf.pos)
        except json.JSONDecodeError as exc:
            # Most likely the item continues in the next chunk; only at EOF is it really broken.
            if buf.read_more(at_least_chars=len(buf.text) - buf.pos):
                continue
            raise DataError(f"{buf.path}: invalid JSON at {buf.where(exc.pos)}: {exc.msg}") from exc
        # A number cut by the chunk edge decodes as a shorter one ("-2." gives -2): only trust a
        # scalar once a delimiter follows it. Objects, arrays and strings end in their own bracket.
        if not isinstance(value, (dict, list, str)) and not _DELIMITER.search(buf.text, end) and buf.read_more():
            continue
        buf.pos = end
        return value
