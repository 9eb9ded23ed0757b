"""The HTTP routes: request shape in, engine call, response shape out.

Four protocols share one engine: llmstep's original ``POST /``, the scored
``POST /v1/suggest`` that the Lean package and CLI use, Lean Copilot's
``POST /generate``, and OpenAI's ``POST /v1/completions`` for raw prompts.
Routes are ``async``: they await the engine, whose blocking work runs on other
threads, so a cache hit, ``/health`` and ``/metrics`` answer on the event loop
however many generations are in flight, and no route holds a thread while it
waits. A route whose client leaves cancels its work (``unless_disconnected``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmstep.backends.base import GenerationParams
from llmstep.engine import Suggestion, SuggestionEngine, Suggestions
from llmstep.errors import InvalidRequest, ModelUnavailable
from llmstep.protocol.openai import CompletionChoice, CompletionLogprobs, CompletionRequest, CompletionResponse
from llmstep.protocol.wire import (
    ErrorBody,
    GenerateOutput,
    GenerateRequest,
    GenerateResponse,
    HealthResponse,
    LLMstepRequest,
    LLMstepResponse,
    ScoredSuggestion,
    SuggestRequest,
    SuggestResponse,
)
from llmstep.server.disconnect import unless_disconnected

__all__ = ["router"]

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 413, 422, 500, 503)}

router = APIRouter(responses=_ERRORS)


def _engine(request: Request) -> SuggestionEngine:
    engine: SuggestionEngine | None = request.app.state.engine
    if engine is None:
        raise ModelUnavailable("the model is not loaded yet; retry in a moment")
    return engine


def _record(request: Request, result: Suggestions) -> tuple[Suggestion, ...]:
    """Leave the count for the access-log line; returns the suggestions."""
    request.state.n_suggestions = len(result.items)
    return result.items


@router.post("/", response_model=LLMstepResponse, summary="llmstep's original protocol")
async def llmstep_suggest(body: LLMstepRequest, request: Request) -> LLMstepResponse:
    """Tactics for a tactic state, best first: the reply the original llmstep client expects."""
    work = _engine(request).suggest(body.tactic_state, body.prefix, context=body.context)
    suggestions = _record(request, await unless_disconnected(request, work))
    return LLMstepResponse(suggestions=[s.tactic for s in suggestions])


@router.post("/v1/suggest", response_model=SuggestResponse, summary="Scored suggestions")
async def v1_suggest(body: SuggestRequest, request: Request) -> SuggestResponse:
    """Tactics with their scores (mean token log-probability), best first."""
    engine = _engine(request)
    start = time.perf_counter()
    work = engine.suggest(
        body.tactic_state,
        body.prefix,
        context=body.context,
        num_samples=body.num_samples,
        temperature=body.temperature,
        max_new_tokens=body.max_new_tokens,
    )
    result = await unless_disconnected(request, work)
    elapsed_ms = (time.perf_counter() - start) * 1000
    suggestions = _record(request, result)
    return SuggestResponse(
        suggestions=[ScoredSuggestion(tactic=s.tactic, score=s.score) for s in suggestions],
        model=engine.backend.model_id,
        elapsed_ms=round(elapsed_ms, 3),
        truncated=result.truncated,
        truncated_chars=result.truncated_chars,
        cached=result.cached,
        dropped_samples=result.dropped_samples,
    )


@router.post("/generate", response_model=GenerateResponse, summary="Lean Copilot's external-model protocol")
async def copilot_generate(body: GenerateRequest, request: Request) -> GenerateResponse:
    """Lean Copilot's ``ExternalGenerator`` request: ``input`` is the tactic state."""
    work = _engine(request).suggest(body.input, body.prefix)
    suggestions = _record(request, await unless_disconnected(request, work))
    return GenerateResponse(outputs=[GenerateOutput(output=s.tactic, score=s.score) for s in suggestions])


@router.post("/v1/completions", response_model=CompletionResponse, summary="OpenAI-compatible completions")
async def openai_completions(body: CompletionRequest, request: Request) -> CompletionResponse:
    """The raw prompt continued ``n`` times, so any OpenAI client can use the hosted model."""
    if body.stream:
        raise InvalidRequest("stream: streaming is not supported; send stream=false")
    engine = _engine(request)
    params = GenerationParams(
        num_samples=body.n,
        temperature=body.temperature,
        max_new_tokens=body.max_tokens,
        decoding="beam" if body.use_beam_search else "sample",
        stop=body.stops(),
        seed=body.seed,
    )
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts or not all(prompts):
        raise InvalidRequest("prompt: must be a non-empty string, or a non-empty list of them")
    choices: list[CompletionChoice] = []
    for prompt in prompts:
        for cand in (await unless_disconnected(request, engine.complete(prompt, params)))[: body.n]:
            logprobs = (
                CompletionLogprobs(token_logprobs=list(cand.token_logprobs)) if body.logprobs is not None else None
            )
            choices.append(
                CompletionChoice(
                    index=len(choices), text=cand.text, logprobs=logprobs, finish_reason=cand.finish_reason
                )
            )
    request.state.n_suggestions = len(choices)
    return CompletionResponse(
        id=f"cmpl-{uuid.uuid4().hex}", created=int(time.time()), model=engine.backend.model_id, choices=choices
    )


@router.get("/health", response_model=HealthResponse, summary="What is being served")
async def health(request: Request) -> HealthResponse:
    """The model, backend, prompt format, and cache and batching counters; 503 while loading."""
    engine = _engine(request)
    return HealthResponse(
        status="ok",
        model=engine.backend.model_id,
        backend=engine.backend.name,
        prompt_format=engine.prompt_format.name,
        stats=engine.stats(),
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> PlainTextResponse:
    """Requests by route and status, errors by code, latency, in-flight, queue depth, cache hits."""
    return PlainTextResponse(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
