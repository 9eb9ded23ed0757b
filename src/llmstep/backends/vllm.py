"""The vLLM backend: vLLM's async engine on NVIDIA GPUs (extra ``llmstep[vllm]``, vLLM 0.11 or later).

vLLM batches continuously: sequences join and leave its batch between decoding
steps. So nothing is merged in front of it: the server awaits each request as
it comes (an :class:`~llmstep.backends.base.AsyncBackend`), and every sample is
one engine request. Cancelling the awaiting task (the client left, its deadline
passed) aborts those requests, and their rows leave vLLM's batch at its next step.

The engine lives on an event loop of its own, on a thread of its own. vLLM's
async engine binds its output handler to the first loop that uses it, while
llmstep awaits backends on the server's loop, on ``llmstep eval``'s private
loop, or on a test's; calls and their cancellation cross over with
``run_coroutine_threadsafe``.

Sampling: one engine request per sample (vLLM fans ``n`` out into such requests
itself; with a seed, sample k gets seed + k, as vLLM does). With the loop guard
on, rows stream in deltas, so a row that repeats itself is aborted alone and
dropped, as on hf and ct2.

Beam search: the async engine has none (``EngineClient.beam_search`` went into
vLLM's OpenAI serving layer), so it runs here over ``generate``, as vLLM's own
does: each step, every live beam asks for one token and its 2 × width most
likely next tokens (prefix caching keeps the shared prefix cheap). Unlike vLLM's,
a beam ends at a stop token or stop string as well as at end-of-text. Finished
beams rank by summed log-probability, as on ct2.

Scores follow the transformers backend: the mean log-probability of the
generated tokens up to and including the one that ended the step, from the
log-probabilities vLLM reports for the chosen tokens (V1 reports them from the
raw logits, as transformers does). The text is decoded and cut here from the
token ids, so vLLM's own stop-string handling does not matter.

The engine object is injectable (:meth:`VLLMBackend.from_engine`), because
vLLM cannot run without a GPU and the glue code still needs testing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from llmstep.backends.base import Candidate, GenerationParams, ShouldStop, never
from llmstep.backends.candidates import TokenizerTools, cut_candidate, ends_in_text_stop, repeats_itself
from llmstep.config import ModelConfig
from llmstep.errors import ConfigError, ModelUnavailable, first_line
from llmstep.protocol.prompt import Prompt
from llmstep.protocol.wire import MAX_NUM_SAMPLES

__all__ = ["VLLMBackend", "engine_kwargs"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Next tokens a beam asks for, per beam of the width: twice, so that the width can be refilled
#: with live beams when some of the best continuations end the step.
BEAM_CANDIDATES_PER_BEAM = 2


def engine_kwargs(config: ModelConfig) -> dict[str, Any]:
    """Keyword arguments for ``vllm.AsyncEngineArgs`` from llmstep's model settings."""
    if config.device in ("cpu", "mps"):
        raise ConfigError(
            f"--device {config.device}: the vllm backend runs on CUDA GPUs only; use --backend ct2 or hf on CPU"
        )
    return {
        "model": config.model,
        "tokenizer": config.model,
        "tensor_parallel_size": config.tensor_parallel_size,
        "dtype": config.dtype,  # vLLM reads "auto" from the checkpoint, like we do
        # Beam search asks for 2 × width next tokens (vLLM's default allows 20).
        "max_logprobs": BEAM_CANDIDATES_PER_BEAM * MAX_NUM_SAMPLES,
    }


def _logprob(entry: Any) -> float:
    """A ``vllm.sequence.Logprob``'s value."""
    return float(entry.logprob)


def _chosen_logprobs(token_ids: Sequence[int], logprobs: Sequence[dict[int, Any]] | None) -> list[float | None]:
    """Each chosen token's log-probability from its position's ``{token_id: Logprob}``; None where not reported."""
    steps = list(logprobs or ())
    chosen: list[float | None] = []
    for k, token_id in enumerate(token_ids):
        entry = steps[k].get(token_id) if k < len(steps) else None
        chosen.append(None if entry is None else _logprob(entry))
    return chosen


def _reported(logprobs: Sequence[float | None]) -> list[float]:
    """The log-probabilities up to the first one vLLM did not report."""
    values: list[float] = []
    for value in logprobs:
        if value is None:
            break
        values.append(value)
    return values


def _engine_prompt(prompt: Prompt) -> dict[str, Any]:
    """vLLM's prompt: the ids the engine fitted (a ``TokensPrompt``), so it does not encode again; else the text."""
    if prompt.token_ids is not None:
        return {"prompt_token_ids": list(prompt.token_ids)}
    return {"prompt": prompt.text}


