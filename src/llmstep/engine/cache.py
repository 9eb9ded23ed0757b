"""An LRU cache of ranked suggestions.

Lean re-elaborates an ``llmstep`` call every time the user edits anything
below it, with the same goals and prefix. Answering those repeats from memory
turns a model call into a dictionary lookup. Keys are hashes, so a large
tactic state or file context costs 32 bytes per entry, not its length.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["LRUCache", "digest"]

V = TypeVar("V")


def digest(*parts: str) -> bytes:
    """A collision-resistant key for several strings (each length-prefixed, so boundaries count)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


class LRUCache(Generic[V]):
    """A thread-safe least-recently-used map with hit and miss counters; size 0 disables it."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """The value for ``key``, marking it recently used; None (and a miss) if absent."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: V) -> None:
        """Store ``value``, evicting the least recently used entry when full."""
        if self.max_entries <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
