"""An ASGI middleware that refuses request bodies over a byte limit with a 413.

It buffers the body (bounded by the limit) before the app sees it, so the
check holds for chunked uploads without a Content-Length too, and the app
never reads a partial body.
"""

from __future__ import annotations

from typing import Any

from llmstep.errors import PayloadTooLarge
from llmstep.server.errors import error_response

__all__ = ["BodyLimitMiddleware"]

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
        response = error_response(PayloadTooLarge.http_status, PayloadTooLarge.code, message)
        await response(scope, receive, send)
