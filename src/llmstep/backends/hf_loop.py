"""Continuous batching for the transformers backend: a decoding loop that retires finished rows.

A padded ``generate`` call runs until its slowest row stops, so one looping
sample holds every finished row beside it, and requests that arrive meanwhile
wait for the whole batch. This loop decodes one token for every live row per
step, and at each step boundary:

* retires the rows that are done (a stop token or stop string, ``max_new_tokens``,
  the loop guard, a request nobody waits for), answering a request once all of
  its rows are;
* admits waiting requests, oldest first, while the rows and KV positions stay
  within budget: each prompt is prefilled once and its cache rows repeated for
  its samples, then left-padded to join the running batch. Attention masks and
  position ids keep each row's attention and positions its own.

Scores keep only each chosen token's log-probability, from the raw logits, so
memory per row is O(steps). Sampling is temperature only, from a generator of
the request's own (seeded when the request is) that draws one number per row
per step: a row's tokens do not depend on its batch-mates. One thread owns the
model; whole calls (beam search's ``generate``) run on it between steps.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from llmstep.backends.base import GenerationParams, ShouldStop
from llmstep.backends.candidates import ends_in_text_stop, repeats_itself
from llmstep.errors import ModelUnavailable

__all__ = ["DecodingLoop", "LoopStats", "Row"]

log = logging.getLogger(__name__)

T = TypeVar("T")

Finish = Literal["stop", "length", "loop"]

#: Finished rows, as a fraction of the batch, that make the loop drop them (``DecodingLoop.compact_at``).
#: Dropping copies the KV cache: on the benchmark model, 0.5 of a step's time at 10 rows, about one step
#: at 80. A finished row left in wastes its share of each step. With rows finishing at rate r per step in
#: a batch of R rows, dropping k at a time costs C·r/k + k/(2R) steps per step, least at k = √(2CrR):
#: about a fifth of the batch both at one client (R 10) and at eight (R 80).
COMPACT_AT = 0.2


@dataclass(eq=False)
class Row:
    """One sequence being decoded: its tokens, their log-probabilities, and how it ended."""

    request: LoopRequest
    #: Its place among the request's rows (prompt-major): which random draw is its own.
    index: int
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: Finish | None = None

    def push(self, token: int, logprob: float, decode: Callable[[Sequence[int]], str]) -> None:
        """Append one chosen token, and mark the row done if it ends here."""
        self.tokens.append(token)
        self.logprobs.append(logprob)
        req = self.request
        if token in req.stop_ids or ends_in_text_stop(self.tokens, req.text_stops, decode):
            self.finish = "stop"
        elif req.params.loop_guard and repeats_itself(self.tokens):
            self.finish = "loop"
        elif len(self.tokens) >= req.params.max_new_tokens:
            self.finish = "length"


@dataclass(eq=False)
class LoopRequest:
    """One ``generate`` call's prompts, waiting for, or in, the loop."""

    prompts: list[list[int]]
    params: GenerationParams
    should_stop: ShouldStop
    #: Token ids that end a row (end-of-text, padding, single-token stop strings).
    stop_ids: frozenset[int]
    #: Stop strings of several tokens, found in the decoded tail of each row.
    text_stops: tuple[str, ...]
    #: Prefill each prompt once for all its samples (False: once per sample; for comparison).
    shared_prefill: bool = True
    future: Future[list[list[Row]]] = field(default_factory=Future)
    rows: list[Row] = field(default_factory=list)
    stopped: bool = False
    #: Its caller has the answer; its rows may still sit in the batch until it is compacted.
    answered: bool = False
    #: What ``should_stop`` raised, if it did: the request's answer.
    error: BaseException | None = None
    generator: Any = None

    def __post_init__(self) -> None:
        sampling = self.params.temperature > 0.0
        self.samples = self.params.num_samples if sampling else 1
        self.rows = [Row(self, i) for i in range(len(self.prompts) * self.samples)]

    @property
    def span(self) -> int:
        """The most KV positions one of its rows can take: its prompt and every new token."""
        return max(map(len, self.prompts)) + self.params.max_new_tokens

    @property
    def done(self) -> bool:
        return self.stopped or all(row.finish is not None for row in self.rows)

    def unwanted(self) -> bool:
        """``should_stop()``; one that raises stops the request, which then answers with the exception."""
        try:
            return self.should_stop()
        except Exception as exc:
            self.error = exc
            return True

    def answer(self) -> None:
        """Hand the caller its rows, per prompt (or what went wrong)."""
        if self.error is not None:
            self.future.set_exception(self.error)
            return
        n = self.samples
        self.future.set_result([self.rows[i * n : (i + 1) * n] for i in range(len(self.prompts))])


