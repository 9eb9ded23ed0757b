"""The transformers backend: any causal LM on CPU, CUDA or MPS.

Sampling and greedy decoding run in a decoding loop of our own
(``hf_loop.py``): concurrent requests share its steps, and each row leaves
the batch as soon as it ends, so the backend schedules rows itself
(``schedules_rows``). Beam search is one transformers ``generate`` call
(beams and batching are transformers' own), run on the loop's thread between
steps; it halts once every beam has hit a stop, or once ``should_stop`` says
nobody wants it (a stopping criterion checked after every token). Scores are
the model's own mean token log-probability, independent of the temperature.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmstep.backends.base import Candidate, GenerationParams, ShouldStop, never
from llmstep.backends.candidates import TokenizerTools, cut_candidate
from llmstep.backends.hf_loop import DecodingLoop, LoopRequest, Row
from llmstep.backends.threads import decoding_threads
from llmstep.config import ModelConfig
from llmstep.errors import ModelUnavailable, first_line
from llmstep.protocol.prompt import Prompt

__all__ = [
    "HFBackend",
    "check_local_model",
    "generate_kwargs",
    "neutral_generation_config",
    "resolve_device",
    "resolve_dtype",
    "stop_criteria",
    "token_logprobs",
]

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """``auto`` becomes the best device present: CUDA, then Apple MPS, then CPU."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto`` is float32 on CPU (half precision is slow there), bfloat16/float16 on accelerators."""
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def _plain_cache(model: Any) -> bool:
    """Whether the loop can manage this model's cache: plain per-layer key/value tensors, rows selectable."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # a remote-code config the cache classes do not understand
        return False
    return all(type(layer) is DynamicLayer for layer in cache.layers)


def check_local_model(model: str) -> None:
    """Say plainly when a path-like ``--model`` is not a model directory, before the hub loader guesses."""
    path = Path(model).expanduser()
    looks_local = path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1
    hint = "pass --model DIR with a local model directory, or a hub id"
    if looks_local and not path.exists():
        raise ModelUnavailable(f"model directory {model!r} does not exist; {hint}")
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelUnavailable(f"{model!r} has no config.json, so it is not a model directory; {hint}")


def stop_criteria(should_stop: ShouldStop) -> Any:
    """A ``StoppingCriteriaList`` that ends every row once ``should_stop()``: how a cancelled batch stops.

    ``generate`` checks it after each token, in every decoding mode; the whole batch stops,
    since rows of a batch cannot leave one by one inside ``generate``.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), should_stop(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Cancelled()])


def neutral_generation_config(model: Any) -> Any:
    """A generation config that keeps only the checkpoint's special token ids.

    ``generate`` fills every setting a call leaves unset from ``model.generation_config``, so a
    checkpoint's own ``top_p=1e-6`` or ``repetition_penalty`` would silently change what "sample at
    T" or "beam search" means here (a top_p of 1e-6 turned 7 distinct samples at T=2 into 1).
    Decoding is whatever ``GenerationParams`` says, the same on every backend.
    """
    from transformers import GenerationConfig

    old = model.generation_config
    keep = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    return GenerationConfig(**{k: getattr(old, k) for k in keep if getattr(old, k, None) is not None})


def generate_kwargs(
    backend: TokenizerTools, params: GenerationParams, should_stop: ShouldStop = never
) -> tuple[dict[str, Any], bool]:
    """``generate()`` arguments for ``params``, and whether they sample.

    Stops: single-token stop strings become end ids, and all but added tokens ``stop_strings``. Beams
    return scores and sampling or greedy the raw logits, which ``token_logprobs`` turns
    into per-token log-probabilities. Sampling leaves ``num_return_sequences`` to the caller.
    """
    stop_ids = backend._stop_token_ids(params.stop)
    text_stops = list(backend._text_stops(params.stop))
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "eos_token_id": sorted(stop_ids),
        "pad_token_id": backend.tokenizer.pad_token_id,
        "return_dict_in_generate": True,
    }
    if text_stops:
        kwargs.update(stop_strings=text_stops, tokenizer=backend.tokenizer)
    if should_stop is not never:
        kwargs["stopping_criteria"] = stop_criteria(should_stop)
    sampling = params.decoding == "sample" and params.temperature > 0.0
    if params.decoding == "beam":
        kwargs.update(
            num_beams=params.num_samples, num_return_sequences=params.num_samples, do_sample=False, output_scores=True
        )
    elif not sampling:
        kwargs.update(do_sample=False, output_logits=True)
    else:
        # top_k=0: sample from the whole distribution, as llmstep does.
        kwargs.update(do_sample=True, temperature=params.temperature, top_k=0, output_logits=True)
    return kwargs, sampling


def token_logprobs(model: Any, out: Any, beam: bool) -> Any:
    """Log-probability of each generated token, ``(sequences, steps)``: transformers' own
    ``compute_transition_scores``.

    Beams come with their (already normalised) scores. Otherwise the raw logits are normalised,
    so the score is the model's probability, not the tempered one; in float32, since half-precision
    logits would round the log-softmax.
    """
    if beam:
        return model.compute_transition_scores(out.sequences, out.scores, out.beam_indices, normalize_logits=False)
    logits = tuple(step.float() for step in out.logits)
    return model.compute_transition_scores(out.sequences, logits, normalize_logits=True)


