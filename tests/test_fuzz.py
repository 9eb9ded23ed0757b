"""Property-based fuzzing of every route, against a live server.

schemathesis generates requests from the server's own OpenAPI spec (valid and
invalid: wrong types, missing fields, out-of-range numbers, huge strings), and
hypothesis sends raw bodies (random bytes, invalid UTF-8, deep nesting). No
client error may become a 5xx, every error has the JSON error shape, and the
server still answers a good request afterwards. The backend is a scripted
double: the HTTP layer is what is fuzzed here, and the tiny real model would
only make each case slower. ``benchmarks/fuzz.py`` runs the same at scale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmstep.backends.base import Candidate
from llmstep.config import ServeConfig
from llmstep.server import create_app

from doubles import ScriptedBackend
from support import live_server

BACKEND = ScriptedBackend([Candidate(" simp", -0.1), Candidate(" rfl", -0.3)])
SCHEMA = schemathesis.openapi.from_dict(create_app(ServeConfig(), BACKEND).openapi())
POST_ROUTES = ["/", "/v1/suggest", "/generate", "/v1/completions"]
FUZZ_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)


@pytest.fixture(scope="module")
def fuzz_url() -> Iterator[str]:
    with live_server(ServeConfig(), BACKEND) as url:
        yield url


def assert_answered(response: httpx.Response | object) -> None:
    """A status below 500, and for errors the ``{"error": {"code", "message"}}`` shape."""
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, f"{status}: {response.text[:300]}"  # type: ignore[attr-defined]
    if status >= 400:
        body = json.loads(response.content)  # type: ignore[attr-defined]
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])


@SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_generated_requests_never_get_a_5xx(case: schemathesis.Case, fuzz_url: str) -> None:
    assert_answered(case.call(base_url=fuzz_url, timeout=30))


JSON_LEAVES = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELD_NAMES = ["tactic_state", "prefix", "context", "num_samples", "temperature", "max_new_tokens", "input", "name"]
NEAR_MISSES = st.dictionaries(st.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=6)


@given(route=st.sampled_from(POST_ROUTES), body=st.binary(max_size=300))
@FUZZ_SETTINGS
def test_random_bytes_are_answered(fuzz_url: str, route: str, body: bytes) -> None:
    assert_answered(httpx.post(fuzz_url + route, content=body, headers={"Content-Type": "application/json"}))


@given(route=st.sampled_from(POST_ROUTES), body=JSON_VALUES | NEAR_MISSES)
@FUZZ_SETTINGS
def test_random_json_and_wrong_types_are_answered(fuzz_url: str, route: str, body: object) -> None:
    assert_answered(httpx.post(fuzz_url + route, json=body))


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize(
    "body",
    [
        b'{"tactic_state": "\xff\xfe\xfd"}',  # invalid UTF-8 inside a string
        b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough to exhaust a recursive parser
        b'{"tactic_state": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        json.dumps({"tactic_state": "⊢ " + "x" * 900_000}).encode(),  # huge but under the body limit
        b'{"tactic_state": "\\ud800"}',  # a lone surrogate escape
        b'{"tactic_state": "x", "temperature": NaN, "num_samples": Infinity}',  # Python's json reads these
    ],
    ids=["invalid-utf8", "deep-array", "deep-field", "huge-string", "lone-surrogate", "nan-infinity"],
)
def test_hostile_bodies_are_answered(fuzz_url: str, route: str, body: bytes) -> None:
    assert_answered(httpx.post(fuzz_url + route, content=body, headers={"Content-Type": "application/json"}))


def test_server_still_answers_after_fuzzing(fuzz_url: str) -> None:
    r = httpx.post(fuzz_url + "/v1/suggest", json={"tactic_state": "⊢ True", "prefix": ""})
    assert r.status_code == 200
    assert [s["tactic"] for s in r.json()["suggestions"]] == ["simp", "rfl"]


# Cases the fuzzer found (benchmarks/fuzz.py), kept so they stay fixed.
FOUND = [
    ("/v1/suggest", {"tactic_state": "⊢ p", "temperature": 5e-324}),
    ("/v1/suggest", {"tactic_state": "⊢ p", "temperature": 2.39e-44, "max_new_tokens": 1}),
    ("/v1/completions", {"prompt": "", "max_tokens": 1}),
    ("/v1/completions", {"prompt": ["a", ""], "max_tokens": 1}),
    ("/v1/completions", {"prompt": [], "max_tokens": 1}),
    ("/v1/completions", {"prompt": "x", "max_tokens": 1, "n": 1, "use_beam_search": True, "temperature": 0.0}),
]


@pytest.mark.parametrize(("route", "body"), FOUND, ids=[f"{r}-{i}" for i, (r, _) in enumerate(FOUND)])
def test_inputs_the_fuzzer_found_are_answered_by_the_real_model(server_url: str, route: str, body: dict) -> None:
    r = httpx.post(server_url + route, json=body)
    assert_answered(r)
    if route == "/v1/completions" and body["prompt"] in ("", [], ["a", ""]):
        assert r.status_code == 422 and "prompt" in r.json()["error"]["message"]
