"""A small HTTP client for a running llmstep server.

It speaks ``/v1/suggest`` and ``/health`` over one pooled connection per
``Client`` and turns every failure into the llmstep exception the server
meant: transport errors become ``ServerUnreachable`` with the command to run,
and error bodies become the class named by their ``code``. A ``server_busy``
answer is retried after its ``Retry-After``, a few times and within the
timeout. Imports no model code, so it starts fast.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import httpx
from pydantic import ValidationError

from llmstep.errors import InvalidRequest, LLMStepError, ServerBusy, ServerUnreachable, error_class_for_code
from llmstep.options import env_token, env_url
from llmstep.protocol.wire import ErrorBody, HealthResponse, SuggestRequest, SuggestResponse

__all__ = ["Client"]


class Client:
    """Talks to one server: ``url`` defaults to ``http://$LLMSTEP_HOST:$LLMSTEP_PORT``, ``token`` to $LLMSTEP_TOKEN.

    ``timeout_s`` bounds a whole call, retries included. A busy server is asked at
    most ``attempts`` times, waiting at most ``max_wait_s`` in all. Use it as a
    context manager (or call ``close``) so its connection closes when you are done.
    """

    def __init__(
        self,
        url: str | None = None,
        timeout_s: float = 30.0,
        token: str | None = None,
        *,
        attempts: int = 3,
        max_wait_s: float = 10.0,
    ) -> None:
        self.url = (url or env_url()).rstrip("/")
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.max_wait_s = max_wait_s
        token = token or env_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers)  # each request passes what is left of its timeout

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connection."""
        self._http.close()

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
        """One call, retried while the server says it is busy and the budget allows."""
        start = time.monotonic()
        deadline = start + self.timeout_s
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            response = self._send(method, path, timeout=max(deadline - time.monotonic(), 0.0), **kwargs)
            if response.status_code < 400:
                return self._reply(response, path, model)
            error = self._error(response)
            if not isinstance(error, ServerBusy):
                raise error
            wait = _retry_after_s(response)
            # Sleep only when an answer is still possible afterwards: a wait past the deadline is wasted.
            if attempt < self.attempts and waited + wait <= self.max_wait_s and time.monotonic() + wait < deadline:
                time.sleep(wait)
                waited += wait
                continue
            raise ServerBusy(
                f"{error.message} (gave up after {attempt} attempt{'s' if attempt > 1 else ''} in "
                f"{time.monotonic() - start:.1f} s; retry later, or start the server with a higher --max-in-flight)"
            )

    def _reply(self, response: httpx.Response, path: str, model: type[Any]) -> Any:
        """The answer parsed as ``model``; anything else is a one-line error quoting it."""
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise LLMStepError(
                f"{self.url}{path} answered something that is not an llmstep reply: {response.text[:200]!r}"
            ) from exc

    def _send(self, method: str, path: str, timeout: float, **kwargs: Any) -> httpx.Response:
        """One HTTP request; transport failures become ``ServerUnreachable`` saying what to do."""
        try:
            return self._http.request(method, path, timeout=timeout, **kwargs)
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

    @staticmethod
    def _error(response: httpx.Response) -> LLMStepError:
        """The exception an error answer stands for, with the server's own message."""
        try:
            detail = ErrorBody.model_validate_json(response.content).error
        except ValidationError:
            return LLMStepError(f"the server answered HTTP {response.status_code}: {response.text[:200]!r}")
        return error_class_for_code(detail.code)(detail.message)


def _retry_after_s(response: httpx.Response) -> float:
    """The wait ``Retry-After`` asks for, in seconds; the server's usual 1 s when it is absent or a date."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return float(ServerBusy.retry_after_s)


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