class HFBackend(TokenizerTools):
    """A transformers ``AutoModelForCausalLM`` with its tokenizer, decoded by one loop thread."""

    name = "hf"

    def __init__(self, config: ModelConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = config.model
        self.device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, self.device)
        check_local_model(config.model)
        try:
            remote = config.trust_remote_code  # models whose code ships with the checkpoint (InternLM2.5)
            self.tokenizer = AutoTokenizer.from_pretrained(config.model, trust_remote_code=remote)
            model = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype, trust_remote_code=remote)
        except Exception as exc:  # the loaders raise OSError, ValueError, HF errors...: one seam
            raise ModelUnavailable(
                f"cannot load model {config.model!r}: {first_line(exc)} "
                "(pass --model DIR with a local model directory, or a hub id that is cached or reachable)"
            ) from exc
        model.generation_config = neutral_generation_config(model)
        self.model = model.to(self.device).eval()
        self._torch = torch
        if self.tokenizer.pad_token_id is None:  # Pythia and LLaMA tokenizers ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Decoder-only batches pad on the left, so every prompt ends where generation starts.
        self.tokenizer.padding_side = "left"
        #: Prefill each prompt once and share its cache across its samples; False prefills once per
        #: sample (the same answers, slower: kept to compare the two).
        self.shared_prefill = True
        # transformers 5 renamed `past_key_values` to `cache`; older releases know only the old name.
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"
        #: Sample and decode greedily in the loop (continuous batching). False, for a model whose cache
        #: the loop cannot manage (sliding windows, recurrent state): every call is one ``generate``.
        self.continuous = _plain_cache(self.model)
        if not self.continuous:
            log.warning("%s keeps a cache the decoding loop cannot manage; decoding with generate()", config.model)
        cfg = self.model.config
        self.context_window: int | None = next(
            (v for v in (getattr(cfg, k, None) for k in ("max_position_embeddings", "n_positions")) if v), None
        )
        self.loop = DecodingLoop(
            self.model,
            self.device,
            self._cache_kw,
            self.tokenizer.pad_token_id,
            self._decode,
            max_rows=config.max_batch_rows,
            max_positions=config.max_batch_tokens,
            threads=decoding_threads(),
        )

    def schedules_rows(self, params: GenerationParams) -> bool:
        """Sampling and greedy decoding share the loop's steps; beam search is one whole ``generate``."""
        return self.continuous and params.decoding != "beam"

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """Rows in the decoding loop, or one ``generate`` call on its thread; see the Backend protocol."""
        ids = self.prompt_ids(prompts)
        if self.schedules_rows(params):
            return self._generate_in_loop(ids, params, should_stop)
        generated, logprobs = self.loop.call(lambda: self._generate_whole(ids, params, should_stop))
        stop_ids = self._stop_token_ids(params.stop)
        rows = [
            cut_candidate(ids, lps, stop_ids, params.stop, self._decode)
            for ids, lps in zip(generated.tolist(), logprobs.float().tolist(), strict=True)
        ]
        per_prompt = len(rows) // len(prompts)  # rows come prompt-major
        return [rows[i * per_prompt : (i + 1) * per_prompt] for i in range(len(prompts))]

    def _generate_in_loop(
        self, ids: list[list[int]], params: GenerationParams, should_stop: ShouldStop
    ) -> list[list[Candidate]]:
        """Decode in the loop, cut and score here: the loop thread only runs the model."""
        stop_ids = self._stop_token_ids(params.stop)
        request = LoopRequest(
            prompts=ids,
            params=params,
            should_stop=should_stop,
            stop_ids=frozenset(stop_ids),
            text_stops=self._text_stops(params.stop),
            shared_prefill=self.shared_prefill,
        )
        answer = self.loop.submit(request).result()
        return [[self._candidate(row, stop_ids, params) for row in rows] for rows in answer]

    def _candidate(self, row: Row, stop_ids: set[int], params: GenerationParams) -> Candidate:
        cand = cut_candidate(row.tokens, row.logprobs, stop_ids, params.stop, self._decode)
        return replace(cand, finish_reason="loop") if row.finish == "loop" else cand

    def _generate_whole(
        self, ids: list[list[int]], params: GenerationParams, should_stop: ShouldStop
    ) -> tuple[Any, Any]:
        """Generated token ids and their log-probs from one ``generate``, one row per sequence, prompt-major."""
        torch = self._torch
        with self.tokenize_lock:  # padded on the left, with an attention mask
            enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt").to(self.device)
        kwargs, sampling = generate_kwargs(self, params, should_stop)
        if sampling:
            kwargs["num_return_sequences"] = params.num_samples
            if params.seed is not None:
                torch.manual_seed(params.seed)
        out = self.model.generate(**enc, **kwargs)
        generated = out.sequences[:, enc["input_ids"].shape[1] :]
        logprobs = token_logprobs(self.model, out, beam=params.decoding == "beam")
        return generated, logprobs

    def close(self) -> None:
        """Stop the loop, then drop the model; frees accelerator memory when nothing else holds it."""
        self.loop.close()
        self.model = None  # type: ignore[assignment]
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
