"""A server left running all day: access control, limits, backpressure, faults, metrics, shutdown."""

from __future__ import annotations

import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llmstep.backends.base import Candidate
from llmstep.client import Client
from llmstep.config import DecodingConfig, EngineConfig, ServeConfig
from llmstep.errors import Unauthorized

from doubles import ChoosyBackend, ScriptedBackend, SlowBackend
from support import live_server, llmstep, one_line_error, serve_process

GOOD = {"tactic_state": "⊢ True", "prefix": ""}


def scripted() -> ScriptedBackend:
    return ScriptedBackend([Candidate(" trivial", -0.1)])


def test_token_is_required_everywhere_but_health() -> None:
    with live_server(ServeConfig(token="s3cret"), scripted()) as url:
        assert httpx.get(url + "/health").status_code == 200
        for method, path in [("POST", "/v1/suggest"), ("POST", "/"), ("GET", "/metrics"), ("GET", "/openapi.json")]:
            r = httpx.request(method, url + path, json=GOOD)
            assert r.status_code == 401, path
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "unauthorized" and "no bearer token" in r.json()["error"]["message"]
        wrong = httpx.post(url + "/v1/suggest", json=GOOD, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["error"]["message"]
        right = httpx.post(url + "/v1/suggest", json=GOOD, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert Client(url, token="s3cret").suggest("⊢ True").suggestions[0].tactic == "trivial"
        with pytest.raises(Unauthorized):
            Client(url).suggest("⊢ True")


def test_cli_sends_the_token_from_flag_or_environment() -> None:
    with live_server(ServeConfig(token="s3cret"), scripted()) as url:
        assert llmstep("suggest", "⊢ True", "--url", url, "--token", "s3cret").stdout.strip() == "trivial"
        assert llmstep("suggest", "⊢ True", "--url", url, env={"LLMSTEP_TOKEN": "s3cret"}).returncode == 0
        assert "requires a token" in one_line_error(llmstep("suggest", "⊢ True", "--url", url), 2)


def test_limits_on_samples_tokens_and_state_length() -> None:
    engine = EngineConfig(max_num_samples=4, max_new_tokens=32, max_state_chars=50)
    decoding = DecodingConfig(num_samples=2, max_new_tokens=16)
    with live_server(ServeConfig(engine=engine, decoding=decoding), scripted()) as url:
        r = httpx.post(url + "/v1/suggest", json=GOOD | {"num_samples": 5})
        assert r.status_code == 422 and "num_samples" in r.json()["error"]["message"]
        r = httpx.post(url + "/v1/suggest", json=GOOD | {"max_new_tokens": 33})
        assert r.status_code == 422 and "max_new_tokens" in r.json()["error"]["message"]
        r = httpx.post(url + "/v1/completions", json={"prompt": "x", "n": 5})
        assert r.status_code == 422
        r = httpx.post(url + "/v1/suggest", json={"tactic_state": "h : " + "a" * 100 + "\n⊢ True"})
        assert r.status_code == 200 and r.json()["truncated"] is True
    with pytest.raises(ValueError, match="over the limit"):
        ServeConfig(engine=engine)  # its default of 10 samples would be refused by its own limit
    refuse = EngineConfig(max_state_chars=50, refuse_long_states=True)
    with live_server(ServeConfig(engine=refuse), scripted()) as url:
        r = httpx.post(url + "/v1/suggest", json={"tactic_state": "⊢ " + "a" * 60})
        assert r.status_code == 413 and "tactic_state" in r.json()["error"]["message"]


def test_past_the_in_flight_limit_clients_are_told_to_retry() -> None:
    config = ServeConfig(max_in_flight=2, engine=EngineConfig(cache_size=0, max_batch_size=1))
    with live_server(config, SlowBackend(delay_s=0.5)) as url:
        with ThreadPoolExecutor(max_workers=6) as pool:
            bodies = [{"tactic_state": f"⊢ p{i}"} for i in range(6)]
            answers = list(pool.map(lambda b: httpx.post(url + "/v1/suggest", json=b, timeout=30), bodies))
        busy = [a for a in answers if a.status_code == 503]
        assert busy and all(a.json()["error"]["code"] == "server_busy" for a in busy)
        assert all(a.headers["Retry-After"] == "1" for a in busy)
        assert {a.status_code for a in answers} == {200, 503}
        assert httpx.get(url + "/health").status_code == 200  # never refused
        assert httpx.post(url + "/v1/suggest", json=GOOD, timeout=30).status_code == 200


def test_a_failing_or_hanging_input_fails_only_its_own_request() -> None:
    config = ServeConfig(engine=EngineConfig(request_timeout_s=0.5, cache_size=0))
    with live_server(config, ChoosyBackend(hang_s=1.5)) as url:
        boom = httpx.post(url + "/v1/suggest", json={"tactic_state": "⊢ boom"})
        assert boom.status_code == 500 and boom.json()["error"]["code"] == "backend_error"
        assert httpx.post(url + "/v1/suggest", json=GOOD).status_code == 200
        hang = httpx.post(url + "/v1/suggest", json={"tactic_state": "⊢ hang"}, timeout=30)
        assert hang.status_code == 504 and hang.json()["error"]["code"] == "generation_timeout"
        time.sleep(1.5)  # the hung call ends; the backend is not interruptible, the server did not wait for it
        assert httpx.post(url + "/v1/suggest", json=GOOD).status_code == 200


def test_metrics_in_prometheus_format() -> None:
    with live_server(ServeConfig(), scripted()) as url:
        httpx.post(url + "/v1/suggest", json=GOOD)
        httpx.post(url + "/v1/suggest", json=GOOD)  # a cache hit
        httpx.post(url + "/v1/suggest", json={"prefix": ""})
        httpx.get(url + "/no/such/path")
        r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'llmstep_requests_total{route="/v1/suggest",status="200"} 2.0' in text
    assert 'llmstep_requests_total{route="/v1/suggest",status="422"} 1.0' in text
    assert 'llmstep_requests_total{route="other",status="404"} 1.0' in text
    assert 'llmstep_errors_total{code="invalid_request"} 1.0' in text
    assert re.search(r'llmstep_request_seconds_bucket\{le="0.5",route="/v1/suggest"\} 3.0', text)
    assert "llmstep_cache_hits 1.0" in text and "llmstep_cache_misses 1.0" in text
    assert "llmstep_in_flight 0.0" in text  # /metrics itself is not counted: it must answer under load
    assert "llmstep_queue_depth 0.0" in text


def test_sigterm_lets_the_request_in_flight_finish(tiny_model_dir: Path) -> None:
    with serve_process("--model", str(tiny_model_dir), "--seed", "0") as (url, proc):
        # A slow request: many long, hot samples with no stop string.
        body = {"prompt": "[GOAL]x : Nat\n⊢ x = x[PROOFSTEP]", "n": 64, "temperature": 2.0, "max_tokens": 400}
        answer: dict[str, object] = {}

        def ask() -> None:
            answer["r"] = httpx.post(url + "/v1/completions", json=body, timeout=120)
            answer["at"] = time.monotonic()

        thread = threading.Thread(target=ask)
        thread.start()
        # SIGTERM as soon as the request is in the engine (the metrics count it there).
        while "at" not in answer and "llmstep_queue_depth 1.0" not in httpx.get(url + "/metrics").text:
            time.sleep(0.005)
        assert "at" not in answer, "the request finished before it was seen in flight; make it slower"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        thread.join(timeout=120)
        assert proc.wait(timeout=60) == 0
    r = answer["r"]
    assert isinstance(r, httpx.Response) and r.status_code == 200
    assert len(r.json()["choices"]) == 64
    assert answer["at"] > signalled  # answered after SIGTERM: it was in flight, and it was finished


def test_serving_beyond_loopback_without_a_token_warns(tiny_model_dir: Path) -> None:
    with serve_process("--model", str(tiny_model_dir), "--host", "0.0.0.0") as (_, proc):
        startup_log = proc.startup_log  # type: ignore[attr-defined]
    assert "without a token" in startup_log and "LLMSTEP_TOKEN" in startup_log
    with serve_process("--model", str(tiny_model_dir), "--host", "0.0.0.0", "--token", "t") as (_, proc):
        assert "without a token" not in proc.startup_log  # type: ignore[attr-defined]
