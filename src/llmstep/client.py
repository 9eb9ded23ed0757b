"""A small HTTP client for a running llmstep server.

It speaks ``/v1/suggest`` and ``/health`` and turns every failure into the
llmstep exception the server meant: transport errors become
``ServerUnreachable`` with the command to run, and error bodies become the
class named by their ``code``. Imports no model code, so it starts fast.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from llmstep.config import env_token, env_url
from llmstep.errors import InvalidRequest, LLMStepError, ServerUnreachable, error_class_for_code
from llmstep.protocol.wire import ErrorBody, HealthResponse, SuggestRequest, SuggestResponse

__all__ = ["Client"]


class Client:
    """Talks to one server: ``url`` defaults to ``http://$LLMSTEP_HOST:$LLMSTEP_PORT``, ``token`` to $LLMSTEP_TOKEN."""

    def __init__(self, url: str | None = None, timeout_s: float = 30.0, token: str | None = None) -> None:
        self.url = (url or env_url()).rstrip("/")
        self.timeout_s = timeout_s
        token = token or env_token()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def suggest(
        self,
        tactic_state: str,
        prefix: str = "",
        *,
        context: str = "",
        num_samples: int | None = None,
        temperature: float | None = None,
        max_new_tokens: int | None = None,
    ) -> SuggestResponse:
        """Scored suggestions for ``tactic_state``, best first."""
        try:
            request = SuggestRequest(
                tactic_state=tactic_state,
                prefix=prefix,
                context=context,
                num_samples=num_samples,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
            )
        except ValidationError as exc:
            raise InvalidRequest(_describe(exc)) from exc
        body = request.model_dump(exclude_none=True)
        return self._call("POST", "/v1/suggest", SuggestResponse, json=body)

    def health(self) -> HealthResponse:
        """What the server is serving."""
        return self._call("GET", "/health", HealthResponse)

    def _call(self, method: str, path: str, model: type[Any], **kwargs: Any) -> Any:
        try:
            response = httpx.request(method, self.url + path, timeout=self.timeout_s, headers=self._headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"the llmstep server at {self.url} did not answer within {self.timeout_s:g} s "
                "(raise --timeout, or check the server's log)"
            ) from exc
        except httpx.HTTPError as exc:
            raise ServerUnreachable(
                f"cannot reach the llmstep server at {self.url} ({type(exc).__name__}); "
                "start it with `llmstep serve`, or pass --url"
            ) from exc
        if response.status_code >= 400:
            raise self._error(response)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise LLMStepError(
                f"{self.url}{path} answered something that is not an llmstep reply: {response.text[:200]!r}"
            ) from exc

    @staticmethod
    def _error(response: httpx.Response) -> LLMStepError:
        """The exception an error answer stands for, with the server's own message."""
        try:
            detail = ErrorBody.model_validate_json(response.content).error
        except ValidationError:
            return LLMStepError(f"the server answered HTTP {response.status_code}: {response.text[:200]!r}")
        return error_class_for_code(detail.code)(detail.message)


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
