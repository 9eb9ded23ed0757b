"""The transformers encoder-decoder backend: T5/ByT5-style models such as ReProver's.

An encoder-decoder model reads the state in its encoder and writes the tactic
in its decoder, so the user's prefix cannot go in the prompt: it is forced as
the start of the decoder's output (the prompt's ``decoder_prefix``), and the
model continues from there. Where a step ends and how it is
scored is the same rule as the causal backend's (``backends/candidates.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from llmstep.backends.base import Candidate, GenerationParams, ShouldStop, never
from llmstep.backends.candidates import TokenizerTools, cut_candidate
from llmstep.backends.hf import (
    check_local_model,
    generate_kwargs,
    neutral_generation_config,
    resolve_device,
    resolve_dtype,
    token_logprobs,
)
from llmstep.config import ModelConfig
from llmstep.errors import ModelUnavailable, first_line
from llmstep.protocol.prompt import Prompt

__all__ = ["Seq2SeqBackend"]


class Seq2SeqBackend(TokenizerTools):
    """A transformers ``AutoModelForSeq2SeqLM`` with its tokenizer."""

    name = "seq2seq"

    def __init__(self, config: ModelConfig) -> None:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.model_id = config.model
        self.device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, self.device)
        if config.dtype == "auto" and dtype == torch.float16:
            dtype = torch.float32  # T5 activations overflow float16; bfloat16 or float32 only
        check_local_model(config.model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)
            model = AutoModelForSeq2SeqLM.from_pretrained(
                config.model, dtype=dtype, trust_remote_code=config.trust_remote_code
            )
        except Exception as exc:  # the loaders raise OSError, ValueError, HF errors...: one seam
            raise ModelUnavailable(
                f"cannot load encoder-decoder model {config.model!r}: {first_line(exc)} "
                "(pass --model DIR with a local model directory, or a hub id that is cached or reachable; "
                "a causal LM runs on --backend hf)"
            ) from exc
        model.generation_config = neutral_generation_config(model)
        self.model = model.to(self.device).eval()
        self._torch = torch
        self._lock = threading.Lock()
        # T5 uses relative positions: no fixed window, so the engine does not cut states to fit one.
        self.context_window: int | None = None

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """Each prompt's samples from its own ``generate`` call; see the Backend protocol.

        One call per prompt, because prompts in a batch may force decoder prefixes of
        different lengths, and T5's decoder has no left padding to line them up.
        """
        stop_ids = self._stop_token_ids(params.stop)
        out: list[list[Candidate]] = []
        with self._lock:
            if params.seed is not None:
                self._torch.manual_seed(params.seed)
            for prompt in prompts:
                if should_stop():
                    break  # the rest is unwanted; the answer is thrown away
                generated, logprobs = self._generate_one(prompt, params, should_stop)
                out.append(
                    [
                        cut_candidate(ids, lps, stop_ids, params.stop, self._decode)
                        for ids, lps in zip(generated.tolist(), logprobs.float().tolist(), strict=True)
                    ]
                )
        return out

    def _generate_one(self, prompt: Prompt, params: GenerationParams, should_stop: ShouldStop) -> tuple[Any, Any]:
        """Token ids generated after the decoder prefix, and their log-probs: one row per sample."""
        torch = self._torch
        # The encoder input ends in </s>, as in training (tokenizer(state) adds it).
        [encoder_ids] = self.prompt_ids([prompt])
        start = self.model.config.decoder_start_token_id
        with self.tokenize_lock:
            forced = [start, *self.tokenizer.encode(prompt.decoder_prefix, add_special_tokens=False)]
        decoder_ids = torch.tensor([forced], device=self.device)
        kwargs, sampling = generate_kwargs(self, params, should_stop)
        kwargs["input_ids"] = torch.tensor([encoder_ids], device=self.device)
        kwargs["attention_mask"] = torch.ones_like(kwargs["input_ids"])
        kwargs["decoder_input_ids"] = decoder_ids
        if sampling:
            kwargs["num_return_sequences"] = params.num_samples
        with torch.inference_mode():
            out = self.model.generate(**kwargs)
            generated = out.sequences[:, decoder_ids.shape[1] :]
            logprobs = token_logprobs(self.model, out, beam=params.decoding == "beam")
        return generated, logprobs

    def schedules_rows(self, params: GenerationParams) -> bool:
        """The engine's batcher merges requests; see the Backend protocol."""
        return False

    def close(self) -> None:
        """Drop the model; frees accelerator memory when nothing else holds it."""
        self.model = None  # type: ignore[assignment]
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
