"""The vLLM backend: continuous batching on NVIDIA GPUs (extra ``llmstep[vllm]``).

One ``LLM.generate`` call decodes every prompt of a batch. Beam search uses
``LLM.beam_search`` with ``BeamSearchParams`` where the installed vLLM has
them, and falls back to sampling (with a warning) where it does not.

Scores follow the transformers backend: the mean log-probability of the
generated tokens up to and including the one that ended the step, read from
the log-probabilities vLLM returns for the chosen tokens. vLLM's V1 engine
(0.8 and later) reports them from the raw logits, as transformers does; the
old V0 engine reported them after temperature scaling. The text is decoded
and cut here from the token ids, so vLLM's own stop-string stripping does not
matter and a stop token is scored wherever vLLM includes it in ``token_ids``.

``LLM.generate`` cannot be interrupted, so ``should_stop`` is checked only
before the call (vLLM's async engine, one request per call, is the way to stop
rows early).

The engine object is injectable (:meth:`VLLMBackend.from_engine`), because
vLLM cannot run without a GPU and the glue code still needs testing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from llmstep.backends.base import Candidate, GenerationParams, ShouldStop, never
from llmstep.backends.candidates import TokenizerTools, cut_candidate
from llmstep.config import ModelConfig
from llmstep.errors import ConfigError, ModelUnavailable, first_line
from llmstep.protocol.prompt import Prompt

__all__ = ["VLLMBackend", "engine_kwargs"]

log = logging.getLogger(__name__)

#: Rank finished beams by their summed log-probability, as the ct2 backend does.
BEAM_LENGTH_PENALTY = 0.0


def engine_kwargs(config: ModelConfig) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` from llmstep's model settings."""
    if config.device in ("cpu", "mps"):
        raise ConfigError(
            f"--device {config.device}: the vllm backend runs on CUDA GPUs only; use --backend ct2 or hf on CPU"
        )
    return {
        "model": config.model,
        "tokenizer": config.model,
        "tensor_parallel_size": config.tensor_parallel_size,
        "dtype": config.dtype,  # vLLM reads "auto" from the checkpoint, like we do
    }


def _logprob(step: Any, token_id: int) -> float | None:
    """The chosen token's log-probability from one position's ``{token_id: Logprob}``."""
    entry = step.get(token_id) if hasattr(step, "get") else None
    if entry is None:
        return None
    return float(getattr(entry, "logprob", entry))


def _token_logprobs(token_ids: Sequence[int], logprobs: Sequence[Any] | None) -> list[float]:
    """Per-token log-probabilities, as long as ``token_ids`` as far as vLLM reported them."""
    values: list[float] = []
    for token_id, step in zip(token_ids, logprobs or (), strict=False):
        value = _logprob(step, token_id)
        if value is None:
            break
        values.append(value)
    return values


def _engine_prompt(prompt: Prompt) -> dict[str, Any]:
    """vLLM's prompt: the ids the engine fitted (a ``TokensPrompt``), so it does not encode again; else the text."""
    if prompt.token_ids is not None:
        return {"prompt_token_ids": list(prompt.token_ids)}
    return {"prompt": prompt.text}


