"""Dynamic batching: requests that arrive together share one backend call.

One worker thread owns the backend. It takes the oldest waiting request,
waits at most ``window_s`` for others with the same decoding parameters,
and generates for all of them at once. Requests that arrive while a batch is
running queue up and go together in the next one, so under load the batch
grows by itself, and a lone request waits at most the window.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from llmstep.backends.base import Backend, Candidate, GenerationParams
from llmstep.errors import GenerationTimeout

__all__ = ["BatchStats", "Batcher"]

log = logging.getLogger(__name__)


@dataclass
class BatchStats:
    """What the batcher has done, for /health and for tests that batching happened."""

    batches: int = 0
    requests: int = 0
    largest_batch: int = 0


@dataclass
class _Job:
    prompt: str
    params: GenerationParams
    future: Future[list[Candidate]] = field(default_factory=Future)


_STOP = object()


class Batcher:
    """Runs a backend on a worker thread, merging concurrent requests into batches."""

    def __init__(self, backend: Backend, window_s: float = 0.005, max_batch_size: int = 8) -> None:
        self.backend = backend
        self.window_s = window_s
        self.max_batch_size = max(1, max_batch_size)
        self.stats = BatchStats()
        self._queue: queue.Queue[_Job | object] = queue.Queue()
        self._held: deque[_Job] = deque()  # taken from the queue but not batchable with the current job
        self._pending = 0  # submitted and not yet answered
        self._pending_lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="llmstep-batcher", daemon=True)
        self._worker.start()

    def submit(self, prompt: str, params: GenerationParams, timeout_s: float | None = None) -> list[Candidate]:
        """Candidates for ``prompt``; raises GenerationTimeout after ``timeout_s`` seconds."""
        return self.submit_many([prompt], params, timeout_s)[0]

    def submit_many(
        self, prompts: list[str], params: GenerationParams, timeout_s: float | None = None
    ) -> list[list[Candidate]]:
        """Candidates for each of ``prompts``, queued together so that they can share a batch."""
        jobs = [_Job(prompt, params) for prompt in prompts]
        with self._pending_lock:
            self._pending += len(jobs)
        for job in jobs:
            self._queue.put(job)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        try:
            return [job.future.result(timeout=left()) for job in jobs]
        except FutureTimeout:
            for job in jobs:
                job.future.cancel()  # dropped from its batch if it has not started
            raise GenerationTimeout(
                f"generation took longer than the {timeout_s:g} s deadline; try fewer samples or a shorter prefix"
            ) from None
        finally:
            with self._pending_lock:
                self._pending -= len(jobs)

    @property
    def pending(self) -> int:
        """Requests submitted and not yet answered: the engine's queue depth."""
        return self._pending

    def close(self) -> None:
        """Stop the worker after the batches already queued."""
        self._queue.put(_STOP)
        self._worker.join(timeout=60)

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
                return
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
                (batch if item.params == first.params else skipped).append(item)
            self._held.extend(skipped)
            self._execute(batch)
            if stop_after:
                return

    def _execute(self, batch: list[_Job]) -> None:
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        self.stats.batches += 1
        self.stats.requests += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        try:
            results = self.backend.generate([job.prompt for job in live], live[0].params)
        except BaseException as exc:  # handed to every waiting caller; the worker lives on
            for job in live:
                job.future.set_exception(exc)
            return
        for job, result in zip(live, results, strict=True):
            job.future.set_result(result)
