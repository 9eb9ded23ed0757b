"""ASGI middlewares that refuse work early: bodies over a byte limit (413) and
requests past the in-flight limit (503 with Retry-After).

The body limit buffers the body (bounded by the limit) before the app sees it,
so the check holds for chunked uploads without a Content-Length too, and the
app never reads a partial body. The in-flight limit is backpressure: past it,
a client is told to come back rather than queued behind work it will not wait
for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmstep.errors import PayloadTooLarge, ServerBusy
from llmstep.server.errors import error_response, note_error

__all__ = ["BodyLimitMiddleware", "InFlight", "InFlightLimitMiddleware"]

#: Cheap routes that stay answerable under load.
UNLIMITED_PATHS = frozenset({"/health", "/metrics"})

Scope = dict[str, Any]


class BodyLimitMiddleware:
    """Answer 413 to any HTTP request whose body exceeds ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()  # after the body: wait for the disconnect, as the server would
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any) -> None:
        message = f"request body is over the limit of {self.max_bytes} bytes"
        note_error(scope, PayloadTooLarge.code)
        response = error_response(PayloadTooLarge.http_status, PayloadTooLarge.code, message)
        await response(scope, receive, send)


@dataclass
class InFlight:
    """How many requests are being answered, and how many may be; read by the metrics."""

    limit: int
    count: int = 0  # changed only on the event loop, which is single-threaded: no lock needed


class InFlightLimitMiddleware:
    """Answer 503 with ``Retry-After`` while ``in_flight.limit`` requests are already being served."""

    def __init__(self, app: Any, in_flight: InFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        flight = self.in_flight
        if flight.count >= flight.limit:
            note_error(scope, ServerBusy.code)
            response = error_response(
                ServerBusy.http_status,
                ServerBusy.code,
                f"the server is answering {flight.count} requests, its limit; retry in {ServerBusy.retry_after_s} s",
                headers={"Retry-After": str(ServerBusy.retry_after_s)},
            )
            await response(scope, receive, send)
            return
        flight.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            flight.count -= 1
