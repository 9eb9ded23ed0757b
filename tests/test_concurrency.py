"""Many requests at once: cheap answers never wait behind generation, identical requests share one,
abandoned work stops, and shutdown never calls a closed backend.

A :class:`~doubles.GatedBackend` holds the backend busy until the test releases it, so "while
generating" is a state the test controls. Waits are on events, or on the server's own counters.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from llmstep.backends import Backend
from llmstep.config import DecodingConfig, EngineConfig, ServeConfig
from llmstep.engine import SuggestionEngine
from llmstep.errors import ModelUnavailable

from doubles import GatedBackend
from support import live_server, own_pairs

#: More requests than Starlette's thread pool has threads (40): the old synchronous routes starved here.
HELD = 45
WAIT_S = 30


def stats(url: str) -> dict[str, int]:
    return httpx.get(url + "/health", timeout=WAIT_S).json()["stats"]


def until(condition: Callable[[], bool], what: str) -> None:
    """Return once ``condition()`` holds; each check is a round trip to the server, not a sleep."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


async def until_async(condition: Callable[[], bool], what: str) -> None:
    """``until`` on an event loop: yield to the loop between checks."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0)


async def wait_event(event: Any) -> None:
    """Wait for a ``threading.Event`` without blocking the loop."""
    assert await asyncio.to_thread(event.wait, WAIT_S)


@contextmanager
def raw_request(url: str, path: str, body: dict[str, Any]) -> Iterator[socket.socket]:
    """A POST sent on a bare socket; leaving the block closes the connection, as a client that gives up does."""
    parts = urlsplit(url)
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT_S)
    try:
        sock.sendall(head + data)
        yield sock
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def suggest_body(state: str) -> dict[str, str]:
    return {"tactic_state": state}


def test_cache_hits_health_and_metrics_answer_while_the_backend_is_held_busy() -> None:
    backend = GatedBackend()
    with live_server(ServeConfig(), backend) as url:
        backend.release.set()
        first = httpx.post(url + "/v1/suggest", json=suggest_body("⊢ cached"), timeout=WAIT_S).json()
        backend.release.clear()
        with ThreadPoolExecutor(max_workers=HELD) as pool:
            held = [
                pool.submit(httpx.post, url + "/v1/suggest", json=suggest_body(f"⊢ held {i}"), timeout=120)
                for i in range(HELD)
            ]
            until(lambda: stats(url)["queue_depth"] == HELD, f"{HELD} requests in the engine")
            # The backend is still held: these answers did not wait for it, nor for a thread.
            hit = httpx.post(url + "/v1/suggest", json=suggest_body("⊢ cached"), timeout=10)
            health = httpx.get(url + "/health", timeout=10)
            metrics = httpx.get(url + "/metrics", timeout=10)
            assert not any(f.done() for f in held)
            backend.release.set()
            answers = [f.result() for f in held]
    assert hit.status_code == 200 and hit.json()["cached"] is True
    assert hit.json()["suggestions"] == first["suggestions"]
    assert health.status_code == 200 and health.json()["stats"]["queue_depth"] == HELD
    assert metrics.status_code == 200 and f"llmstep_in_flight {HELD}.0" in metrics.text
    assert [a.status_code for a in answers] == [200] * HELD


def test_identical_requests_in_flight_reach_the_backend_once() -> None:
    backend = GatedBackend()
    with live_server(ServeConfig(), backend) as url:
        with ThreadPoolExecutor(max_workers=4) as pool:
            replies = [
                pool.submit(httpx.post, url + "/v1/suggest", json=suggest_body("⊢ same"), timeout=WAIT_S)
                for _ in range(4)
            ]
            until(lambda: stats(url)["joined_in_flight"] == 3, "three requests joining the first")
            backend.release.set()
            bodies = [r.result().json() for r in replies]
        assert stats(url)["cache_misses"] == 4  # none was a cache hit: they shared the generation
    assert len(backend.calls) == 1
    assert all(b["suggestions"] == bodies[0]["suggestions"] == [{"tactic": "done 23", "score": -0.1}] for b in bodies)


def test_a_shared_generation_outlives_its_first_caller_and_stops_with_its_last() -> None:
    backend = GatedBackend()
    engine = SuggestionEngine(backend)

    async def scenario() -> None:
        first = asyncio.create_task(engine.suggest("⊢ shared"))
        await wait_event(backend.entered)
        second = asyncio.create_task(engine.suggest("⊢ shared"))
        await until_async(lambda: engine.stats()["joined_in_flight"] == 1, "the second caller joining")
        first.cancel()  # the first client leaves: the second still wants the answer
        await asyncio.gather(first, return_exceptions=True)
        assert engine.stats()["jobs_cancelled"] == 0 and not backend.stop_seen.is_set()
        backend.release.set()
        assert [s.tactic for s in (await second).items] == ["done 25"]

        backend.release.clear()
        callers = [asyncio.create_task(engine.suggest("⊢ abandoned")) for _ in range(2)]
        await until_async(lambda: engine.stats()["joined_in_flight"] == 2, "both callers in flight")
        await until_async(lambda: len(backend.calls) == 2, "the generation to start")
        for caller in callers:  # every client leaves: the generation stops
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await wait_event(backend.stop_seen)

    try:
        asyncio.run(scenario())
    finally:
        engine.close()
    assert len(backend.calls) == 2
    s = engine.stats()
    assert (s["jobs_cancelled"], s["jobs_dropped"], s["jobs_stopped"]) == (1, 0, 1)
    assert s["cache_entries"] == 1  # the stopped generation's partial answer was not cached


def test_a_client_that_disconnects_stops_its_generation() -> None:
    backend = GatedBackend()
    with live_server(ServeConfig(), backend) as url:
        with raw_request(url, "/v1/suggest", suggest_body("⊢ given up")):
            assert backend.entered.wait(WAIT_S)
        assert backend.stop_seen.wait(WAIT_S)  # the backend was told to stop, and did
        s = stats(url)
        metrics = httpx.get(url + "/metrics").text
        backend.release.set()
        after = httpx.post(url + "/v1/suggest", json=suggest_body("⊢ given up"), timeout=WAIT_S)
    assert (s["jobs_cancelled"], s["jobs_dropped"], s["jobs_stopped"], s["cache_entries"]) == (1, 0, 1, 0)
    assert "llmstep_jobs_stopped 1.0" in metrics and "llmstep_jobs_cancelled 1.0" in metrics
    assert 'llmstep_errors_total{code="client_disconnected"} 1.0' in metrics
    assert after.status_code == 200 and after.json()["cached"] is False  # generated afresh, in full


def test_a_queued_request_whose_client_leaves_is_dropped_from_its_batch() -> None:
    backend = GatedBackend()
    config = ServeConfig(engine=EngineConfig(max_batch_size=1))
    with live_server(config, backend) as url:
        with ThreadPoolExecutor(max_workers=1) as pool:
            held = pool.submit(httpx.post, url + "/v1/suggest", json=suggest_body("⊢ held"), timeout=WAIT_S)
            assert backend.entered.wait(WAIT_S)
            with raw_request(url, "/v1/suggest", suggest_body("⊢ queued")):
                until(lambda: stats(url)["queue_depth"] == 2, "the second request queued")
            until(lambda: stats(url)["jobs_dropped"] == 1, "the queued job dropped")
            backend.release.set()
            assert held.result().status_code == 200
        # Sent after the dropped job: by the time it is answered, the dropped job's turn has passed.
        assert httpx.post(url + "/v1/suggest", json=suggest_body("⊢ later"), timeout=WAIT_S).status_code == 200
        s = stats(url)
    assert backend.calls == [["[GOAL]⊢ held[PROOFSTEP]"], ["[GOAL]⊢ later[PROOFSTEP]"]]
    assert (s["jobs_cancelled"], s["jobs_dropped"], s["jobs_stopped"]) == (1, 1, 0)


def test_a_request_past_its_deadline_is_a_504_and_its_generation_stops() -> None:
    backend = GatedBackend()
    config = ServeConfig(engine=EngineConfig(request_timeout_s=0.5))
    with live_server(config, backend) as url:
        r = httpx.post(url + "/v1/suggest", json=suggest_body("⊢ too slow"), timeout=WAIT_S)
        assert backend.stop_seen.wait(WAIT_S)
        s = stats(url)
    assert r.status_code == 504 and r.json()["error"]["code"] == "generation_timeout"
    assert (s["jobs_cancelled"], s["jobs_stopped"]) == (1, 1)


@pytest.mark.parametrize(
    ("decoding", "batch"),
    [(DecodingConfig(seed=0), 1), (DecodingConfig(decoding="beam", num_samples=5), 8)],
    ids=["seeded-sampling", "beam-batched"],
)
def test_concurrent_clients_get_what_one_client_gets(hf_backend: Backend, decoding: DecodingConfig, batch: int) -> None:
    """Four clients at once, each asking every pair in its own order, get one client's answers.

    Seeded sampling runs one request per batch (a merged batch shares one random stream). In a merged
    batch rows are padded, which moves scores in their last float bits: scores match to 1e-4.
    """
    states = [state for state, _ in own_pairs()]
    config = ServeConfig(decoding=decoding, engine=EngineConfig(cache_size=0, max_batch_size=batch))

    def client(url: str, order: list[str]) -> dict[str, list[tuple[str, float]]]:
        with httpx.Client(timeout=120) as http:
            replies = {s: http.post(url + "/v1/suggest", json=suggest_body(s)).json() for s in order}
        return {s: [(x["tactic"], x["score"]) for x in r["suggestions"]] for s, r in replies.items()}

    with live_server(config, hf_backend) as url:
        alone = client(url, states)
        with ThreadPoolExecutor(max_workers=4) as pool:
            runs = list(pool.map(lambda k: client(url, states[k:] + states[:k]), range(4)))
        s = stats(url)
    for run in runs:
        for state in states:
            assert [t for t, _ in run[state]] == [t for t, _ in alone[state]], state
            assert [x for _, x in run[state]] == pytest.approx([x for _, x in alone[state]], abs=1e-4), state
    if batch > 1:
        assert s["largest_batch"] > 1  # the concurrent requests really were batched


def test_a_backend_that_schedules_rows_gets_each_request_as_it_comes() -> None:
    """Not merged, not serialised: three requests are inside the backend at once, each its own call;
    one whose caller leaves is stopped alone, and closing stops the rest before the backend closes."""
    backend = GatedBackend(rows=True)
    engine = SuggestionEngine(backend, config=EngineConfig(max_batch_size=8, batch_window_ms=50))

    async def scenario() -> list[Any]:
        callers = [asyncio.create_task(engine.suggest(f"⊢ row {i}")) for i in range(3)]
        await until_async(lambda: len(backend.calls) == 3, "three calls in the backend at once")
        callers[0].cancel()  # its client leaves: its call is told to stop, the others are not
        await asyncio.gather(callers[0], return_exceptions=True)
        await wait_event(backend.stop_seen)
        stopped = engine.stats()["jobs_stopped"]
        backend.release.set()
        answers = await asyncio.gather(*callers[1:])
        backend.release.clear()
        late = asyncio.create_task(engine.suggest("⊢ row at close"))
        await until_async(lambda: len(backend.calls) == 4, "a fourth call running")
        await asyncio.to_thread(engine.close)
        backend.close()
        return [stopped, *answers, *(await asyncio.gather(late, return_exceptions=True))]

    stopped, first, second, late = asyncio.run(scenario())
    assert sorted(map(len, backend.calls)) == [1, 1, 1, 1]
    assert stopped == 1 and [s.tactic for s in first.items + second.items] == ["done 24", "done 24"]
    assert isinstance(late, ModelUnavailable) and "shutting down" in late.message
    s = engine.stats()
    assert (s["batches"], s["largest_batch"], s["jobs_cancelled"], s["jobs_stopped"]) == (4, 1, 1, 2)
    assert backend.calls_after_close == 0


def test_close_fails_queued_work_and_stops_running_work_before_the_backend_closes() -> None:
    backend = GatedBackend()
    engine = SuggestionEngine(backend, config=EngineConfig(max_batch_size=1))

    async def scenario() -> list[Any]:
        running = asyncio.create_task(engine.suggest("⊢ running"))
        await wait_event(backend.entered)
        queued = asyncio.create_task(engine.suggest("⊢ queued"))
        await until_async(lambda: engine.stats()["queue_depth"] == 2, "the second request queued")
        await asyncio.to_thread(engine.close)  # as the server's shutdown does, before the backend closes
        backend.close()
        return await asyncio.gather(running, queued, return_exceptions=True)

    answers = asyncio.run(scenario())
    assert all(isinstance(a, ModelUnavailable) and "shutting down" in a.message for a in answers)
    assert backend.stop_seen.is_set()
    with pytest.raises(ModelUnavailable, match="shutting down"):
        asyncio.run(engine.suggest("⊢ after close"))
    assert backend.calls == [["[GOAL]⊢ running[PROOFSTEP]"]] and backend.calls_after_close == 0


def test_server_shutdown_cancels_what_is_in_flight_before_the_backend_closes() -> None:
    """Past uvicorn's grace period the requests are cancelled; the lifespan then joins the engine."""
    backend = GatedBackend()
    config = ServeConfig(engine=EngineConfig(max_batch_size=1))
    with ThreadPoolExecutor(max_workers=2) as pool:
        with live_server(config, backend, graceful_shutdown_s=0.2) as url:

            def ask(name: str) -> Future[httpx.Response]:
                return pool.submit(httpx.post, url + "/v1/suggest", json=suggest_body(f"⊢ {name}"), timeout=WAIT_S)

            # One after the other, so that which one runs is not left to the scheduler.
            asked = [ask("running")]
            assert backend.entered.wait(WAIT_S), "the first request never reached the backend"
            asked.append(ask("queued"))
            until(lambda: stats(url)["queue_depth"] == 2, "the second request queued behind it")
        backend.close()  # as `llmstep serve` does once the server has stopped
        answered = [None if r.exception() else r.result().status_code for r in asked]
    assert 200 not in answered  # cut off (uvicorn answers a cancelled request 500, or closes the connection)
    assert backend.stop_seen.is_set() and backend.calls_after_close == 0
    assert backend.calls == [["[GOAL]⊢ running[PROOFSTEP]"]]
