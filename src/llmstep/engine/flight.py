"""Single flight: identical requests in flight share one computation.

Lean sends the same ``llmstep`` call again on every edit below it, often
before the first answer is back, and a client that retries sends it twice.
The first caller starts the work; later callers with the same key await the
same task. The work runs on as long as anyone waits for it and is cancelled
when the last caller leaves, so abandoned work stops. Used on the event loop
only, which is single-threaded: no lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Flight(Generic[V]):
    task: asyncio.Task[V]
    waiters: int = 0


class SingleFlight(Generic[K, V]):
    """One running task per key, shared by every caller that asks while it runs."""

    def __init__(self) -> None:
        self._flights: dict[K, _Flight[V]] = {}
        #: Callers that found their key in flight and waited for it instead of starting it again.
        self.joined = 0

    async def run(self, key: K, start: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """``start()``'s result, shared with every concurrent caller of the same ``key``."""
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(start()))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda task: self._landed(key, flight))
        else:
            self.joined += 1
        flight.waiters += 1
        try:
            # shield: one caller leaving (disconnect, deadline) must not cancel the others' work.
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                self._forget(key, flight)  # a caller arriving now starts afresh, not joins a cancelled task
                flight.task.cancel()

    def _forget(self, key: K, flight: _Flight[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    def _landed(self, key: K, flight: _Flight[V]) -> None:
        self._forget(key, flight)
        if not flight.task.cancelled():
            flight.task.exception()  # every waiter has it; marks it retrieved even when none was left

    def __len__(self) -> int:
        return len(self._flights)
