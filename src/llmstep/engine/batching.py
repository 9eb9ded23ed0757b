"""Dynamic batching: requests that arrive together share one backend call.

One worker thread owns the backend. It takes the oldest waiting job, waits at
most ``window_s`` for others with the same decoding parameters, and generates
for all of them at once. Jobs that arrive while a batch is running queue up and
go together in the next one, so under load the batch grows by itself, and a
lone job waits at most the window. A seeded request is batched only with its
own prompts: a backend seeds once per call, so its samples would otherwise
depend on whoever shared the batch.

A backend that runs concurrent calls itself (``Backend.schedules_rows``: hf
sampling shares decoding steps between them, ct2 decodes on parallel workers)
gets each request as it comes instead, one call per request on a thread of its
own: merging whole requests here would only make each wait for the slowest. An
:class:`~llmstep.backends.base.AsyncBackend` (the openai upstream, vLLM) is
awaited on the caller's event loop, one call per request, with no thread at all.

Callers await their jobs on the event loop; the worker never blocks it. A
caller that stops waiting (its client left, its deadline passed) cancels its
jobs: one not yet started is dropped from its batch, and a running batch is
told to stop (``should_stop``) once none of its jobs is wanted. ``close``
fails what is queued, stops what runs and joins the worker, so that the
backend is never called after it returns.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from llmstep.backends.base import AsyncBackend, Backend, Candidate, GenerationParams
from llmstep.errors import ModelUnavailable
from llmstep.protocol.prompt import Prompt

__all__ = ["DIRECT_THREADS", "BatchStats", "Batcher"]

log = logging.getLogger(__name__)

#: Requests in a row-scheduling backend at once, each waiting on a thread of its own; more wait
#: here (and are dropped if their caller leaves first). The server lets 64 in by default.
DIRECT_THREADS = 64


@dataclass
class BatchStats:
    """What the batcher has done, for /health and for tests that batching and cancelling happened."""

    batches: int = 0
    requests: int = 0
    largest_batch: int = 0
    #: Jobs whose caller stopped waiting before the answer (disconnect, deadline).
    cancelled: int = 0
    #: Of those, jobs not started yet: dropped from their batch, never generated.
    dropped: int = 0
    #: Jobs whose running generation the backend was told to stop (nobody in the batch was waiting).
    stopped: int = 0


@dataclass
class _Job:
    prompt: Prompt
    params: GenerationParams
    #: The submission the job came in: a seeded job shares a batch only with its own request's prompts.
    request: int
    future: Future[list[Candidate]] = field(default_factory=Future)
    #: Set when nobody waits for this job any more; the worker and the backend poll it.
    unwanted: threading.Event = field(default_factory=threading.Event)


def _batchable(first: _Job, other: _Job) -> bool:
    """Whether ``other`` may join ``first``'s batch: the same parameters and, for a seeded request, the same
    request. Backends that batch seed once per call, so a seeded answer must not depend on its batch-mates."""
    return other.params == first.params and (first.params.seed is None or other.request == first.request)


class _Stopped(Exception):
    """The answer of a job whose generation was stopped early; its caller has already gone."""


_STOP = object()


class Batcher:
    """Runs a backend on a worker thread, merging concurrent requests into batches, or passes each request
    straight to a backend that schedules rows itself."""

    def __init__(self, backend: Backend, window_s: float = 0.005, max_batch_size: int = 8) -> None:
        self.backend = backend
        self.window_s = window_s
        self.max_batch_size = max(1, max_batch_size)
        self.stats = BatchStats()
        self._stats_lock = threading.Lock()  # the worker and the event loop both count
        self._queue: queue.Queue[_Job | object] = queue.Queue()
        self._held: deque[_Job] = deque()  # taken from the queue but not batchable with the current job
        self._pending = 0  # submitted and not yet answered
        self._requests = itertools.count()  # numbers submissions (next() is atomic in CPython)
        self._closing = threading.Event()
        self._submit_lock = threading.Lock()  # orders submissions before the worker's stop mark
        self._worker = threading.Thread(target=self._run, name="llmstep-batcher", daemon=True)
        self._worker.start()
        self._direct = ThreadPoolExecutor(max_workers=DIRECT_THREADS, thread_name_prefix="llmstep-request")

    async def submit_many(self, prompts: list[Prompt], params: GenerationParams) -> list[list[Candidate]]:
        """Candidates for each of ``prompts``, queued together so that they can share a batch.

        Cancelling the caller cancels its jobs; ModelUnavailable once the batcher is closing.
        """
        if isinstance(self.backend, AsyncBackend):
            return await self._await_backend(self.backend, prompts, params)
        request = next(self._requests)
        jobs = [_Job(prompt, params, request) for prompt in prompts]
        direct = self.backend.schedules_rows(params)
        with self._submit_lock:
            if self._closing.is_set():
                raise ModelUnavailable("the server is shutting down; retry in a moment")
            with self._stats_lock:
                self._pending += len(jobs)
            for job in jobs:
                job.future.add_done_callback(self._answered)
                if not direct:
                    self._queue.put(job)
            if direct:  # the request's prompts go together, as the batcher would send them
                self._direct.submit(self._execute, jobs)
        try:
            return [await asyncio.wrap_future(job.future) for job in jobs]
        finally:
            for job in jobs:
                self._cancel(job)

    async def _await_backend(
        self, backend: AsyncBackend, prompts: list[Prompt], params: GenerationParams
    ) -> list[list[Candidate]]:
        """One awaited call for one request's prompts; cancelling the caller cancels it (counted as stopped)."""
        if self._closing.is_set():
            raise ModelUnavailable("the server is shutting down; retry in a moment")
        self._count_call(1)
        with self._stats_lock:
            self._pending += 1
        try:
            return await backend.generate_async(prompts, params)
        except asyncio.CancelledError:
            with self._stats_lock:
                self.stats.cancelled += 1
                self.stats.stopped += 1
            raise
        finally:
            with self._stats_lock:
                self._pending -= 1

    def _cancel(self, job: _Job) -> None:
        """Mark ``job`` unwanted; dropped if it has not started. A no-op on an answered job."""
        if job.future.done() and not job.future.cancelled():
            return
        job.unwanted.set()
        # Cancelling succeeds only while the job waits for its batch; asyncio may already have
        # done it, passing on the cancellation of the awaiting task.
        dropped = job.future.cancelled() or job.future.cancel()
        with self._stats_lock:
            self.stats.cancelled += 1
            self.stats.dropped += dropped

    def _count_call(self, requests: int) -> None:
        """Count one backend call serving ``requests`` jobs (or one awaited request)."""
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.requests += requests
            self.stats.largest_batch = max(self.stats.largest_batch, requests)

    def _answered(self, _: Future[list[Candidate]]) -> None:
        with self._stats_lock:
            self._pending -= 1

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet answered: the engine's queue depth."""
        return self._pending

    def close(self) -> None:
        """Fail the queued jobs, stop the running ones, and wait for the worker and the request threads to end.

        Blocks until the backend's current calls return; afterwards the batcher never calls it again.
        """
        with self._submit_lock:
            if not self._closing.is_set():
                self._closing.set()
                self._queue.put(_STOP)
        self._worker.join()
        self._direct.shutdown(wait=True)

    def _next(self, timeout: float | None) -> _Job | object | None:
        if self._held:
            return self._held.popleft()
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _run(self) -> None:
        while True:
            first = self._next(timeout=None)
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            batch = [first]
            deadline = time.monotonic() + self.window_s
            skipped: list[_Job] = []
            stop_after = False
            while len(batch) < self.max_batch_size:
                item = self._next(timeout=deadline - time.monotonic())
                if item is None:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                assert isinstance(item, _Job)
                (batch if _batchable(first, item) else skipped).append(item)
            self._held.extend(skipped)
            self._execute(batch)
            if stop_after:
                break
        while self._held:  # jobs skipped for other parameters, left when the stop mark came
            self._execute([self._held.popleft()])

    def _execute(self, batch: list[_Job]) -> None:
        if self._closing.is_set():
            for job in batch:
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(ModelUnavailable("the server is shutting down; retry in a moment"))
            return
        live = [job for job in batch if not job.unwanted.is_set() and job.future.set_running_or_notify_cancel()]
        if not live:
            return
        self._count_call(len(live))
        stopped = False

        def should_stop() -> bool:
            nonlocal stopped
            if not stopped and (self._closing.is_set() or all(job.unwanted.is_set() for job in live)):
                stopped = True  # counted once, before the backend hears it
                with self._stats_lock:
                    self.stats.stopped += len(live)
            return stopped

        try:
            results = self.backend.generate([job.prompt for job in live], live[0].params, should_stop=should_stop)
            if not stopped and len(results) != len(live):
                raise RuntimeError(f"the backend answered {len(results)} prompts of {len(live)}")
        except BaseException as exc:  # handed to every waiting caller; the worker lives on
            for job in live:
                job.future.set_exception(exc)
            return
        if stopped:  # a stopped answer is partial: never hand it on (it would be cached)
            closing = self._closing.is_set()
            for job in live:
                why = "the server is shutting down; retry in a moment" if closing else "cancelled"
                job.future.set_exception(ModelUnavailable(why) if closing else _Stopped(why))
            return
        for job, result in zip(live, results, strict=True):
            job.future.set_result(result)
