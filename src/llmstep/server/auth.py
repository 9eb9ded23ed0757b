"""Bearer-token access control, for servers reachable from other machines.

With a token set, every route but ``/health`` wants ``Authorization: Bearer
<token>``; anything else gets a 401 before any work is done. Tokens are
compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Any

from llmstep.errors import Unauthorized
from llmstep.server.errors import error_response, note_error

__all__ = ["OPEN_PATHS", "BearerAuthMiddleware"]

#: Routes that answer without a token: liveness checks must work for monitors.
OPEN_PATHS = frozenset({"/health"})


class BearerAuthMiddleware:
    """Answer 401 unless the request carries the configured bearer token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
            return
        why = "no bearer token" if not given else "a wrong bearer token"
        note_error(scope, Unauthorized.code)
        response = error_response(
            Unauthorized.http_status,
            Unauthorized.code,
            f"this server requires a token and the request had {why}; send 'Authorization: Bearer <token>' "
            "(llmstep suggest --token, or LLMSTEP_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
