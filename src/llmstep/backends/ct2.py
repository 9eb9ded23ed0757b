"""The CTranslate2 backend: a converted model, int8 by default, the fast path on CPU.

``llmstep convert ct2 MODEL_DIR OUT_DIR`` writes the model directory this
backend loads (weights, ctranslate2's config and the tokenizer). One
``generate_batch`` call decodes every prompt of a batch. Sampling and greedy
decoding stop early once ``should_stop`` is True (ctranslate2's per-token
``callback``); its beam search takes no callback, so a beam batch runs to its end.

Scores match the transformers backend: the mean untempered log-probability of
the generated tokens, up to and including the token that ended the step.
ctranslate2 reports them differently per decoding mode, so:

* sampling and greedy ask for ``return_logits_vocab``: the raw (untempered)
  logits of each generated position, whose log-softmax gives exact per-token
  log-probabilities;
* beam search gives no per-step logits, only each hypothesis' cumulative
  score, so the kept hypotheses are re-scored with one ``score_batch`` call
  over prompt + continuation (one extra forward pass, no sampling).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmstep.backends.base import Candidate, GenerationParams, ShouldStop, never
from llmstep.backends.candidates import TokenizerTools, cut_candidate
from llmstep.config import ModelConfig
from llmstep.convert.ct2 import PROVENANCE_FILE, import_ctranslate2, is_ct2_model_dir
from llmstep.errors import ConfigError, ModelUnavailable

__all__ = ["CT2Backend", "resolve_compute_type"]

#: ``--compute-type auto``: int8 weights and int8 matmuls, the point of this backend on CPU.
DEFAULT_COMPUTE_TYPE = "int8"

#: ctranslate2 divides a finished beam's score by length**penalty when it picks the
#: beams to keep; 0 keeps the plain sum of log-probabilities. On the tiny test model
#: 0 gave transformers' top beam for 11 of 11 prompts, 1 for 8 of 11.
BEAM_LENGTH_PENALTY = 0.0


#: Tokens per ``score_batch`` sub-batch when re-scoring beams (about 400 MB of
#: float32 log-probabilities at a 50k vocabulary).
RESCORE_BATCH_TOKENS = 2048


def resolve_compute_type(compute_type: str, device: str, supported: set[str]) -> str:
    """``auto`` becomes int8; anything this device cannot run is a ConfigError naming what it can."""
    chosen = DEFAULT_COMPUTE_TYPE if compute_type == "auto" else compute_type
    if chosen not in supported and chosen != "default":
        raise ConfigError(
            f"--compute-type {chosen!r} is not supported on {device} here; choose one of: "
            f"{', '.join(sorted(supported))}"
        )
    return chosen


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64, for ``(steps, vocab)`` logits."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _check_model_dir(model: str) -> Path:
    path = Path(model).expanduser()
    convert = f"convert it first: llmstep convert ct2 {model} OUT_DIR, then serve --model OUT_DIR --backend ct2"
    if not path.exists():
        raise ModelUnavailable(
            f"model directory {model!r} does not exist; the ct2 backend needs a local directory "
            "written by `llmstep convert ct2`"
        )
    if not is_ct2_model_dir(path):
        raise ModelUnavailable(f"{model!r} is not a CTranslate2 model (no model.bin); {convert}")
    return path


def _vocabulary(path: Path) -> list[str] | None:
    """The converted model's tokens in id order (``vocabulary.json``, or ``.txt`` from older ctranslate2)."""
    try:
        if (path / "vocabulary.json").is_file():
            return json.loads((path / "vocabulary.json").read_text(encoding="utf-8"))
        if (path / "vocabulary.txt").is_file():
            return (path / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    except (OSError, ValueError):
        pass
    return None


def _context_window(path: Path) -> int | None:
    """The source model's window, which ``llmstep convert ct2`` records beside the weights."""
    try:
        value = json.loads((path / PROVENANCE_FILE).read_text(encoding="utf-8")).get("context_window")
    except (OSError, ValueError):
        return None  # converted by ctranslate2's own tool: no record
    return value if isinstance(value, int) and value > 0 else None


class CT2Backend(TokenizerTools):
    """A ``ctranslate2.Generator`` with the tokenizer saved beside it."""

    name = "ct2"

    def __init__(self, config: ModelConfig) -> None:
        from transformers import AutoTokenizer

        ctranslate2 = import_ctranslate2()
        path = _check_model_dir(config.model)
        if config.device == "mps":
            raise ConfigError("--device mps: CTranslate2 runs on cpu or cuda only")
        device = config.device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        self.model_id = config.model
        self.device = device
        self.compute_type = resolve_compute_type(
            config.compute_type, device, set(ctranslate2.get_supported_compute_types(device))
        )
        try:
            self.generator = ctranslate2.Generator(str(path), device=device, compute_type=self.compute_type)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
        except (RuntimeError, ValueError, OSError) as exc:
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise ModelUnavailable(
                f"cannot load CTranslate2 model {config.model!r}: {first} "
                "(re-run `llmstep convert ct2` with this ctranslate2 version)"
            ) from exc
        self._ct2 = ctranslate2
        self._lock = threading.Lock()
        #: Longest prompt + continuation, from the conversion record; None when unknown.
        self.context_window: int | None = _context_window(path)
        self._vocabulary = _vocabulary(path)

    def _tokens(self, ids: Sequence[int]) -> list[str]:
        """ctranslate2 takes token strings; its own vocabulary also names the padding ids a tokenizer lacks."""
        if self._vocabulary is not None:
            return [self._vocabulary[i] for i in ids]
        return self.tokenizer.convert_ids_to_tokens(list(ids))

    def generate(
        self, prompts: Sequence[str], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """One ``generate_batch`` for all prompts; see :class:`~llmstep.backends.base.Backend`."""
        with self.tokenize_lock:
            prompt_ids = [self.tokenizer(p)["input_ids"] for p in prompts]
        stop_ids = self._stop_token_ids(params.stop)
        with self._lock:
            if params.seed is not None:
                self._ct2.set_random_seed(params.seed)
            results = self.generator.generate_batch(
                [self._tokens(ids) for ids in prompt_ids],
                max_length=params.max_new_tokens,  # counts generated tokens only, as the prompt is not in the result
                end_token=sorted(stop_ids),
                return_end_token=True,  # keep the stop token: it is scored, like in the transformers backend
                include_prompt_in_result=False,
                return_logits_vocab=params.decoding != "beam",
                **self._decoding_options(params, should_stop),
            )
            if params.decoding == "beam":
                logprobs = self._rescore(prompt_ids, [r.sequences_ids for r in results])
            else:
                logprobs = [
                    [self._token_logprobs(seq, lg) for seq, lg in zip(r.sequences_ids, r.logits, strict=True)]
                    for r in results
                ]
        return [
            [
                cut_candidate(seq, lps, stop_ids, params.stop, self._decode)
                for seq, lps in zip(r.sequences_ids, per_seq, strict=True)
            ]
            for r, per_seq in zip(results, logprobs, strict=True)
        ]

    @staticmethod
    def _decoding_options(params: GenerationParams, should_stop: ShouldStop) -> dict[str, Any]:
        if params.decoding == "beam":
            n = params.num_samples
            return {"beam_size": n, "num_hypotheses": n, "length_penalty": BEAM_LENGTH_PENALTY}
        # Called for every generated token (beam_size 1 only); True ends that prompt's decoding.
        stop = {} if should_stop is never else {"callback": lambda step: should_stop()}
        if params.temperature == 0.0:
            return {"beam_size": 1, "num_hypotheses": 1, "sampling_topk": 1, **stop}
        return {
            "beam_size": 1,
            "num_hypotheses": params.num_samples,
            "sampling_topk": 0,  # the whole distribution, as llmstep samples
            "sampling_temperature": params.temperature,
            **stop,
        }

    @staticmethod
    def _token_logprobs(seq: Sequence[int], logits: Sequence[Any]) -> list[float]:
        """Log-probabilities of ``seq`` from the raw per-step logits (StorageViews of shape ``[vocab]``)."""
        if not seq:
            return []
        steps = _log_softmax(np.stack([np.asarray(step) for step in logits[: len(seq)]]))
        return steps[np.arange(len(seq)), np.asarray(seq)].tolist()

    def _rescore(self, prompt_ids: list[list[int]], hypotheses: list[list[list[int]]]) -> list[list[list[float]]]:
        """Per-token log-probabilities of every hypothesis, from one ``score_batch`` over prompt + continuation."""
        flat = [(ids, seq) for ids, seqs in zip(prompt_ids, hypotheses, strict=True) for seq in seqs]
        scored = self.generator.score_batch(
            [self._tokens(ids + seq) for ids, seq in flat],
            max_input_length=0,  # never truncate: the continuation is at the end
            # Scoring holds a vocabulary-wide row per token; sub-batches bound that memory.
            max_batch_size=RESCORE_BATCH_TOKENS,
            batch_type="tokens",
        )
        # score_batch scores every token after the first, so the continuation is the tail.
        per_token = iter(
            [
                list(r.log_probs[len(r.log_probs) - len(seq) :]) if seq else []
                for (_, seq), r in zip(flat, scored, strict=True)
            ]
        )
        return [[next(per_token) for _ in seqs] for seqs in hypotheses]

    def close(self) -> None:
        """Unload the model from memory (and from the GPU)."""
        self.generator = None  # type: ignore[assignment]
