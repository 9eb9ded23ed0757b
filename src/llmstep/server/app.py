"""``create_app``: wires config, backend and engine into a FastAPI app.

No state is created at import time. The model is either handed in (the CLI
loads it first, so a bad ``--model`` fails before the port opens) or loaded
in the lifespan; whoever loads the backend closes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from llmstep import __version__
from llmstep.backends import Backend, load_backend
from llmstep.backends.base import AsyncBackend
from llmstep.config import ServeConfig
from llmstep.engine import SuggestionEngine
from llmstep.server.auth import BearerAuthMiddleware
from llmstep.server.errors import install_error_handlers
from llmstep.server.limits import BodyLimitMiddleware, InFlight, InFlightLimitMiddleware
from llmstep.server.metrics import AccessLogMiddleware, Metrics
from llmstep.server.routes import router

__all__ = ["create_app"]


def create_app(config: ServeConfig | None = None, backend: Backend | None = None) -> FastAPI:
    """The llmstep server app; loads ``config.model`` at startup unless ``backend`` is given."""
    config = config or ServeConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = backend is None
        loaded = await run_in_threadpool(load_backend, config.model) if owned else backend
        engine = SuggestionEngine(loaded, config.decoding, config.prompt_format, config=config.engine)
        app.state.engine = engine
        try:
            yield
        finally:
            app.state.engine = None
            # Fails queued work, stops running work and joins the worker (blocking, so off the loop):
            # once it returns the backend is idle, and only then may it be closed.
            await run_in_threadpool(engine.close)
            if isinstance(loaded, AsyncBackend):
                await loaded.aclose()  # its connections belong to this loop, whoever owns the backend
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

    def stats() -> dict[str, int]:
        engine = app.state.engine
        return engine.stats() if engine is not None else {}

    # Added innermost first. A request meets: access log and metrics, token check, in-flight
    # limit, body limit, then the routes; so every refusal is logged and counted, and an
    # unauthenticated caller never takes an in-flight slot.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    in_flight = InFlight(config.max_in_flight)
    app.add_middleware(InFlightLimitMiddleware, in_flight=in_flight)
    if config.token:
        app.add_middleware(BearerAuthMiddleware, token=config.token)
    app.state.metrics = Metrics(stats, in_flight=lambda: in_flight.count)
    app.add_middleware(AccessLogMiddleware, metrics=app.state.metrics)
    return app