class VLLMBackend(TokenizerTools):
    """A ``vllm.LLM`` engine with its tokenizer."""

    name = "vllm"

    def __init__(self, config: ModelConfig) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise ConfigError(
                f"vLLM is not installed ({exc}): pip install 'llmstep[vllm]' (needs an NVIDIA GPU; "
                "on CPU use --backend ct2 or hf)"
            ) from exc
        kwargs = engine_kwargs(config)
        try:
            engine = vllm.LLM(**kwargs)
        except Exception as exc:  # vLLM raises ValueError, OSError, RuntimeError, CUDA errors...: one seam
            raise ModelUnavailable(f"vLLM cannot load {config.model!r}: {first_line(exc)}") from exc
        beam_params = getattr(vllm, "BeamSearchParams", None)
        if beam_params is None:
            try:
                from vllm.sampling_params import BeamSearchParams as beam_params
            except ImportError:
                beam_params = None
        self._setup(engine, config.model, vllm.SamplingParams, beam_params)

    @classmethod
    def from_engine(
        cls,
        engine: Any,
        model_id: str,
        sampling_params: Callable[..., Any],
        beam_search_params: Callable[..., Any] | None = None,
    ) -> VLLMBackend:
        """Wrap an engine built elsewhere; ``sampling_params`` and ``beam_search_params`` build its requests.

        In production these are ``vllm.LLM``, ``vllm.SamplingParams`` and
        ``vllm.BeamSearchParams``; tests pass stand-ins for all three.
        """
        backend = cls.__new__(cls)
        backend._setup(engine, model_id, sampling_params, beam_search_params)
        return backend

    def _setup(
        self,
        engine: Any,
        model_id: str,
        sampling_params: Callable[..., Any],
        beam_search_params: Callable[..., Any] | None,
    ) -> None:
        self.engine = engine
        self.model_id = model_id
        self.tokenizer = engine.get_tokenizer()
        self._sampling_params = sampling_params
        self._beam_search_params = beam_search_params if hasattr(engine, "beam_search") else None
        self._lock = threading.Lock()
        model_config = getattr(getattr(engine, "llm_engine", None), "model_config", None)
        #: The longest prompt + continuation vLLM accepts; None when the engine does not say.
        self.context_window: int | None = getattr(model_config, "max_model_len", None)

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """One engine call for all prompts; see :class:`~llmstep.backends.base.Backend`."""
        stop_ids = self._stop_token_ids(params.stop)
        with self._lock:
            if should_stop():
                return [[] for _ in prompts]
            if params.decoding == "beam" and self._beam_search_params is not None:
                return self._beam_search(prompts, params, stop_ids)
            if params.decoding == "beam":
                log.warning("this vLLM has no LLM.beam_search; sampling %d sequences instead", params.num_samples)
            return self._sample(prompts, params, stop_ids)

    def _sample(self, prompts: Sequence[Prompt], params: GenerationParams, stop_ids: set[int]) -> list[list[Candidate]]:
        greedy = params.decoding == "sample" and params.temperature == 0.0
        request = self._sampling_params(
            n=1 if greedy else params.num_samples,
            # A beam request sampled instead keeps its temperature, or 1.0 where it had none.
            temperature=params.temperature if greedy or params.temperature > 0 else 1.0,
            max_tokens=params.max_new_tokens,
            stop=[s for s in params.stop if s],
            stop_token_ids=sorted(stop_ids - {self.tokenizer.eos_token_id}),
            include_stop_str_in_output=True,  # keep the stop's tokens: we cut and score them ourselves
            logprobs=0,  # the chosen token's log-probability only
            seed=params.seed,
        )
        outputs = self.engine.generate([_engine_prompt(p) for p in prompts], request, use_tqdm=False)
        return [
            [
                self._candidate(
                    out.token_ids, _token_logprobs(out.token_ids, out.logprobs), out.finish_reason, params, stop_ids
                )
                for out in result.outputs
            ]
            for result in outputs
        ]

    def _beam_search(
        self, prompts: Sequence[Prompt], params: GenerationParams, stop_ids: set[int]
    ) -> list[list[Candidate]]:
        # vLLM's beam search ends a beam only at end-of-text, not at stop strings: beams run on past
        # "[END]" or a newline, and are cut afterwards, so several beams may share one step.
        request = self._beam_search_params(
            beam_width=params.num_samples, max_tokens=params.max_new_tokens, length_penalty=BEAM_LENGTH_PENALTY
        )
        outputs = self.engine.beam_search([_engine_prompt(p) for p in prompts], request)
        candidates = []
        for output in outputs:
            per_prompt = []
            for seq in output.sequences:
                # seq.tokens holds the prompt too; seq.logprobs has one entry per generated token.
                generated = list(seq.tokens[len(seq.tokens) - len(seq.logprobs) :])
                per_prompt.append(
                    self._candidate(generated, _token_logprobs(generated, seq.logprobs), None, params, stop_ids)
                )
            candidates.append(per_prompt)
        return candidates

    def _candidate(
        self,
        token_ids: Sequence[int],
        logprobs: list[float],
        finish_reason: str | None,
        params: GenerationParams,
        stop_ids: set[int],
    ) -> Candidate:
        cand = cut_candidate(list(token_ids), logprobs, stop_ids, params.stop, self._decode)
        if cand.finish_reason == "length" and finish_reason == "stop":
            # vLLM ended it at end-of-text without listing that token: a stop, scored without it.
            return Candidate(cand.text, cand.score, cand.token_logprobs, "stop")
        return cand

    def schedules_rows(self, params: GenerationParams) -> bool:
        """The engine's batcher merges requests into one engine call; see the Backend protocol."""
        return False

    def close(self) -> None:
        """Drop the engine; vLLM frees GPU memory when nothing else holds it."""
        self.engine = None
