"""The exact request bodies the Lean package sends reach the server intact and are answered.

``tests/lean/wire_examples.json`` holds the bodies byte for byte as ``LLMstep.Request.body``
writes them (compact JSON, UTF-8 unescaped). They are posted here as raw bytes, so any
disagreement between the two sides about field names or encoding fails this test. The order of
the keys is ``Json.compress``'s, which differs between Lean releases, so each body is also posted
with its keys reversed, and must get the same answer.
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


def reversed_keys(body: str) -> bytes:
    """The same request with its keys in the opposite order, compact and unescaped as Lean writes it."""
    fields = json.loads(body)
    return json.dumps(dict(reversed(fields.items())), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@pytest.mark.parametrize("example", EXAMPLES["examples"], ids=lambda e: e["name"])
def test_the_key_order_does_not_matter(server_url: str, example: dict) -> None:
    url, headers = server_url + EXAMPLES["endpoint"], {"Content-Type": "application/json"}
    as_written = httpx.post(url, content=example["body"].encode("utf-8"), headers=headers)
    reordered = httpx.post(url, content=reversed_keys(example["body"]), headers=headers)
    assert reversed_keys(example["body"]) != example["body"].encode("utf-8")
    assert reordered.status_code == as_written.status_code == 200, reordered.text
    assert reordered.json()["suggestions"] == as_written.json()["suggestions"]


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
