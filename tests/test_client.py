"""The HTTP client against a real llmstep app on 127.0.0.1: one connection per client, bounded busy retries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from llmstep.backends.base import Candidate
from llmstep.client import Client
from llmstep.config import ServeConfig
from llmstep.errors import ModelUnavailable, ServerBusy
from llmstep.server import create_app
from llmstep.server.errors import error_response

from doubles import ScriptedBackend
from support import llmstep, one_line_error


class Front:
    """ASGI middleware before the real app: answers the first ``busy`` requests with a 503, as the
    in-flight limit does, and records the client port of every request it sees."""

    def __init__(self, app: Any, busy: int = 0, retry_after: str = "0", code: str = ServerBusy.code) -> None:
        self.app = app
        self.busy = busy
        self.retry_after = retry_after
        self.code = code
        self.ports: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.ports.append(scope["client"][1])
        if len(self.ports) <= self.busy:
            headers = {"Retry-After": self.retry_after}
            await error_response(503, self.code, "the server is answering 64 requests, its limit", headers)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


@contextmanager
def serving(busy: int = 0, retry_after: str = "0", code: str = ServerBusy.code) -> Iterator[tuple[str, Front]]:
    """The llmstep app (scripted backend) behind ``Front``, under uvicorn on 127.0.0.1; yields URL and front.

    The socket listens before uvicorn starts, so a request waits in its backlog rather than the test
    polling for readiness.
    """
    import uvicorn

    front = Front(create_app(ServeConfig(), ScriptedBackend([Candidate(" simp", -0.1)])), busy, retry_after, code)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(front, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", front
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_one_client_reuses_one_connection() -> None:
    with serving() as (url, front):
        with Client(url) as client:
            assert client.health().status == "ok"
            for _ in range(3):
                assert client.suggest("⊢ True").suggestions[0].tactic == "simp"
        with Client(url) as other:
            other.health()
    assert len(front.ports) == 5
    assert len(set(front.ports[:4])) == 1, "one client object, one connection"
    assert front.ports[4] != front.ports[0], "each client object has its own connection"


def test_busy_server_is_retried_after_retry_after() -> None:
    with serving(busy=1, retry_after="1") as (url, front), Client(url) as client:
        start = time.monotonic()
        reply = client.suggest("⊢ True")
        elapsed = time.monotonic() - start
    assert reply.suggestions[0].tactic == "simp"
    assert len(front.ports) == 2
    assert elapsed >= 1.0, "the retry waited as long as Retry-After asked"


def test_busy_retries_are_bounded_and_the_error_says_what_to_do() -> None:
    with serving(busy=100) as (url, front), Client(url) as client, pytest.raises(ServerBusy) as caught:
        client.suggest("⊢ True")
    assert len(front.ports) == client.attempts == 3
    assert "gave up after 3 attempts" in caught.value.message and "--max-in-flight" in caught.value.message


@pytest.mark.parametrize(
    ("retry_after", "timeout_s"), [("120", 5.0), ("30", 60.0)], ids=["past-the-timeout", "past-the-wait-cap"]
)
def test_no_wait_that_the_budget_cannot_afford(retry_after: str, timeout_s: float) -> None:
    with serving(busy=100, retry_after=retry_after) as (url, front), Client(url, timeout_s=timeout_s) as client:
        start = time.monotonic()
        with pytest.raises(ServerBusy, match="gave up after 1 attempt in"):
            client.suggest("⊢ True")
        assert time.monotonic() - start < 2.0, "it gave up at once rather than sleeping"
    assert len(front.ports) == 1


def test_only_a_busy_server_is_retried() -> None:
    with (
        serving(busy=100, code=ModelUnavailable.code) as (url, front),
        Client(url) as client,
        pytest.raises(ModelUnavailable),
    ):
        client.health()
    assert len(front.ports) == 1


def test_suggest_cli_busy_server_is_one_line() -> None:
    with serving(busy=100) as (url, front):
        r = llmstep("suggest", "⊢ True", "--url", url)
    line = one_line_error(r, 3)
    assert "gave up after 3 attempts" in line and "--max-in-flight" in line
    assert len(front.ports) == 3
