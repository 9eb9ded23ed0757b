"""The openai backend against real servers: another llmstep server, and misbehaving stand-ins.

The happy path forwards to our own app (serving the tiny model) over HTTP, so
the request body, the reply parsing and the scores are checked against a real
``/v1/completions``. Failures use tiny socket servers written here, each
standing in for an upstream that is down, broken or hung.
"""

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from llmstep.backends import Backend, load_backend
from llmstep.backends.base import AsyncBackend, GenerationParams
from llmstep.backends.openai import OpenAIBackend, completions_url
from llmstep.config import DecodingConfig, EngineConfig, ModelConfig, ServeConfig
from llmstep.engine import SuggestionEngine, Suggestions
from llmstep.errors import ConfigError, GenerationTimeout, UpstreamError
from llmstep.protocol.prompt import Prompt

from doubles import GatedBackend
from support import live_server, own_pairs

PAIRS = own_pairs()
PROMPT = "[GOAL]p : Prop\n⊢ p → p[PROOFSTEP]"


def upstream(url: str, **overrides: object) -> OpenAIBackend:
    settings = {"backend": "openai", "model": "tiny", "upstream_url": url, "upstream_model": "tiny"} | overrides
    return OpenAIBackend(ModelConfig(**settings))


@pytest.fixture(scope="module")
def upstream_url(hf_backend: Backend) -> Iterator[str]:
    """A second llmstep server with the tiny model: the upstream the openai backend talks to."""
    with live_server(ServeConfig(), hf_backend) as url:
        yield url


@pytest.mark.parametrize(
    "decoding",
    [DecodingConfig(decoding="beam", num_samples=4), DecodingConfig(temperature=0.0)],
    ids=["beam", "greedy"],
)
def test_trained_pairs_come_back_top_with_hf_scores(
    upstream_url: str, hf_backend: Backend, decoding: DecodingConfig
) -> None:
    remote = SuggestionEngine(upstream(upstream_url), decoding)
    local = SuggestionEngine(hf_backend, decoding)
    for state, tactic in PAIRS:
        (top, *_) = asyncio.run(remote.suggest(state)).items
        assert top.tactic == tactic
        assert top.score == pytest.approx(asyncio.run(local.suggest(state)).items[0].score, abs=1e-6)


def test_several_prompts_and_a_v1_base_url(upstream_url: str) -> None:
    backend = upstream(upstream_url + "/v1/")
    prompts = [Prompt(f"[GOAL]{state}[PROOFSTEP]") for state, _ in PAIRS[:3]]
    rows = backend.generate(prompts, GenerationParams(num_samples=3, decoding="beam", max_new_tokens=24))
    assert [row[0].text for row in rows] == [t for _, t in PAIRS[:3]]
    for row in rows:
        assert 1 <= len(row) <= 3
        assert all(
            c.token_logprobs and c.score == pytest.approx(sum(c.token_logprobs) / len(c.token_logprobs)) for c in row
        )


def test_requests_go_straight_upstream_not_through_a_batch_window(upstream_url: str) -> None:
    """The upstream batches; a batch window here would only hold each request back (60 s here, past the deadline)."""
    config = EngineConfig(batch_window_ms=60_000, max_batch_size=8, request_timeout_s=20, cache_size=0)
    engine = SuggestionEngine(upstream(upstream_url), DecodingConfig(temperature=0.0), config=config)

    async def two() -> list[Suggestions]:
        return list(await asyncio.gather(engine.suggest(PAIRS[0][0]), engine.suggest(PAIRS[1][0])))

    first, second = asyncio.run(two())
    assert (first.items[0].tactic, second.items[0].tactic) == (PAIRS[0][1], PAIRS[1][1])
    assert engine.stats()["largest_batch"] == 1  # each request was its own upstream call
    engine.close()


def test_the_engine_awaits_the_upstream_on_its_loop(upstream_url: str) -> None:
    """The async client answers as the blocking one does, each request its own call."""
    backend = upstream(upstream_url)
    assert isinstance(backend, AsyncBackend)
    engine = SuggestionEngine(backend, DecodingConfig(temperature=0.0), config=EngineConfig(cache_size=0))

    async def ask() -> list[Suggestions]:
        try:
            return list(await asyncio.gather(*(engine.suggest(state) for state, _ in PAIRS)))
        finally:
            await backend.aclose()

    try:
        replies = asyncio.run(ask())
    finally:
        engine.close()
        backend.close()
    assert [r.items[0].tactic for r in replies] == [t for _, t in PAIRS]
    assert engine.stats()["batched_requests"] == len(PAIRS)


def test_a_deadline_here_cancels_the_request_upstream() -> None:
    """A downstream server's deadline cancels its awaited upstream request: the upstream llmstep server sees
    the connection close and stops the generation, instead of decoding for nobody."""
    upstream_backend = GatedBackend(rows=True)
    try:
        with live_server(ServeConfig(), upstream_backend) as up:
            forwarding = upstream(up)
            config = ServeConfig(engine=EngineConfig(request_timeout_s=0.5, cache_size=0))
            with live_server(config, forwarding) as url:
                r = httpx.post(url + "/v1/suggest", json={"tactic_state": "⊢ slow"}, timeout=30)
                assert r.status_code == 504, r.text
                assert upstream_backend.stop_seen.wait(30)  # the upstream stopped decoding for nobody
            forwarding.close()
    finally:
        upstream_backend.release.set()


