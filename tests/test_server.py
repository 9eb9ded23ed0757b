"""The HTTP server, live on 127.0.0.1: three protocols, and every bad input answered in JSON."""

import http.client
import json
from urllib.parse import urlsplit

import httpx
import pytest

from llmstep.config import ServeConfig

from doubles import FailingBackend
from support import live_server, own_pairs

PAIRS = own_pairs()
STATE, TACTIC = PAIRS[1]  # "a b : Nat / h : a ≤ b / ⊢ a + 1 ≤ b + 1" → "exact Nat.succ_le_succ h"


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert "Traceback" not in body["error"]["message"]
    return body["error"]


def test_llmstep_protocol(server_url: str) -> None:
    r = httpx.post(server_url + "/", json={"tactic_state": STATE, "prefix": "", "context": "theorem x : ..."})
    assert r.status_code == 200
    assert r.json()["suggestions"][0] == TACTIC
    assert set(r.json()) == {"suggestions"}


def test_original_client_request_bytes(server_url: str) -> None:
    """The original client posts ``requests.post(url, json=data)``: json.dumps bytes to '/'."""
    state, tactic = PAIRS[3]
    body = json.dumps({"tactic_state": state, "prefix": "", "context": ""})  # ASCII-escaped, as requests sends
    url = urlsplit(server_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
    reply = json.loads(conn.getresponse().read())
    conn.close()
    assert "[SUGGESTION]".join(reply["suggestions"]).split("[SUGGESTION]")[0] == tactic


def test_prefix_is_kept(beam_server_url: str) -> None:
    r = httpx.post(beam_server_url + "/", json={"tactic_state": STATE, "prefix": "exact Nat."})
    suggestions = r.json()["suggestions"]
    assert suggestions[0] == TACTIC
    assert all(s.startswith("exact Nat.") for s in suggestions)


def test_v1_suggest_is_scored_and_ranked(beam_server_url: str) -> None:
    r = httpx.post(beam_server_url + "/v1/suggest", json={"tactic_state": "x y : Nat\n⊢ x * y = y * x"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "suggestions",
        "model",
        "elapsed_ms",
        "truncated",
        "truncated_chars",
        "cached",
        "dropped_samples",
    }
    scores = [s["score"] for s in body["suggestions"]]
    assert len(scores) > 1 and scores == sorted(scores, reverse=True)
    assert body["elapsed_ms"] > 0
    assert "tiny-model" in body["model"]


def test_v1_suggest_overrides(server_url: str) -> None:
    r = httpx.post(
        server_url + "/v1/suggest",
        json={"tactic_state": STATE, "prefix": "exact", "num_samples": 3, "temperature": 0.0, "max_new_tokens": 32},
    )
    assert [s["tactic"] for s in r.json()["suggestions"]] == [TACTIC]


@pytest.mark.parametrize(("state", "tactic"), PAIRS, ids=[t for _, t in PAIRS])
def test_lean_copilot_protocol(server_url: str, state: str, tactic: str) -> None:
    r = httpx.post(server_url + "/generate", json={"name": "llmstep", "input": state, "prefix": ""})
    assert r.status_code == 200
    outputs = r.json()["outputs"]
    assert outputs[0]["output"] == tactic
    assert all(set(o) == {"output", "score"} for o in outputs)


def test_health(server_url: str) -> None:
    body = httpx.get(server_url + "/health").json()
    assert body["status"] == "ok" and body["backend"] == "hf" and body["prompt_format"] == "llmstep"


def test_openapi_lists_every_route_and_schema(server_url: str) -> None:
    spec = httpx.get(server_url + "/openapi.json").json()
    assert {"/", "/v1/suggest", "/generate", "/health"} <= set(spec["paths"])
    v1 = spec["paths"]["/v1/suggest"]["post"]
    assert v1["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SuggestRequest")
    assert "ErrorBody" in json.dumps(v1["responses"]["422"])
    props = spec["components"]["schemas"]["SuggestRequest"]["properties"]
    assert set(props) == {"tactic_state", "prefix", "context", "num_samples", "temperature", "max_new_tokens"}


BAD_REQUESTS = [
    ("missing-field", "/v1/suggest", {"prefix": "x"}, 422, "tactic_state"),
    ("wrong-type", "/v1/suggest", {"tactic_state": 3}, 422, "tactic_state"),
    ("bool-for-int", "/v1/suggest", {"tactic_state": "⊢ p", "num_samples": False}, 422, "num_samples"),
    ("samples-zero", "/v1/suggest", {"tactic_state": "⊢ p", "num_samples": 0}, 422, "num_samples"),
    ("samples-huge", "/v1/suggest", {"tactic_state": "⊢ p", "num_samples": 10_000}, 422, "num_samples"),
    ("temperature", "/v1/suggest", {"tactic_state": "⊢ p", "temperature": -1}, 422, "temperature"),
    ("unknown-field", "/v1/suggest", {"tactic_state": "⊢ p", "num_sample": 3}, 422, "num_sample"),
    ("not-an-object", "/v1/suggest", ["⊢ p"], 422, "body"),
    ("llmstep-missing", "/", {"prefix": ""}, 422, "tactic_state"),
    ("copilot-missing", "/generate", {"name": "x"}, 422, "input"),
    ("stop-empty", "/v1/completions", {"prompt": "[GOAL]⊢ p[PROOFSTEP]", "stop": ""}, 422, "stop"),
    ("stop-empty-in-list", "/v1/completions", {"prompt": "[GOAL]⊢ p[PROOFSTEP]", "stop": ["[END]", ""]}, 422, "stop"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "field"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_requests_name_the_field(server_url: str, path: str, body: object, status: int, field: str) -> None:
    r = httpx.post(server_url + path, json=body)
    assert r.status_code == status
    err = error_of(r)
    assert err["code"] == "invalid_request"
    assert field in err["message"]


MALFORMED = [
    ("not-json", b"{not json", 400, "malformed_json"),
    ("truncated", b'{"tactic_state": "a"', 400, "malformed_json"),
    ("invalid-utf8", b'{"tactic_state": "\xff\xfe"}', 400, "malformed_json"),
    ("empty", b"", 422, "invalid_request"),
]


@pytest.mark.parametrize(("raw", "status", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_bodies(server_url: str, raw: bytes, status: int, code: str) -> None:
    r = httpx.post(server_url + "/v1/suggest", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert error_of(r)["code"] == code


def test_body_over_the_limit_is_a_413(server_url: str) -> None:
    huge = {"tactic_state": "⊢ " + "x" * (1 << 20)}
    r = httpx.post(server_url + "/v1/suggest", json=huge)
    assert r.status_code == 413
    assert error_of(r)["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_a_413(server_url: str) -> None:
    def chunks():
        yield b'{"tactic_state": "'
        for _ in range(40):
            yield b"y" * 32768
        yield b'"}'

    r = httpx.post(server_url + "/v1/suggest", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_unknown_route_is_json(server_url: str) -> None:
    r = httpx.get(server_url + "/nope")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


def test_backend_exception_is_a_500_and_the_server_keeps_serving() -> None:
    with live_server(ServeConfig(), FailingBackend(failures=1)) as url:
        r = httpx.post(url + "/v1/suggest", json={"tactic_state": "⊢ True"})
        assert r.status_code == 500
        err = error_of(r)
        assert err["code"] == "backend_error" and "device-side assert" in err["message"]
        r = httpx.post(url + "/v1/suggest", json={"tactic_state": "⊢ True"})
        assert r.status_code == 200 and r.json()["suggestions"][0]["tactic"] == "ok"


def test_openai_completions(beam_server_url: str) -> None:
    prompt = f"[GOAL]{STATE}[PROOFSTEP]"
    body = {"model": "any", "prompt": prompt, "n": 3, "max_tokens": 32, "stop": ["[END]", "\n"], "logprobs": 1}
    r = httpx.post(beam_server_url + "/v1/completions", json=body | {"use_beam_search": True, "temperature": 0.0})
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["object"] == "text_completion" and len(reply["choices"]) == 3
    first = reply["choices"][0]
    assert first["text"].strip() == TACTIC and first["finish_reason"] == "stop"
    assert all(lp <= 0 for lp in first["logprobs"]["token_logprobs"]) and first["logprobs"]["token_logprobs"]


def test_openai_completions_without_stop_runs_to_length(server_url: str) -> None:
    body = {"prompt": ["[GOAL]⊢ 2 + 2 = 4[PROOFSTEP]", "[GOAL]p : Prop\n⊢ p → p[PROOFSTEP]"], "max_tokens": 40}
    reply = httpx.post(server_url + "/v1/completions", json=body).json()
    assert [c["index"] for c in reply["choices"]] == [0, 1]
    assert all(c["logprobs"] is None for c in reply["choices"])
    # With no stop strings the model runs past [END] into an invented next example, or to end-of-text.
    assert "decide" in reply["choices"][0]["text"]


def test_openai_completions_refuses_streaming(server_url: str) -> None:
    r = httpx.post(server_url + "/v1/completions", json={"prompt": "x", "stream": True})
    assert r.status_code == 422 and "stream" in error_of(r)["message"]


def test_health_reports_cache_hits(server_url: str) -> None:
    body = {"tactic_state": "p : Prop\n⊢ p → p", "prefix": "intro"}
    first = httpx.post(server_url + "/v1/suggest", json=body).json()
    again = httpx.post(server_url + "/v1/suggest", json=body).json()
    assert again["cached"] is True and again["suggestions"] == first["suggestions"]
    stats = httpx.get(server_url + "/health").json()["stats"]
    assert stats["cache_hits"] >= 1 and stats["batches"] >= 1
