"""llmstep's own 17 latency-benchmark requests (wellecks/llmstep, MIT) all get valid answers.

They come from ../shared (or $LLMSTEP_SHARED_DIR); without it these tests skip and say why.
"""

import json

import httpx
import pytest

from support import require_shared


def runtime_cases() -> list[dict]:
    path = require_shared() / "data/llmstep-benchmarks/runtime-test-cases.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_there_are_seventeen_cases() -> None:
    assert len(runtime_cases()) == 17


@pytest.mark.parametrize("route", ["/", "/v1/suggest"])
def test_every_runtime_case_gets_a_valid_answer(server_url: str, route: str) -> None:
    for case in runtime_cases():
        body = {"tactic_state": case["tactic_state"], "prefix": case["prefix"]}
        r = httpx.post(server_url + route, json=body, timeout=60)
        assert r.status_code == 200, r.text
        suggestions = r.json()["suggestions"]
        tactics = suggestions if route == "/" else [s["tactic"] for s in suggestions]
        assert tactics, case
        for tactic in tactics:
            assert tactic and tactic == tactic.strip() and "\n" not in tactic
            assert tactic.startswith(case["prefix"].strip())
