"""The exact request bodies the Lean package sends reach the server intact and are answered.

``tests/lean/wire_examples.json`` holds the bodies byte for byte as ``LLMstep.Request.body``
writes them (compact JSON, sorted keys, UTF-8 unescaped). They are posted here as raw bytes,
so any disagreement between the two sides about field names or encoding fails this test.
"""

import json
from pathlib import Path

import httpx
import pytest

from llmstep.protocol.wire import SuggestRequest

EXAMPLES = json.loads((Path(__file__).parent / "lean" / "wire_examples.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("example", EXAMPLES["examples"], ids=lambda e: e["name"])
def test_lean_request_body_is_answered(server_url: str, example: dict) -> None:
    raw = example["body"].encode("utf-8")
    request = SuggestRequest.model_validate_json(raw)  # the protocol layer accepts it as it is
    r = httpx.post(server_url + EXAMPLES["endpoint"], content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    reply = r.json()
    assert {"suggestions", "model", "elapsed_ms"} <= set(reply)
    for s in reply["suggestions"]:
        assert isinstance(s["score"], float) and s["tactic"].startswith(request.prefix)


def test_examples_cover_case_tags_unicode_and_a_long_goal() -> None:
    states = [SuggestRequest.model_validate_json(e["body"]).tactic_state for e in EXAMPLES["examples"]]
    assert any("case " in s and "\n\n" in s for s in states)
    assert any(ch in s for s in states for ch in "∀ℕα")
    assert max(len(s) for s in states) > 4000
    contexts = [SuggestRequest.model_validate_json(e["body"]).context for e in EXAMPLES["examples"]]
    assert max(len(c) for c in contexts) == 16000 and any("∀ ℕ α" in c for c in contexts)


def test_a_state_longer_than_the_model_window_is_truncated_not_refused(server_url: str) -> None:
    long_state = "\n".join(f"h{i} : x{i} ≤ x{i + 1}" for i in range(400)) + "\n⊢ x0 ≤ x400"
    r = httpx.post(server_url + "/v1/suggest", json={"tactic_state": long_state, "max_new_tokens": 16})
    assert r.status_code == 200, r.text
    assert r.json()["truncated"] is True