@dataclass(frozen=True)
class _Beam:
    """A partial continuation in beam search: its tokens, their log-probabilities and their sum."""

    ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()
    total: float = 0.0

    def grown(self, token_id: int, logprob: float) -> _Beam:
        return _Beam((*self.ids, token_id), (*self.logprobs, logprob), self.total + logprob)


class _EngineLoop:
    """An event loop on a thread of its own, where the engine is built and every engine call runs."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="llmstep-vllm", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the engine loop and wait for it here (a thread with no loop of its own running)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def wait(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the engine loop and await it on the caller's; cancelling the caller cancels it there."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class VLLMBackend(TokenizerTools):
    """A ``vllm.AsyncLLMEngine`` with its tokenizer, on an event loop of its own."""

    name = "vllm"

    def __init__(self, config: ModelConfig) -> None:
        try:
            import vllm
            from vllm.sampling_params import RequestOutputKind
        except ImportError as exc:
            raise ConfigError(
                f"vLLM is not installed ({exc}): pip install 'llmstep[vllm]' (needs an NVIDIA GPU; "
                "on CPU use --backend ct2 or hf)"
            ) from exc
        engine_args = vllm.AsyncEngineArgs(**engine_kwargs(config))
        self._start(
            lambda: vllm.AsyncLLMEngine.from_engine_args(engine_args),
            config.model,
            vllm.SamplingParams,
            RequestOutputKind,
        )

    @classmethod
    def from_engine(
        cls, build: Callable[[], Any], model_id: str, sampling_params: Callable[..., Any], output_kind: Any
    ) -> VLLMBackend:
        """Wrap the engine ``build()`` makes; ``sampling_params`` builds its requests, ``output_kind`` names
        its streaming modes.

        In production these are ``vllm.AsyncLLMEngine.from_engine_args``, ``vllm.SamplingParams`` and
        ``vllm.sampling_params.RequestOutputKind``; tests pass stand-ins for all three.
        """
        backend = cls.__new__(cls)
        backend._start(build, model_id, sampling_params, output_kind)
        return backend

    def _start(
        self, build: Callable[[], Any], model_id: str, sampling_params: Callable[..., Any], output_kind: Any
    ) -> None:
        """Build the engine on a loop of its own, the loop it will serve, and ask it for its tokenizer."""

        async def built() -> Any:
            return build()

        loop = _EngineLoop()
        try:
            engine = loop.run(built())
        except Exception as exc:  # vLLM raises ValueError, OSError, RuntimeError, CUDA errors...: one seam
            loop.close()
            raise ModelUnavailable(f"vLLM cannot load {model_id!r}: {first_line(exc)}") from exc
        self._loop = loop
        self.engine = engine
        self.model_id = model_id
        self.tokenizer = loop.run(engine.get_tokenizer())
        self._sampling_params = sampling_params
        self._output_kind = output_kind
        self._request_ids = itertools.count()
        #: The longest prompt + continuation vLLM accepts.
        self.context_window: int | None = engine.model_config.max_model_len

    async def generate_async(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[list[Candidate]]:
        """Continuations for each prompt, from the engine loop; see :class:`~llmstep.backends.base.AsyncBackend`."""
        return await self._loop.wait(self._generate(prompts, params))

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        """``generate_async`` for a caller without a loop; ``should_stop`` is checked before the call only
        (the server awaits ``generate_async``, whose cancellation aborts the engine's requests)."""
        if should_stop():
            return [[] for _ in prompts]
        return self._loop.run(self._generate(prompts, params))

    async def _generate(self, prompts: Sequence[Prompt], params: GenerationParams) -> list[list[Candidate]]:
        stop_ids = self._stop_token_ids(params.stop)
        if params.decoding == "beam":
            searches = [self._beam_search(ids, params, stop_ids) for ids in self.prompt_ids(prompts)]
        else:
            searches = [self._sample(_engine_prompt(p), params, stop_ids) for p in prompts]
        return list(await asyncio.gather(*searches))

    def _request_id(self) -> str:
        return f"llmstep-{next(self._request_ids)}"

    async def _sample(self, prompt: dict[str, Any], params: GenerationParams, stop_ids: set[int]) -> list[Candidate]:
        greedy = params.temperature == 0.0
        rows = 1 if greedy else params.num_samples
        return list(await asyncio.gather(*(self._sample_row(prompt, params, stop_ids, k, greedy) for k in range(rows))))

    async def _sample_row(
        self, prompt: dict[str, Any], params: GenerationParams, stop_ids: set[int], k: int, greedy: bool
    ) -> Candidate:
        """One sample: one engine request, aborted early if the loop guard sees it repeating itself."""
        request = self._sampling_params(
            n=1,
            temperature=0.0 if greedy else params.temperature,
            max_tokens=params.max_new_tokens,
            stop=[s for s in params.stop if s],
            stop_token_ids=sorted(stop_ids - {self.tokenizer.eos_token_id}),
            include_stop_str_in_output=True,  # keep the stop's tokens: we cut and score them ourselves
            logprobs=0,  # the chosen token's log-probability only
            seed=None if params.seed is None else params.seed + k,
            # Deltas to watch a row as it grows; otherwise the finished row only.
            output_kind=self._output_kind.DELTA if params.loop_guard else self._output_kind.FINAL_ONLY,
        )
        ids: list[int] = []
        logprobs: list[float | None] = []
        finish: str | None = None
        looped = False
        async with aclosing(self.engine.generate(prompt, request, self._request_id())) as outputs:
            async for output in outputs:
                seq = output.outputs[0]
                ids.extend(seq.token_ids)
                logprobs.extend(_chosen_logprobs(seq.token_ids, seq.logprobs))
                finish = seq.finish_reason
                if params.loop_guard and repeats_itself(ids):
                    looped = True
                    break  # leaving the block closes the stream: vLLM aborts the row
        cand = self._candidate(ids, _reported(logprobs), finish, params, stop_ids)
        return replace(cand, finish_reason="loop") if looped else cand

    async def _beam_search(
        self, prompt_ids: list[int], params: GenerationParams, stop_ids: set[int]
    ) -> list[Candidate]:
        """Beam search of ``num_samples`` beams, one engine request per live beam and step."""
        width = params.num_samples
        text_stops = self._text_stops(params.stop)

        def ended(beam: _Beam) -> bool:
            return beam.ids[-1] in stop_ids or ends_in_text_stop(beam.ids, text_stops, self._decode)

        live, done = [_Beam()], []
        for _ in range(params.max_new_tokens):
            steps = await asyncio.gather(*(self._next_tokens(prompt_ids + list(beam.ids), width) for beam in live))
            grown = sorted(
                (beam.grown(t, lp) for beam, step in zip(live, steps, strict=True) for t, lp in step),
                key=lambda b: b.total,
                reverse=True,
            )
            live = []
            for beam in grown:
                (done if ended(beam) else live).append(beam)
                if len(live) == width:
                    break
            done = sorted(done, key=lambda b: b.total, reverse=True)[:width]
            # Sums only fall as beams grow: once the width has finished beams no live one can pass, stop.
            if not live or (len(done) == width and done[-1].total >= live[0].total):
                break
        best = sorted(done + live, key=lambda b: b.total, reverse=True)[:width]
        return [self._candidate(b.ids, list(b.logprobs), None, params, stop_ids) for b in best]

    async def _next_tokens(self, ids: list[int], width: int) -> list[tuple[int, float]]:
        """The most likely next tokens after ``ids`` (a prompt and a beam), with their log-probabilities."""
        request = self._sampling_params(
            n=1,
            temperature=0.0,
            max_tokens=1,
            logprobs=BEAM_CANDIDATES_PER_BEAM * width,
            output_kind=self._output_kind.FINAL_ONLY,
        )
        final = None
        async with aclosing(self.engine.generate({"prompt_token_ids": ids}, request, self._request_id())) as outputs:
            async for output in outputs:
                final = output
        if final is None or not final.outputs[0].logprobs:
            raise RuntimeError("vLLM reported no log-probabilities for a beam's next token")
        return [(token_id, _logprob(entry)) for token_id, entry in final.outputs[0].logprobs[0].items()]

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
            return replace(cand, finish_reason="stop")
        return cand

    def schedules_rows(self, params: GenerationParams) -> bool:
        """True: vLLM admits and retires rows between steps itself; each request goes straight to it."""
        return True

    async def aclose(self) -> None:
        """Nothing of the engine belongs to the caller's loop: ``close`` releases it all."""

    def close(self) -> None:
        """Shut the engine down on its loop (vLLM frees GPU memory and its engine process), then the loop."""
        if self.engine is not None:
            self._loop.run(self._shutdown())
            self.engine = None
            self._loop.close()

    async def _shutdown(self) -> None:
        self.engine.shutdown()