def test_the_registry_builds_it_and_needs_an_url() -> None:
    assert isinstance(load_backend(ModelConfig(backend="openai", upstream_url="http://x:1")), OpenAIBackend)
    with pytest.raises(ConfigError, match="--upstream-url"):
        load_backend(ModelConfig(backend="openai"))


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1/completions"),
        ("http://h:8000/", "http://h:8000/v1/completions"),
        ("http://h:8000/v1", "http://h:8000/v1/completions"),
        ("https://h/api/v1/", "https://h/api/v1/completions"),
        ("http://h/v1/completions", "http://h/v1/completions"),
    ],
)
def test_completions_url(base: str, expected: str) -> None:
    assert completions_url(base) == expected


# --- Upstreams that misbehave ---------------------------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler], tuple[int, str]]


@contextmanager
def stub_upstream(answer: Handler) -> Iterator[tuple[str, list[dict]]]:
    """Stands in for an OpenAI-compatible server: ``answer`` picks status and body; yields URL and requests seen."""
    seen: list[dict] = []

    class Handle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status, text = answer(self)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_body_key_and_a_reply_without_logprobs() -> None:
    """An upstream that sends no log-probabilities: every score is 0.0, so its order ranks them."""
    reply = {"choices": [{"index": i, "text": t, "finish_reason": "stop"} for i, t in enumerate(["b", "a", "b"])]}
    with stub_upstream(lambda _: (200, json.dumps(reply))) as (url, seen):
        backend = upstream(url, upstream_api_key="sk-test", upstream_model="remote-model")
        params = GenerationParams(num_samples=3, temperature=0.7, max_new_tokens=20, seed=4)
        suggestions = asyncio.run(SuggestionEngine(backend).suggest("⊢ True"))
        (cands,) = backend.generate([Prompt(PROMPT)], params)
    assert [s.tactic for s in suggestions.items] == ["b", "a"]
    assert [c.score for c in cands] == [0.0, 0.0, 0.0]
    request = seen[-1]
    assert request["path"] == "/v1/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"] == {
        "model": "remote-model",
        "prompt": PROMPT,
        "n": 3,
        "max_tokens": 20,
        "temperature": 0.7,
        "stop": ["[END]", "\n"],
        "logprobs": 1,
        "seed": 4,
    }


def test_stops_the_upstream_ignored_are_applied_and_scored_to_the_stop() -> None:
    logprobs = {"tokens": ["exact", " h", "\n", "junk"], "token_logprobs": [-0.5, -0.25, -0.75, -9.0]}
    reply = {"choices": [{"text": "exact h\njunk", "logprobs": logprobs, "finish_reason": "length"}]}
    with stub_upstream(lambda _: (200, json.dumps(reply))) as (url, _):
        (cands,) = upstream(url).generate([Prompt(PROMPT)], GenerationParams(num_samples=1))
    assert cands[0].text == "exact h" and cands[0].finish_reason == "stop"
    assert cands[0].token_logprobs == (-0.5, -0.25, -0.75)
    assert cands[0].score == pytest.approx(-0.5)


def test_an_upstream_that_is_down_names_its_url() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UpstreamError, match=rf"127\.0\.0\.1:{port}/v1/completions.*is it running"):
        upstream(f"http://127.0.0.1:{port}").generate([Prompt(PROMPT)], GenerationParams())


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, json.dumps({"error": {"message": "CUDA out of memory", "type": "internal"}}), "500: CUDA out of memory"),
        (422, json.dumps({"detail": "n must be at most 64"}), "422: n must be at most 64"),
        (401, "bad key", "401: bad key; check \\$LLMSTEP_UPSTREAM_API_KEY"),
        (200, "<html>gateway says hi</html>", "did not send a completions reply.*gateway says hi"),
        (200, json.dumps({"object": "error"}), "did not send a completions reply"),
    ],
    ids=["500-json", "422-detail", "401-text", "200-html", "200-no-choices"],
)
def test_a_broken_upstream_reply_is_an_upstream_error(status: int, body: str, expected: str) -> None:
    with stub_upstream(lambda _: (status, body)) as (url, _), pytest.raises(UpstreamError, match=expected) as info:
        upstream(url).generate([Prompt(PROMPT)], GenerationParams())
    assert "\n" not in info.value.message and url in info.value.message


def test_a_hung_upstream_is_a_generation_timeout() -> None:
    """Stands in for an upstream that accepts the connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        backend = upstream(f"http://127.0.0.1:{listener.getsockname()[1]}", upstream_timeout_s=0.3)
        with pytest.raises(GenerationTimeout, match=r"did not answer within 0\.3 s"):
            backend.generate([Prompt(PROMPT), Prompt(PROMPT)], GenerationParams())
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
