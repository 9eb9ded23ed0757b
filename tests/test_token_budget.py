"""Prompts are fitted in the tokens the backend will really use, special tokens included, on every route,
from one encoding of the prompt, whose ids the backend then uses as they are.

The tiny model's tokenizer starts every encoding with a BOS (as LLaMA's, Llemma's and DeepSeek's do), so a
prompt counted without it would land one token over the window, and it merges across newlines, so the
character ranges of a cut do not fall on token boundaries.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from llmstep.backends.base import Backend, Encoding, GenerationParams
from llmstep.engine.fit import fit_prompt
from llmstep.protocol.goals import Shortening, shorten_state
from llmstep.protocol.prompt import LLMSTEP_FORMAT, Prompt

from support import own_pairs

MAIN = "\n".join(f"h{i} : x{i} ≤ x{i + 1}" for i in range(40)) + "\n⊢ x0 ≤ x40"
STATE = "\n\n".join([MAIN, *(f"case c{i}\nn : ℕ\n⊢ n + {i} = {i} + n" for i in range(10))])


def counted(encode: Callable[[str], Encoding]) -> tuple[Callable[[str], Encoding], list[str]]:
    """``encode``, recording the texts it is asked to encode."""
    texts: list[str] = []

    def wrapper(text: str) -> Encoding:
        texts.append(text)
        return encode(text)

    return wrapper, texts


def test_the_tiny_tokenizer_adds_a_bos_and_merges_newlines(hf_backend: Backend) -> None:
    """The fixture shows the bugs this module guards against: a count without the BOS is one short."""
    tokenizer = hf_backend.tokenizer  # type: ignore[attr-defined]
    text = "[GOAL]n : ℕ\n⊢ n + 0 = n[PROOFSTEP]"
    plain = tokenizer.encode(text, add_special_tokens=False)
    encoding = hf_backend.encode(text)
    assert list(encoding.ids) == tokenizer(text)["input_ids"] == [tokenizer.bos_token_id, *plain]
    pieces = [tokenizer.decode([i]) for i in plain]
    assert "\n" not in pieces and any("\n" in p for p in pieces), pieces


def test_a_prompt_fitted_to_the_window_fits_it_with_its_bos(hf_backend: Backend) -> None:
    """The budget is set so that the prompt fits exactly when its BOS is forgotten: it must be shortened."""
    tokenizer = hf_backend.tokenizer  # type: ignore[attr-defined]
    prompt = LLMSTEP_FORMAT.render(MAIN)
    budget = len(tokenizer.encode(prompt, add_special_tokens=False))
    fitted = fit_prompt(LLMSTEP_FORMAT, MAIN, "", "", budget, hf_backend.encode)
    assert fitted.cut > 0 and fitted.prompt.text.endswith("⊢ x0 ≤ x40[PROOFSTEP]")
    assert fitted.prompt.token_ids is not None and len(fitted.prompt.token_ids) <= budget
    assert list(fitted.prompt.token_ids) == tokenizer(fitted.prompt.text)["input_ids"]


@pytest.mark.parametrize("room", [0.9, 0.6, 0.3, 0.1])
def test_fitting_encodes_a_few_times_and_cuts_as_counting_every_candidate_would(
    hf_backend: Backend, room: float
) -> None:
    """One encoding of the whole prompt and one of the cut prompt, not one per candidate, and the same cut
    (within one hypothesis) as the slow way: counting every candidate shortening exactly."""
    whole = len(hf_backend.encode(LLMSTEP_FORMAT.render(STATE)).ids)
    budget = int(whole * room)
    encode, texts = counted(hf_backend.encode)
    fitted = fit_prompt(LLMSTEP_FORMAT, STATE, "", "", budget, encode)
    assert len(texts) <= 3, len(texts)  # the whole prompt, the least one (a short text), the cut one
    assert texts[-1] == fitted.prompt.text and len(fitted.prompt.token_ids or ()) <= budget

    def exact(s: Shortening) -> bool:
        return len(hf_backend.encode(LLMSTEP_FORMAT.render(s.text)).ids) <= budget

    slow = LLMSTEP_FORMAT.render(shorten_state(STATE, exact).text)
    assert "⊢ x0 ≤ x40" in fitted.prompt.text
    # At most one more goal (about 30 characters here) or hypothesis cut than the slow way.
    assert len(slow) - 32 <= len(fitted.prompt.text) <= len(slow), (len(slow), len(fitted.prompt.text))


@pytest.mark.parametrize("decoding", ["sample", "beam"])
def test_the_backend_decodes_the_ids_it_is_handed_not_the_text(hf_backend: Backend, decoding: str) -> None:
    """Ids of one state with the text of another: the answer is the first state's, so the fitted ids are what
    the model reads, and the text is not encoded again (in the decoding loop and in a whole ``generate``)."""
    state, tactic = own_pairs()[0]
    ids = hf_backend.encode(LLMSTEP_FORMAT.render(state)).ids
    params = GenerationParams(num_samples=2, temperature=0.0, decoding=decoding, max_new_tokens=24)
    (cands,) = hf_backend.generate([Prompt("[GOAL]⊢ something else[PROOFSTEP]", token_ids=ids)], params)
    assert cands[0].text.strip() == tactic


def test_a_raw_completion_over_the_window_is_refused_before_the_model(server_url: str) -> None:
    """/v1/completions cannot shorten a raw prompt: past the window it is a 400, not a 500 or a long run."""
    health = httpx.get(server_url + "/health").json()
    assert health["backend"] == "hf"
    prompt = "[GOAL]" + "h : x ≤ y\n" * 3000 + "⊢ x ≤ y[PROOFSTEP]"
    r = httpx.post(server_url + "/v1/completions", json={"prompt": prompt, "max_tokens": 8}, timeout=60)
    assert r.status_code == 400, r.text
    body = r.json()["error"]
    assert body["code"] == "context_too_long" and "window" in body["message"]
    ok = httpx.post(server_url + "/v1/completions", json={"prompt": "[GOAL]⊢ p[PROOFSTEP]", "max_tokens": 4})
    assert ok.status_code == 200
