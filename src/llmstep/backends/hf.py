"""The transformers backend: any causal LM on CPU, CUDA or MPS.

One ``generate`` call per prompt returns every sample at once
(``num_return_sequences``, or beams), and generation halts as soon as all
sequences have hit a stop string or the end-of-text token, or as soon as
``should_stop`` says nobody wants the batch (a stopping criterion checked
after every token). Scores are the model's own mean token log-probability,
independent of the sampling temperature.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmstep.backends.base import Candidate, GenerationParams, ShouldStop, never
from llmstep.backends.candidates import TokenizerTools, cut_candidate
from llmstep.config import ModelConfig
from llmstep.errors import ModelUnavailable

__all__ = [
    "HFBackend",
    "check_local_model",
    "generate_kwargs",
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


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


def generate_kwargs(
    backend: TokenizerTools, params: GenerationParams, should_stop: ShouldStop = never
) -> tuple[dict[str, Any], bool]:
    """``generate()`` arguments for ``params``, and whether they sample.

    Stops: single-token stop strings become end ids, the rest ``stop_strings``. Beams
    return scores and sampling or greedy the raw logits, which ``token_logprobs`` turns
    into per-token log-probabilities. Sampling leaves ``num_return_sequences`` to the caller.
    """
    stop_ids = backend._stop_token_ids(params.stop)
    text_stops = [s for s in params.stop if backend._single_token(s) is None]
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


def token_logprobs(model: Any, out: Any, generated: Any, beam: bool) -> Any:
    """Log-probability of each generated token, ``(sequences, steps)``."""
    import torch

    if beam:
        return model.compute_transition_scores(out.sequences, out.scores, out.beam_indices, normalize_logits=False)
    # Raw logits, so the score is the model's probability, not the tempered one.
    steps = [
        torch.log_softmax(step.float(), dim=-1).gather(1, generated[:, t : t + 1]).squeeze(1)
        for t, step in enumerate(out.logits)
    ]
    return torch.stack(steps, dim=1)


class HFBackend(TokenizerTools):
    """A transformers ``AutoModelForCausalLM`` with its tokenizer."""

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
                f"cannot load model {config.model!r}: {_first_line(exc)} "
                "(pass --model DIR with a local model directory, or a hub id that is cached or reachable)"
            ) from exc
        self.model = model.to(self.device).eval()
        self._torch = torch
        self._lock = threading.Lock()
        if self.tokenizer.pad_token_id is None:  # Pythia and LLaMA tokenizers ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # Decoder-only batches pad on the left, so every prompt ends where generation starts.
        self.tokenizer.padding_side = "left"
        #: Prefill the prompt once and share its cache across samples; off if the model refuses.
        self.shared_prefill = True
        # transformers 5 renamed `past_key_values` to `cache`; older releases know only the old name.
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"
        cfg = self.model.config
        self.context_window: int | None = next(
            (v for v in (getattr(cfg, k, None) for k in ("max_position_embeddings", "n_positions")) if v), None
        )

    def generate(
        self, prompts: Sequence[str], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """All prompts and all their samples in one ``generate`` call; see the Backend protocol."""
        with self._lock:
            if params.seed is not None:
                self._torch.manual_seed(params.seed)
            generated, logprobs = self._generate_batch(list(prompts), params, should_stop)
        stop_ids = self._stop_token_ids(params.stop)
        rows = [
            cut_candidate(ids, lps, stop_ids, params.stop, self._decode)
            for ids, lps in zip(generated.tolist(), logprobs.float().tolist(), strict=True)
        ]
        per_prompt = len(rows) // len(prompts)  # rows come prompt-major
        return [rows[i * per_prompt : (i + 1) * per_prompt] for i in range(len(prompts))]

    def _generate_batch(self, prompts: list[str], params: GenerationParams, should_stop: ShouldStop) -> tuple[Any, Any]:
        """Generated token ids and their log-probs, one row per sequence, prompt-major."""
        torch = self._torch
        with self.tokenize_lock:
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        kwargs, sampling = generate_kwargs(self, params, should_stop)
        with torch.inference_mode():
            if sampling and params.num_samples > 1 and self.shared_prefill:
                out = self._sample_with_shared_prefill(enc, params.num_samples, kwargs)
            else:
                if sampling:
                    kwargs["num_return_sequences"] = params.num_samples
                out = self.model.generate(**enc, **kwargs)
            generated = out.sequences[:, enc["input_ids"].shape[1] :]
            logprobs = token_logprobs(self.model, out, generated, beam=params.decoding == "beam")
        return generated, logprobs

    def _sample_with_shared_prefill(self, enc: Any, n: int, kwargs: dict[str, Any]) -> Any:
        """Sample ``n`` continuations per prompt, computing each prompt's cache once, not ``n`` times.

        ``num_return_sequences`` copies the prompt n times before the forward pass, so the
        prompt (most of the tokens) is prefilled n times. Instead: run the prompt minus its last
        token once, repeat the cache n times, and let ``generate`` continue from it.
        """
        from transformers import DynamicCache

        ids, mask = enc["input_ids"], enc["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
        try:
            cache = DynamicCache(config=self.model.config)
            self.model(
                input_ids=ids[:, :-1],
                attention_mask=mask[:, :-1],
                position_ids=positions[:, :-1],
                use_cache=True,
                **{self._cache_kw: cache},
            )
            cache.batch_repeat_interleave(n)
            return self.model.generate(
                input_ids=ids.repeat_interleave(n, dim=0),
                attention_mask=mask.repeat_interleave(n, dim=0),
                **{self._cache_kw: cache},
                **kwargs,
            )
        except (TypeError, ValueError, AttributeError, NotImplementedError) as exc:
            log.warning("shared prefill is not supported by this model (%s); prefilling per sample", exc)
            self.shared_prefill = False
            return self.model.generate(**enc, num_return_sequences=n, **kwargs)

    def close(self) -> None:
        """Drop the model; frees accelerator memory when nothing else holds it."""
        self.model = None  # type: ignore[assignment]
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
