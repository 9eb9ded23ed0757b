"""The transformers encoder-decoder backend: T5/ByT5-style models such as ReProver's.

An encoder-decoder model reads the state in its encoder and writes the tactic
in its decoder, so the user's prefix cannot go in the prompt: it is forced as
the start of the decoder's output, and the model continues from there. The
engine's rendered prompt carries both halves, joined by
:data:`~llmstep.protocol.prompt.DECODER_SEP` (see ``PromptFormat.render``);
a prompt without it is all encoder input. Where a step ends and how it is
scored is the same rule as the causal backend's (``backends/candidates.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from llmstep.backends.base import Candidate, GenerationParams
from llmstep.backends.candidates import TokenizerTools, cut_candidate
from llmstep.backends.hf import check_local_model, resolve_device, resolve_dtype
from llmstep.config import ModelConfig
from llmstep.errors import ModelUnavailable
from llmstep.protocol.prompt import split_decoder_prefix

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
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise ModelUnavailable(
                f"cannot load encoder-decoder model {config.model!r}: {first} "
                "(pass --model DIR with a local model directory, or a hub id that is cached or reachable; "
                "a causal LM runs on --backend hf)"
            ) from exc
        self.model = model.to(self.device).eval()
        self._torch = torch
        self._lock = threading.Lock()
        # T5 uses relative positions: no fixed window, so the engine does not cut states to fit one.
        self.context_window: int | None = None

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[list[Candidate]]:
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
                generated, logprobs = self._generate_one(*split_decoder_prefix(prompt), params)
                out.append(
                    [
                        cut_candidate(ids, lps, stop_ids, params.stop, self._decode)
                        for ids, lps in zip(generated.tolist(), logprobs.float().tolist(), strict=True)
                    ]
                )
        return out

    def _generate_one(self, encoder_text: str, prefix: str, params: GenerationParams) -> tuple[Any, Any]:
        """Token ids generated after the prefix, and their log-probs: one row per sample."""
        torch = self._torch
        # The encoder input ends in </s>, as in training (tokenizer(state) adds it).
        with self.tokenize_lock:
            enc = self.tokenizer(encoder_text, return_tensors="pt").to(self.device)
        start = self.model.config.decoder_start_token_id
        forced = [start, *self.tokenizer.encode(prefix, add_special_tokens=False)]
        decoder_ids = torch.tensor([forced], device=self.device)
        stop_ids = self._stop_token_ids(params.stop)
        text_stops = [s for s in params.stop if self._single_token(s) is None]
        kwargs: dict[str, Any] = {
            "decoder_input_ids": decoder_ids,
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": sorted(stop_ids),
            "pad_token_id": self.tokenizer.pad_token_id,
            "return_dict_in_generate": True,
        }
        if text_stops:
            kwargs.update(stop_strings=text_stops, tokenizer=self.tokenizer)
        sampling = params.decoding == "sample" and params.temperature > 0.0
        if params.decoding == "beam":
            kwargs.update(
                num_beams=params.num_samples,
                num_return_sequences=params.num_samples,
                do_sample=False,
                output_scores=True,
            )
        elif sampling:
            # top_k=0: sample from the whole distribution, as the causal backend does.
            kwargs.update(
                do_sample=True,
                temperature=params.temperature,
                top_k=0,
                num_return_sequences=params.num_samples,
                output_logits=True,
            )
        else:
            kwargs.update(do_sample=False, output_logits=True)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
            generated = out.sequences[:, decoder_ids.shape[1] :]
            if params.decoding == "beam":
                logprobs = self.model.compute_transition_scores(
                    out.sequences, out.scores, out.beam_indices, normalize_logits=False
                )
            else:
                # Raw logits, so the score is the model's probability, not the tempered one.
                steps = [
                    torch.log_softmax(step.float(), dim=-1).gather(1, generated[:, t : t + 1]).squeeze(1)
                    for t, step in enumerate(out.logits)
                ]
                logprobs = torch.stack(steps, dim=1)
        return generated, logprobs

    def close(self) -> None:
        """Drop the model; frees accelerator memory when nothing else holds it."""
        self.model = None  # type: ignore[assignment]
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