@dataclass
class LoopStats:
    """What the loop has done: for tests that rows retire and budgets hold, and for tuning."""

    steps: int = 0
    admitted: int = 0
    answered: int = 0
    #: Rows cut by the loop guard.
    looped_rows: int = 0
    #: Requests whose rows were stopped because nobody waited for them (or never started).
    stopped: int = 0
    peak_rows: int = 0
    #: Most KV positions held at once: rows × padded length.
    peak_positions: int = 0
    #: Times finished rows were dropped from the batch (each copies the KV cache).
    compactions: int = 0


class DecodingLoop:
    """The thread that owns a causal LM and decodes every request's rows together, step by step."""

    def __init__(
        self,
        model: Any,
        device: str,
        cache_kw: str,
        pad_token_id: int,
        decode: Callable[[Sequence[int]], str],
        max_rows: int,
        max_positions: int,
        threads: int,
    ) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.device = device
        self._cache_kw = cache_kw
        self._pad = pad_token_id
        self._decode = decode
        self.max_rows = max_rows
        self.max_positions = max_positions
        self._threads = threads
        keeps = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._last_logits: dict[str, Any] = {"logits_to_keep": 1} if keeps else {}
        self.stats = LoopStats()
        #: Drop finished rows once they are this fraction of the batch (0: as each finishes). A finished row
        #: left in costs its share of each step; dropping copies the cache, about one step's time here.
        self.compact_at = COMPACT_AT
        self._cond = threading.Condition()
        self._waiting: deque[LoopRequest] = deque()
        self._calls: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._closing = False
        # Owned by the loop thread: the running batch, one entry per row along the batch dimension.
        self._rows: list[Row] = []
        self._cache: Any = None
        self._mask: Any = None  # (rows, positions): 1 where a row has a real token
        self._pos: Any = None  # (rows,): the position id of each row's next token
        self._next: Any = None  # (rows,): the token each row feeds next, chosen but not yet in the cache
        self._thread = threading.Thread(target=self._run, name="llmstep-decoding-loop", daemon=True)
        self._thread.start()

    # --- the callers' side -------------------------------------------------------------------

    def submit(self, request: LoopRequest) -> Future[list[list[Row]]]:
        """Queue ``request`` for admission; its future has its rows once all are done."""
        with self._cond:
            if self._closing:
                raise ModelUnavailable("the model is closed")
            self._waiting.append(request)
            self._cond.notify()
        return request.future

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the loop thread between two steps (a whole ``generate`` call); blocks for it."""
        future: Future[T] = Future()
        with self._cond:
            if self._closing:
                raise ModelUnavailable("the model is closed")
            self._calls.append((fn, future))
            self._cond.notify()
        return future.result()

    @property
    def waiting(self) -> int:
        """Requests not admitted yet."""
        return len(self._waiting)

    @property
    def rows(self) -> int:
        """Rows decoding now."""
        return len(self._rows)

    def close(self) -> None:
        """Fail what waits, stop what runs, and end the thread; the model is not touched afterwards."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    # --- the loop thread ---------------------------------------------------------------------

    def _run(self) -> None:
        torch = self._torch
        # Intra-op threads are set here, on the one thread that runs the model (they are per thread).
        torch.set_num_threads(self._threads)
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not (self._waiting or self._calls or self._rows or self._closing):
                        self._cond.wait()
                    calls = list(self._calls)
                    self._calls.clear()
                    closing = self._closing
                if closing:
                    self._shut_down(calls)
                    return
                for fn, future in calls:
                    if future.set_running_or_notify_cancel():
                        try:
                            future.set_result(fn())
                        except BaseException as exc:  # handed to its caller; the loop lives on
                            future.set_exception(exc)
                self._retire()  # what the last step finished, and what nobody waits for any more
                self._admit()
                self._retire(ask=False)  # rows that ended at their first token
                if self._rows:
                    self._guarded_step()

    def _shut_down(self, calls: list[tuple[Callable[[], Any], Future[Any]]]) -> None:
        closed = ModelUnavailable("the server is shutting down; retry in a moment")
        for _, future in calls:
            future.set_exception(closed)
        with self._cond:
            waiting = list(self._waiting)
            self._waiting.clear()
        for req in waiting:
            req.future.set_exception(closed)
        for req in self._active():
            req.stopped = True
        self._retire()

    def _active(self) -> list[LoopRequest]:
        """The requests with rows in the batch, in admission order."""
        return list(dict.fromkeys(row.request for row in self._rows))

    def _admit(self) -> None:
        """Prefill waiting requests, oldest first, while they fit the budget; drop those nobody wants."""
        while True:
            with self._cond:
                if not self._waiting:
                    return
                req = self._waiting[0]
                unwanted = req.unwanted()
                if not unwanted and not self._fits(req):
                    return  # first come, first served: a big request is not overtaken for ever
                self._waiting.popleft()
            if unwanted:  # never started: no prefill
                self.stats.stopped += 1
                req.stopped = True
                req.answer()
                continue
            try:
                self._prefill(req)
            except BaseException as exc:  # this request's prompt failed; the batch goes on
                req.future.set_exception(exc)
                continue
            self.stats.admitted += 1

    def _fits(self, req: LoopRequest) -> bool:
        if not self._rows:
            return True  # alone, anything runs: a request over the budget is not refused for ever
        rows = len(self._rows) + len(req.rows)
        span = max([req.span, *(r.span for r in self._active())])
        return rows <= self.max_rows and rows * span <= self.max_positions

    def _prefill(self, req: LoopRequest) -> None:
        """Run the request's prompts through the model once, choose every row's first token, and join."""
        from transformers import DynamicCache

        torch = self._torch
        width = max(map(len, req.prompts))
        ids = torch.tensor([[self._pad] * (width - len(p)) + p for p in req.prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in req.prompts], device=self.device)
        n = req.samples
        if not req.shared_prefill:
            ids, mask = ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_kw: cache},
            **self._last_logits,
        )
        logits = out.logits[:, -1, :]
        if req.shared_prefill and n > 1:
            cache.batch_repeat_interleave(n)
            logits, mask = logits.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
        if req.params.temperature > 0.0:
            req.generator = torch.Generator(device=self.device)
            if req.params.seed is None:
                req.generator.seed()
            else:
                req.generator.manual_seed(req.params.seed)
        tokens = self._choose(logits, req.rows)
        self._join(cache, mask, mask.sum(-1), tokens, req.rows)

    def _join(self, cache: Any, mask: Any, pos: Any, tokens: Any, rows: list[Row]) -> None:
        """Add rows to the running batch, left-padding whichever side is shorter so that all rows end together."""
        torch = self._torch
        if not self._rows:
            self._cache, self._mask, self._pos, self._next, self._rows = cache, mask, pos, tokens, list(rows)
            return
        grow = mask.shape[1] - self._mask.shape[1]
        old, new = (grow, 0) if grow > 0 else (0, -grow)
        pad = torch.nn.functional.pad
        for a, b in zip(self._cache.layers, cache.layers, strict=True):
            a.keys = torch.cat([pad(a.keys, (0, 0, old, 0)), pad(b.keys, (0, 0, new, 0))])
            a.values = torch.cat([pad(a.values, (0, 0, old, 0)), pad(b.values, (0, 0, new, 0))])
        self._mask = torch.cat([pad(self._mask, (old, 0)), pad(mask, (new, 0))])
        self._pos = torch.cat([self._pos, pos])
        self._next = torch.cat([self._next, tokens])
        self._rows.extend(rows)

    def _retire(self, ask: bool = True) -> None:
        """Answer the requests that are done (``ask``: stop those nobody wants), and drop finished rows from the
        batch once enough are finished, or when others wait to be admitted: dropping copies the whole KV cache,
        so it is done for many rows at once rather than for each row as it ends."""
        if ask:
            for req in self._active():
                if not req.done and req.unwanted():
                    req.stopped = True
                    self.stats.stopped += 1
        for req in self._active():
            if req.done and not req.answered:
                req.answered = True
                self.stats.answered += 1
                req.answer()
        keep = [i for i, row in enumerate(self._rows) if row.finish is None and not row.request.stopped]
        finished = len(self._rows) - len(keep)
        if finished and (not keep or self._waiting or finished >= self.compact_at * len(self._rows)):
            self.stats.looped_rows += sum(row.finish == "loop" for row in self._rows)
            self.stats.compactions += 1
            self._select(keep)

    def _select(self, keep: list[int]) -> None:
        """Keep only the rows ``keep`` of the batch, then cut the positions that are padding in every row."""
        if not keep:
            self._rows, self._cache, self._mask, self._pos, self._next = [], None, None, None, None
            return
        torch = self._torch
        index = torch.tensor(keep, device=self.device)
        self._cache.batch_select_indices(index)
        self._mask, self._pos, self._next = self._mask[index], self._pos[index], self._next[index]
        self._rows = [self._rows[i] for i in keep]
        first = int(self._mask.any(dim=0).nonzero()[0])
        if first > 0:
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self._mask = self._mask[:, first:]

    def _guarded_step(self) -> None:
        try:
            self._step()
        except BaseException as exc:  # the batch is lost; its requests hear why, and the loop goes on
            log.exception("decoding step failed")
            for req in self._active():
                req.future.set_exception(exc)
            self._select([])

    def _step(self) -> None:
        """Feed every row its chosen token and choose the next one."""
        torch = self._torch
        rows = len(self._rows)
        mask = torch.cat([self._mask, self._mask.new_ones(rows, 1)], dim=1)
        self.stats.steps += 1
        self.stats.peak_rows = max(self.stats.peak_rows, rows)
        self.stats.peak_positions = max(self.stats.peak_positions, rows * mask.shape[1])
        out = self.model(
            input_ids=self._next[:, None],
            attention_mask=mask,
            position_ids=self._pos[:, None],
            use_cache=True,
            **{self._cache_kw: self._cache},
        )
        self._mask, self._pos = mask, self._pos + 1
        self._next = self._choose(out.logits[:, -1, :], self._rows)

    def _choose(self, logits: Any, rows: list[Row]) -> Any:
        """Each row's next token (greedy, or sampled at its request's temperature), recorded with its log-probability.

        The log-probability is of the raw logits, so scores do not depend on the temperature.
        """
        torch = self._torch
        logits = logits.float()
        chosen = logits.argmax(dim=-1)
        sampled = [i for i, row in enumerate(rows) if row.request.params.temperature > 0.0]
        if sampled:
            draws = torch.empty(len(sampled), device=self.device)
            temps = torch.empty(len(sampled), 1, device=self.device)
            by_request: dict[LoopRequest, list[int]] = {}
            for k, i in enumerate(sampled):
                by_request.setdefault(rows[i].request, []).append(k)
            for req, ks in by_request.items():
                # One draw per row of the request, every step: a row's draws do not depend on which others live.
                mine = torch.rand(len(req.rows), generator=req.generator, device=self.device)
                draws[ks] = mine[[rows[sampled[k]].index for k in ks]]
                temps[ks] = req.params.temperature
            index = torch.tensor(sampled, device=self.device)
            cdf = torch.softmax(logits[index] / temps, dim=-1).cumsum(dim=-1)
            picked = torch.searchsorted(cdf, (draws * cdf[:, -1])[:, None], right=True).squeeze(1)
            chosen[index] = picked.clamp(max=logits.shape[-1] - 1)
        logprobs = torch.log_softmax(logits, dim=-1).gather(1, chosen[:, None]).squeeze(1)
        for row, token, logprob in zip(rows, chosen.tolist(), logprobs.tolist(), strict=True):
            if row.finish is None and not row.request.stopped:  # a finished row waits to be dropped: untouched
                row.push(token, logprob, self._decode)
        return chosen
