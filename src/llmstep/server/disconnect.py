"""Stop a request's work when its client goes away.

Lean gives up after its timeout and sends a new request on every keystroke;
the old ones should not keep the model busy. The server tells an app that the
client left with an ``http.disconnect`` message on ``receive``, once the body
has been read; so the work is raced against a task that waits for that
message, and cancelled if it comes first. Cancelling reaches the engine's
jobs: dropped if queued, stopped if generating and nobody else waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, TypeVar

from fastapi import Request

from llmstep.errors import ClientDisconnected

__all__ = ["unless_disconnected"]

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    """Return once the client has closed the connection (the body has been read by now)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result; if the client leaves first, ``work`` is cancelled and ClientDisconnected raised."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when the request itself is cancelled (the server's shutdown grace ran out)
        watch.cancel()
        if watch.done() and not watch.cancelled():
            watch.exception()  # a receive that failed means the connection is gone too
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task  # let the cancellation reach the engine before answering
    if task.cancelled():
        raise ClientDisconnected("the client closed the connection before its answer was ready")
    return task.result()
