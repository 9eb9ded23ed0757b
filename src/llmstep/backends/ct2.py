"""The CTranslate2 backend: a converted model, int8 by default, the fast path on CPU.

``llmstep convert ct2 MODEL_DIR OUT_DIR`` writes the model directory this
backend loads (weights, ctranslate2's config and the tokenizer).

Each request is one ``generate_batch`` call of its own, and ``--ct2-workers``
calls run at once (ctranslate2's ``inter_threads``, the cores split between
them); the engine merges nothing in front. Merging requests would cost more
than it saves: ctranslate2 forwards a batch's prompts at once only up to the
shortest one, and steps the rest through the decoding loop token by token
(its documented behaviour, OpenNMT/CTranslate2#1480), so eight prompts of
unequal length took longer together than in turn. Measured on 2 cores
(benchmarks/README.md), two workers of one thread each also beat one worker of
two threads, at one client as at eight. A call waiting for a worker checks
``should_stop`` before it starts, so a request whose client left never
generates. Sampling and greedy
decoding give every sample a batch example of its own, so that ctranslate2's
per-token ``callback`` can end each row on its own: at a stop string inside a
longer token, when the loop guard sees it repeating itself (the row is then
dropped, as on hf), or once ``should_stop`` is True. Its beam search takes no
callback, so a beam batch runs to its end.

Scores match the transformers backend: the mean untempered log-probability of
the generated tokens, up to and including the token that ended the step.
ctranslate2 reports them differently per decoding mode, so:

* sampling and greedy read them from the per-token ``callback``, whose
  ``log_prob`` is the token's log-probability under the untempered
  distribution: one number per token, never the vocabulary-wide logits
  (``return_logits_vocab`` would hold rows × steps × vocabulary floats, about
  1.6 GB for 64 samples of 128 tokens at a 50k vocabulary, and on some
  prompts it reports a masked value for the chosen token);
* beam search has no callback and gives only each hypothesis' cumulative
  score, so the kept hypotheses are re-scored with one ``score_batch`` call
  over prompt + continuation (one extra forward pass, no sampling).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmstep.backends.base import Candidate, GenerationParams, ShouldStop, never
from llmstep.backends.candidates import TokenizerTools, cut_candidate, ends_in_text_stop, repeats_itself
from llmstep.backends.threads import decoding_threads
from llmstep.config import ModelConfig
from llmstep.convert.ct2 import PROVENANCE_FILE, import_ctranslate2, is_ct2_model_dir
from llmstep.errors import ConfigError, ModelUnavailable, first_line
from llmstep.protocol.prompt import Prompt

__all__ = ["CT2Backend", "resolve_compute_type"]

log = logging.getLogger(__name__)

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


class _Rows:
    """ctranslate2's per-token callback, for a batch with one example per row (one sample each).

    It records each row's tokens and their untempered log-probabilities, and a True from it ends
    that row alone: when a stop string shows in its text (a newline inside a longer token, which
    no end token catches), when the loop guard sees it repeating itself, or once nobody wants the
    answer. So a looping sample no longer runs to ``max_new_tokens`` while the batch waits for it.
    """

    def __init__(
        self, should_stop: ShouldStop, text_stops: tuple[str, ...], loop_guard: bool, decode: Callable[..., str]
    ) -> None:
        self.should_stop = should_stop
        self.text_stops = text_stops
        self.loop_guard = loop_guard
        self.decode = decode
        self._tokens: dict[int, list[int]] = {}
        self._logprobs: dict[int, list[float]] = {}
        #: Rows the loop guard ended.
        self.looped: set[int] = set()

    def __call__(self, step: Any) -> bool:
        ids = self._tokens.setdefault(step.batch_id, [])
        ids.append(step.token_id)
        self._logprobs.setdefault(step.batch_id, []).append(step.log_prob)
        if self.should_stop():
            return True
        if ends_in_text_stop(ids, self.text_stops, self.decode):
            return True
        if self.loop_guard and repeats_itself(ids):
            self.looped.add(step.batch_id)
            return True
        return False

    def logprobs(self, row: int, seq: Sequence[int]) -> list[float]:
        """The per-token log-probabilities of row ``row``'s result ``seq``."""
        ids, logprobs = self._tokens.get(row, []), self._logprobs.get(row, [])
        if ids[: len(seq)] != list(seq):
            raise RuntimeError(f"ctranslate2 reported other steps than the result of row {row}")
        if any(lp is None for lp in logprobs[: len(seq)]):
            raise RuntimeError("ctranslate2 reported no log-probabilities for the generated tokens")
        return logprobs[: len(seq)]


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
        cores = decoding_threads()
        #: Calls decoded at once; more wait for a worker here, where ``should_stop`` can still drop them.
        self.workers = min(config.ct2_workers, cores) if device == "cpu" else config.ct2_workers
        try:
            self.generator = ctranslate2.Generator(
                str(path),
                device=device,
                compute_type=self.compute_type,
                inter_threads=self.workers,
                intra_threads=max(1, cores // self.workers) if device == "cpu" else 0,
            )
            self.tokenizer = AutoTokenizer.from_pretrained(path)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailable(
                f"cannot load CTranslate2 model {config.model!r}: {first_line(exc)} "
                "(re-run `llmstep convert ct2` with this ctranslate2 version)"
            ) from exc
        self._ct2 = ctranslate2
        self._free_workers = threading.BoundedSemaphore(self.workers)
        #: Longest prompt + continuation, from the conversion record; None when unknown.
        self.context_window: int | None = _context_window(path)
        self._vocabulary = _vocabulary(path)
        self._warned_seed = False

    def _tokens(self, ids: Sequence[int]) -> list[str]:
        """ctranslate2 takes token strings; its own vocabulary also names the padding ids a tokenizer lacks."""
        if self._vocabulary is not None:
            return [self._vocabulary[i] for i in ids]
        return self.tokenizer.convert_ids_to_tokens(list(ids))

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """One ``generate_batch`` for all prompts, once a worker is free; see the Backend protocol."""
        prompt_ids = self.prompt_ids(prompts)
        stop_ids = self._stop_token_ids(params.stop)
        with self._free_workers:
            if should_stop():  # nobody waits any more: never start
                return [[] for _ in prompts]
            if params.seed is not None:
                self._ct2.set_random_seed(params.seed)
                if params.decoding == "sample" and params.temperature > 0 and not self._warned_seed:
                    self._warned_seed = True
                    log.warning(
                        "ctranslate2 does not reproduce seeded sampling (OpenNMT/CTranslate2#1757): the seed is "
                        "passed on, but equal seeds may sample differently; use --backend hf for reproducible samples"
                    )
            options: dict[str, Any] = {
                "max_length": params.max_new_tokens,  # generated tokens only: the prompt is not in the result
                "end_token": sorted(stop_ids),
                "return_end_token": True,  # keep the stop token: it is scored, like in the transformers backend
                "include_prompt_in_result": False,
            }
            if params.decoding == "beam":
                return self._beam(prompt_ids, params, stop_ids, options)
            return self._sample(prompt_ids, params, stop_ids, should_stop, options)

    def _beam(
        self, prompt_ids: list[list[int]], params: GenerationParams, stop_ids: set[int], options: dict[str, Any]
    ) -> list[list[Candidate]]:
        """Beam search (no callback: it runs to its end), its hypotheses re-scored in one ``score_batch``."""
        n = params.num_samples
        results = self.generator.generate_batch(
            [self._tokens(ids) for ids in prompt_ids],
            beam_size=n,
            num_hypotheses=n,
            length_penalty=BEAM_LENGTH_PENALTY,
            **options,
        )
        logprobs = self._rescore(prompt_ids, [r.sequences_ids for r in results])
        return [
            [
                cut_candidate(seq, lps, stop_ids, params.stop, self._decode)
                for seq, lps in zip(r.sequences_ids, per_seq, strict=True)
            ]
            for r, per_seq in zip(results, logprobs, strict=True)
        ]

    def _sample(
        self,
        prompt_ids: list[list[int]],
        params: GenerationParams,
        stop_ids: set[int],
        should_stop: ShouldStop,
        options: dict[str, Any],
    ) -> list[list[Candidate]]:
        """Sampling or greedy decoding, one batch example per sample, so that the callback can end rows one
        by one. Greedy decoding reports log-probabilities only with ``return_scores`` (sampling always does)."""
        per_prompt = 1 if params.temperature == 0.0 else params.num_samples
        rows = _Rows(should_stop, self._text_stops(params.stop), params.loop_guard, self._decode)
        sampling = (
            {"sampling_topk": 1}
            if params.temperature == 0.0
            # The whole distribution, as llmstep samples.
            else {"sampling_topk": 0, "sampling_temperature": params.temperature}
        )
        results = self.generator.generate_batch(
            [self._tokens(ids) for ids in prompt_ids for _ in range(per_prompt)],
            beam_size=1,
            num_hypotheses=1,
            callback=rows,
            return_scores=True,
            **sampling,
            **options,
        )
        candidates = []
        for row, result in enumerate(results):
            seq = result.sequences_ids[0]
            cand = cut_candidate(seq, rows.logprobs(row, seq), stop_ids, params.stop, self._decode)
            candidates.append(replace(cand, finish_reason="loop") if row in rows.looped else cand)
        return [candidates[i * per_prompt : (i + 1) * per_prompt] for i in range(len(prompt_ids))]

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

    def schedules_rows(self, params: GenerationParams) -> bool:
        """True: each request is a call of its own, on ctranslate2's workers; see the module's docstring."""
        return True

    def close(self) -> None:
        """Unload the model from memory (and from the GPU)."""
        self.generator = None  # type: ignore[assignment]
