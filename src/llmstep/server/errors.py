"""The one boundary where exceptions become HTTP answers.

``LLMStepError`` subclasses map to their own status and code; a request the
schema rejects is a 422 naming the fields (a 400 when the body is not JSON);
anything else is a logged 500 whose body never carries a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmstep.errors import InvalidRequest, LLMStepError, MalformedJSON, ServerBusy
from llmstep.protocol.wire import ErrorBody, ErrorDetail

__all__ = ["error_response", "install_error_handlers", "note_error"]

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON answer in the :class:`ErrorBody` shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def note_error(scope: dict[str, Any], code: str) -> None:
    """Leave the error code in the request's state, for the metrics and the access log."""
    scope.setdefault("state", {})["error_code"] = code


def _describe(errors: list[dict[str, Any]]) -> str:
    """One line naming each bad field: ``num_samples: Input should be ...; prefix: ...``."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Register the three handlers on ``app``."""

    @app.exception_handler(LLMStepError)
    async def _domain(request: Request, exc: LLMStepError) -> JSONResponse:
        note_error(request.scope, exc.code)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, ServerBusy) else None
        return error_response(exc.http_status, exc.code, exc.message, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            note_error(request.scope, MalformedJSON.code)
            return error_response(MalformedJSON.http_status, MalformedJSON.code, "the request body is not valid JSON")
        note_error(request.scope, InvalidRequest.code)
        return error_response(InvalidRequest.http_status, InvalidRequest.code, _describe(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's only 400: a body it could not decode (bad UTF-8)
            note_error(request.scope, MalformedJSON.code)
            return error_response(400, MalformedJSON.code, "the request body is not valid UTF-8 JSON")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        note_error(request.scope, code)
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        note_error(request.scope, LLMStepError.code)
        return error_response(500, LLMStepError.code, f"internal error ({type(exc).__name__}); see the server log")
