"""Running a ``Suggester`` over examples and recording what happened to each one.

A request that fails is recorded as a failure (its error code and message),
never dropped. The run stops early, marked partial, when failures pass the
allowed fraction or on Ctrl-C; turning the results into numbers and files is
``report``'s job.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmstep.errors import LLMStepError, error_class_for_code
from llmstep.evaluate.examples import Example
from llmstep.evaluate.metrics import goal_length_bucket, match_rank, tactic_head
from llmstep.evaluate.suggesters import Suggester

__all__ = ["MIN_REQUESTS_BEFORE_RATE_CHECK", "EvalRun", "ExampleResult", "run_eval"]

#: Below this many requests a burst of failures does not stop the run on its own (see ``_should_stop``).
MIN_REQUESTS_BEFORE_RATE_CHECK = 20


@dataclass(frozen=True)
class ExampleResult:
    """What one request returned, or why it failed."""

    where: str
    reference: str
    head: str
    goal_bucket: str
    state_chars: int
    suggestions: tuple[str, ...] = ()
    latency_s: float | None = None  # None for a failed request
    exact_rank: int | None = None  # 1-based rank of the first exact match
    loose_rank: int | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def failed(self) -> bool:
        return self.error_code is not None


@dataclass
class EvalRun:
    """The results so far, and whether (and why) the run stopped before the end."""

    planned: int
    results: list[ExampleResult] = field(default_factory=list)
    partial_reason: str | None = None
    #: Set when too many requests failed: the error the CLI raises after writing the report.
    abort_error: LLMStepError | None = None
    interrupted: bool = False

    @property
    def partial(self) -> bool:
        return self.partial_reason is not None

    @property
    def failures(self) -> int:
        return sum(r.failed for r in self.results)


def _should_stop(failed: int, attempted: int, planned: int, max_failure_rate: float) -> bool:
    """Whether failures are past the allowed fraction.

    Two rules: once failures exceed the fraction of the *whole* run, the final
    rate cannot get back under it; and once enough requests were made, a
    running rate above it stops the run without waiting for every request of
    a server that is down to time out.
    """
    if failed > max_failure_rate * planned:
        return True
    return attempted >= MIN_REQUESTS_BEFORE_RATE_CHECK and failed > max_failure_rate * attempted


def _abort_error(run: EvalRun, max_failure_rate: float) -> LLMStepError:
    """The error that explains the stop, of the class of the most common failure (so its exit code)."""
    failed = [r for r in run.results if r.failed]
    code, _ = Counter(r.error_code for r in failed).most_common(1)[0]
    attempted = len(run.results)
    return error_class_for_code(code or "internal")(
        f"stopped after {len(failed)} of {attempted} requests failed "
        f"({len(failed) / attempted:.0%} > --max-failure-rate {max_failure_rate:g}); "
        f"last error: {failed[-1].error_message}"
    )


def _evaluate_one(example: Example, suggester: Suggester, clock: Callable[[], float]) -> ExampleResult:
    common = {
        "where": example.where,
        "reference": example.reference,
        "head": tactic_head(example.reference),
        "goal_bucket": goal_length_bucket(example.state),
        "state_chars": len(example.state),
    }
    start = clock()
    try:
        suggestions = tuple(suggester.suggest(example.state, example.context))
    except LLMStepError as exc:
        return ExampleResult(**common, error_code=exc.code, error_message=exc.message)
    latency_s = clock() - start
    return ExampleResult(
        **common,
        suggestions=suggestions,
        latency_s=latency_s,
        exact_rank=match_rank(example.reference, suggestions),
        loose_rank=match_rank(example.reference, suggestions, loose=True),
    )


def run_eval(
    examples: Sequence[Example],
    suggester: Suggester,
    *,
    max_failure_rate: float = 0.2,
    progress: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> EvalRun:
    """Ask ``suggester`` about every example in order; returns even when stopped early.

    Ctrl-C ends the run with ``interrupted`` set; too many failures end it with
    ``abort_error`` set. Either way ``partial_reason`` says why and the results
    so far are kept. ``clock`` (seconds) times each request.
    """
    from tqdm import tqdm

    run = EvalRun(planned=len(examples))
    hits = 0
    with tqdm(total=len(examples), unit="req", desc="eval", disable=not progress) as bar:
        try:
            for example in examples:
                result = _evaluate_one(example, suggester, clock)
                run.results.append(result)
                hits += result.exact_rank == 1
                bar.update(1)
                bar.set_postfix(exact_at_1=f"{hits / len(run.results):.3f}", failed=run.failures, refresh=False)
                if result.failed and _should_stop(run.failures, len(run.results), run.planned, max_failure_rate):
                    run.abort_error = _abort_error(run, max_failure_rate)
                    run.partial_reason = f"too many failed requests: {run.abort_error.message}"
                    break
        except KeyboardInterrupt:
            run.interrupted = True
            run.partial_reason = f"interrupted (Ctrl-C) after {len(run.results)} of {run.planned} examples"
    return run
