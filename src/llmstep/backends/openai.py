"""The openai backend: forward prompts to an OpenAI-compatible ``/v1/completions`` server.

The upstream can be another llmstep server, ``vllm serve``, llama.cpp's
server, Ollama, or a hosted endpoint. Each prompt is one request (several
prompts go out concurrently); the upstream applies the stop strings and
returns per-token log-probabilities, whose mean is the score, as in the other
backends. An upstream that sends no log-probabilities gets score 0.0 for
every choice, so its own order ranks them.

The server awaits :meth:`OpenAIBackend.generate_async` on its event loop: an
``httpx.AsyncClient`` with pooled connections, no thread per request and no
batcher in front (the upstream batches). Cancelling the awaiting task (the
client left, the deadline passed) closes that request's connection, which
vLLM and llmstep servers take as the end of the request. The blocking
``generate`` (threads, a pooled ``httpx.Client``) serves plain callers; a
request it has sent runs to its end, and ``should_stop`` only keeps the
prompts not yet sent from going out.

Every failure of the upstream is translated here, once: unreachable or a bad
reply → :class:`~llmstep.errors.UpstreamError`, too slow →
:class:`~llmstep.errors.GenerationTimeout`, each with the upstream's own words.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from llmstep.backends.base import Candidate, Encoding, GenerationParams, ShouldStop, never
from llmstep.config import ModelConfig
from llmstep.errors import ConfigError, GenerationTimeout, UpstreamError
from llmstep.protocol.prompt import Prompt, cut_at_first_stop

__all__ = ["OpenAIBackend", "completions_url"]

#: OpenAI accepts at most four stop strings; the rest are applied here, after the reply.
MAX_UPSTREAM_STOPS = 4
#: Requests in flight at once for one batch of prompts, on the blocking path.
MAX_CONCURRENT_REQUESTS = 8
#: Idle connections the async client keeps open to the upstream, for the next requests.
MAX_KEEPALIVE = 64


def completions_url(base_url: str) -> str:
    """``{base}/v1/completions`` for a base URL given with or without ``/v1`` (or the full path)."""
    base = base_url.strip().rstrip("/")
    if base.endswith("/v1/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/completions"


def _error_text(response: httpx.Response) -> str:
    """The upstream's own error message: OpenAI's and llmstep's ``error.message``, FastAPI's ``detail``, or the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("detail"):
            return json.dumps(body["detail"]) if not isinstance(body["detail"], str) else body["detail"]
    text = " ".join(response.text.split())
    return text[:300] or "(empty body)"


def _choice_logprobs(choice: dict[str, Any], kept_chars: int | None) -> tuple[float, ...]:
    """The choice's token log-probabilities, limited to the tokens covering ``kept_chars`` when we cut the text."""
    logprobs = choice.get("logprobs") or {}
    values = logprobs.get("token_logprobs") or []
    tokens = logprobs.get("tokens") or []
    if kept_chars is not None and len(tokens) == len(values):
        covered, used = 0, 0
        while used < len(tokens) and covered <= kept_chars:
            covered += len(tokens[used])
            used += 1
        values = values[:used]  # up to and including the token that holds the stop
    return tuple(float(v) for v in values if isinstance(v, int | float))


