"""The one exception hierarchy of llmstep, and its three renderings.

Every class carries a stable ``code``, an ``http_status`` and an ``exit_code``.
The server turns an error into ``{"error": {"code", "message"}}`` with that
status, the client turns such a body back into the same class by ``code``, and
the CLI prints ``error: <message>`` and exits with ``exit_code``. The mapping
lives here and nowhere else.

    LLMStepError                 a bug we did not classify            500 / exit 1
    ├── ConfigError              bad flag, env var or backend name    -   / exit 2
    ├── InvalidRequest           malformed JSON, wrong fields         422 / exit 2
    │   └── MalformedJSON        the body is not JSON at all          400 / exit 2
    ├── Unauthorized             missing or wrong bearer token        401 / exit 2
    ├── PayloadTooLarge          body or goal over the limit          413 / exit 2
    ├── ContextTooLong           prompt does not fit the model        400 / exit 2
    ├── ModelUnavailable         model missing or failed to load      503 / exit 3
    ├── ServerBusy               too many requests in flight          503 / exit 3
    ├── ServerUnreachable        client: refused or timed out         -   / exit 3
    ├── ClientDisconnected       server: the client left first        499 / exit 3
    ├── BackendError             the engine failed                    500 / exit 4
    │   ├── GenerationTimeout    the engine was too slow              504 / exit 4
    │   └── UpstreamError        an upstream API failed               502 / exit 4
    └── DataError                a convert/train/eval input is bad    -   / exit 5
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ClientDisconnected",
    "ConfigError",
    "ContextTooLong",
    "DataError",
    "GenerationTimeout",
    "InvalidRequest",
    "LLMStepError",
    "MalformedJSON",
    "ModelUnavailable",
    "PayloadTooLarge",
    "ServerBusy",
    "ServerUnreachable",
    "Unauthorized",
    "UpstreamError",
    "error_class_for_code",
    "first_line",
]


class LLMStepError(Exception):
    """Base of every llmstep error; raised bare only for unclassified bugs."""

    code = "internal"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(LLMStepError):
    """A flag, environment variable or backend name is invalid."""

    code = "config_error"
    http_status = 500
    exit_code = 2


class InvalidRequest(LLMStepError):
    """A request is missing fields, has wrong types or values out of range."""

    code = "invalid_request"
    http_status = 422
    exit_code = 2


class MalformedJSON(InvalidRequest):
    """The request body could not be parsed as JSON."""

    code = "malformed_json"
    http_status = 400


class Unauthorized(LLMStepError):
    """The server wants a bearer token and the request had none, or a wrong one."""

    code = "unauthorized"
    http_status = 401
    exit_code = 2


class PayloadTooLarge(LLMStepError):
    """The body or the tactic state is over the configured limit."""

    code = "payload_too_large"
    http_status = 413
    exit_code = 2


class ContextTooLong(LLMStepError):
    """The prompt does not fit the model's context window."""

    code = "context_too_long"
    http_status = 400
    exit_code = 2


class ModelUnavailable(LLMStepError):
    """The model is missing, failed to load, or is not loaded yet."""

    code = "model_unavailable"
    http_status = 503
    exit_code = 3


class ServerBusy(LLMStepError):
    """More requests are in flight than the server accepts; retry after ``retry_after_s``."""

    code = "server_busy"
    http_status = 503
    exit_code = 3
    retry_after_s = 1


class ServerUnreachable(LLMStepError):
    """The client could not reach the server (refused, DNS, or timed out)."""

    code = "server_unreachable"
    http_status = 503
    exit_code = 3


class ClientDisconnected(LLMStepError):
    """The client closed the connection before its answer; logged as 499 (nginx's code), never seen."""

    code = "client_disconnected"
    http_status = 499
    exit_code = 3


class BackendError(LLMStepError):
    """The generation engine raised while answering a request."""

    code = "backend_error"
    http_status = 500
    exit_code = 4


class GenerationTimeout(BackendError):
    """Generation did not finish within the request's deadline."""

    code = "generation_timeout"
    http_status = 504


class UpstreamError(BackendError):
    """An upstream inference server answered with an error."""

    code = "upstream_error"
    http_status = 502


class DataError(LLMStepError):
    """An input file of convert/train/eval is malformed; the message names file and field."""

    code = "data_error"
    http_status = 400
    exit_code = 5


def _all_classes() -> list[type[LLMStepError]]:
    seen: list[type[LLMStepError]] = [LLMStepError]
    for cls in seen:
        seen.extend(c for c in cls.__subclasses__() if c not in seen)
    return seen


def error_class_for_code(code: str) -> type[LLMStepError]:
    """The class whose ``code`` is ``code``; the base class for unknown codes."""
    for cls in _all_classes():
        if cls.code == code:
            return cls
    return LLMStepError


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type's name when it has none).

    Foreign exceptions (torch, transformers, ctranslate2, TOML) often carry pages of text; the
    one-line errors llmstep prints keep their first line.
    """
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
