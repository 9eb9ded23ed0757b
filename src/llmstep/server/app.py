"""``create_app``: wires config, backend and engine into a FastAPI app.

No state is created at import time. The model is either handed in (the CLI
loads it first, so a bad ``--model`` fails before the port opens) or loaded
in the lifespan; whoever loads the backend closes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from llmstep import __version__
from llmstep.backends import Backend, load_backend
from llmstep.config import ServeConfig
from llmstep.engine import SuggestionEngine
from llmstep.server.errors import install_error_handlers
from llmstep.server.limits import BodyLimitMiddleware
from llmstep.server.routes import router

__all__ = ["create_app"]

log = logging.getLogger("llmstep.server")


class AccessLogMiddleware:
    """One log line per request: method, path, status, suggestions, time."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            elapsed_ms = (time.perf_counter() - start) * 1000
            n = (scope.get("state") or {}).get("n_suggestions")
            extra = f" {n} suggestions" if n is not None else ""
            log.info("%s %s %d%s %.1f ms", scope["method"], scope["path"], status, extra, elapsed_ms)


def create_app(config: ServeConfig | None = None, backend: Backend | None = None) -> FastAPI:
    """The llmstep server app; loads ``config.model`` at startup unless ``backend`` is given."""
    config = config or ServeConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = backend is None
        loaded = await run_in_threadpool(load_backend, config.model) if owned else backend
        engine = SuggestionEngine(loaded, config.decoding, config=config.engine)
        app.state.engine = engine
        try:
            yield
        finally:
            app.state.engine = None
            engine.close()
            if owned:
                loaded.close()

    app = FastAPI(
        title="llmstep",
        version=__version__,
        description="Language-model proof-step suggestions for Lean 4.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.engine = None
    install_error_handlers(app)
    app.include_router(router)
    # Outermost first: the access log sees the 413s the body limit sends.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)
    return app