class OpenAIBackend:
    """An HTTP client for one upstream model behind an OpenAI-compatible API."""

    name = "openai"
    #: The upstream's window is its own business: it fits or refuses (and its refusal is relayed).
    context_window: int | None = None

    def encode(self, text: str) -> Encoding:
        """Never asked: with no window known here, the engine fits nothing."""
        raise NotImplementedError("the openai backend has no tokenizer; the upstream counts its own tokens")

    def __init__(self, config: ModelConfig) -> None:
        if not config.upstream_url:
            raise ConfigError(
                "the openai backend needs --upstream-url, the base URL of an OpenAI-compatible server "
                "(for example http://localhost:8000/v1)"
            )
        if not config.upstream_url.startswith(("http://", "https://")):
            raise ConfigError(f"--upstream-url must start with http:// or https://, got {config.upstream_url!r}")
        self.url = completions_url(config.upstream_url)
        # Servers that host one model ignore the name; vLLM and hosted APIs need it.
        self.model_id = config.upstream_model or config.model
        self.timeout_s = config.upstream_timeout_s
        self._headers = {"Authorization": f"Bearer {config.upstream_api_key}"} if config.upstream_api_key else {}
        self._client = httpx.Client(timeout=config.upstream_timeout_s, headers=self._headers)
        #: The async client and the event loop it belongs to: its connections cannot move to another loop.
        self._async: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    async def generate_async(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[list[Candidate]]:
        """One request per prompt, all at once, on the running loop; see the module docstring."""
        client = self._async_client()

        async def complete(prompt: Prompt) -> list[Candidate]:
            body = self.request_body(prompt.text, params)
            try:
                response = await client.post(self.url, json=body)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from exc
            return self._candidates(self._reply(response), params)

        return list(await asyncio.gather(*(complete(p) for p in prompts)))

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=MAX_KEEPALIVE)
            client = httpx.AsyncClient(timeout=self.timeout_s, headers=self._headers, limits=limits)
            self._async = (loop, client)
        return self._async[1]

    async def aclose(self) -> None:
        """Close the async client's connections; on the loop that used it (the server's, at shutdown)."""
        if self._async is not None and self._async[0] is asyncio.get_running_loop():
            await self._async[1].aclose()
            self._async = None

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """One request per prompt, sent concurrently; see :class:`~llmstep.backends.base.Backend`."""

        def complete(prompt: Prompt) -> list[Candidate]:
            return [] if should_stop() else self._complete(prompt.text, params)

        if len(prompts) == 1:
            return [complete(prompts[0])]
        with ThreadPoolExecutor(max_workers=min(len(prompts), MAX_CONCURRENT_REQUESTS)) as pool:
            return list(pool.map(complete, prompts))

    def request_body(self, prompt: str, params: GenerationParams) -> dict[str, Any]:
        """The ``/v1/completions`` body for one prompt."""
        greedy = params.decoding == "sample" and params.temperature == 0.0
        body: dict[str, Any] = {
            "model": self.model_id,
            "prompt": prompt,
            "n": 1 if greedy else params.num_samples,  # greedy samples would all be the same
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "stop": list(params.stop[:MAX_UPSTREAM_STOPS]),
            "logprobs": 1,  # one alternative is the least servers allow; we read only the chosen token's
        }
        if params.decoding == "beam":
            body.update(use_beam_search=True, temperature=0.0)  # vLLM's extension; llmstep servers accept it
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request; every transport or protocol failure leaves as an llmstep error."""
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        return self._reply(response)

    def _transport_error(self, exc: httpx.HTTPError) -> UpstreamError | GenerationTimeout:
        """What a failed send means to the user: the server is unreachable, or too slow."""
        if isinstance(exc, httpx.ConnectTimeout):
            return UpstreamError(
                f"cannot reach the upstream server at {self.url}: no connection within {self.timeout_s:g} s"
            )
        if isinstance(exc, httpx.TimeoutException):
            return GenerationTimeout(f"the upstream server at {self.url} did not answer within {self.timeout_s:g} s")
        reason = str(exc) or type(exc).__name__
        return UpstreamError(
            f"cannot reach the upstream server at {self.url}: {reason}; is it running? check --upstream-url"
        )

    def _reply(self, response: httpx.Response) -> dict[str, Any]:
        """The completions reply, or an UpstreamError with the upstream's own words."""
        if not response.is_success:
            hint = "; check $LLMSTEP_UPSTREAM_API_KEY" if response.status_code in (401, 403) else ""
            raise UpstreamError(
                f"the upstream server at {self.url} answered {response.status_code}: {_error_text(response)}{hint}"
            )
        try:
            reply = response.json()
            choices = reply["choices"]
            if not isinstance(choices, list):
                raise TypeError("choices is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            snippet = " ".join(response.text.split())[:200] or "(empty body)"
            raise UpstreamError(
                f"the upstream server at {self.url} did not send a completions reply ({exc}): {snippet}"
            ) from exc
        return reply

    def _complete(self, prompt: str, params: GenerationParams) -> list[Candidate]:
        return self._candidates(self._post(self.request_body(prompt, params)), params)

    def _candidates(self, reply: dict[str, Any], params: GenerationParams) -> list[Candidate]:
        """The reply's choices as candidates, cut at the stops the upstream did not apply."""
        candidates = []
        for choice in reply["choices"][: params.num_samples]:
            if not isinstance(choice, dict) or not isinstance(choice.get("text"), str):
                raise UpstreamError(f"the upstream server at {self.url} sent a choice without text: {choice!r:.200}")
            # The stops past the upstream's four, and any it ignored.
            text, cut = cut_at_first_stop(choice["text"], params.stop)
            logprobs = _choice_logprobs(choice, len(text) if cut else None)
            finish = "length" if choice.get("finish_reason") == "length" and not cut else "stop"
            score = sum(logprobs) / len(logprobs) if logprobs else 0.0
            candidates.append(Candidate(text=text, score=score, token_logprobs=logprobs, finish_reason=finish))
        return candidates

    def schedules_rows(self, params: GenerationParams) -> bool:
        """True: each request goes straight upstream, whose own batching (vLLM's continuous batching,
        another llmstep's loop) merges concurrent requests far better than holding them here to merge."""
        return True

    def close(self) -> None:
        """Close the blocking client's connection pool (the async one is closed by ``aclose``, on its loop)."""
        self._client.close()
