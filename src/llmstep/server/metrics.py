"""Request accounting: one access-log line per request, and Prometheus metrics.

Each app gets its own registry, so several servers in one process (tests,
benchmarks) never share counters. Route labels are the known routes only;
anything else is counted as ``other``, so a scan of random paths cannot
grow the label set without bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["AccessLogMiddleware", "Metrics"]

log = logging.getLogger("llmstep.server")

KNOWN_ROUTES = frozenset({"/", "/v1/suggest", "/generate", "/v1/completions", "/health", "/metrics"})
# Seconds; step suggestion lives between a cache hit (ms) and a slow CPU model (tens of s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Gauge name → (help, key in the engine's stats); read when /metrics is scraped.
ENGINE_GAUGES = {
    "llmstep_queue_depth": ("Requests waiting for or in generation", "queue_depth"),
    "llmstep_cache_hits": ("Answers served from the cache", "cache_hits"),
    "llmstep_cache_misses": ("Answers that needed the model", "cache_misses"),
    "llmstep_joined_in_flight": ("Requests answered by an identical request's generation", "joined_in_flight"),
    "llmstep_batches": ("Backend calls made", "batches"),
    "llmstep_jobs_cancelled": ("Jobs whose client left or whose deadline passed before the answer", "jobs_cancelled"),
    "llmstep_jobs_dropped": ("Cancelled jobs dropped from their batch before generating", "jobs_dropped"),
    "llmstep_jobs_stopped": ("Jobs whose generation was stopped early: nobody waited for it", "jobs_stopped"),
    "llmstep_dropped_samples": ("Samples cut by the loop guard (repeating themselves)", "dropped_samples"),
}


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self, stats: Callable[[], dict[str, int]], in_flight: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "llmstep_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.errors = Counter("llmstep_errors", "Error answers by code", ["code"], registry=self.registry)
        self.latency = Histogram(
            "llmstep_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        Gauge("llmstep_in_flight", "Requests being answered", registry=self.registry).set_function(in_flight)
        for name, (doc, key) in ENGINE_GAUGES.items():
            Gauge(name, doc, registry=self.registry).set_function(lambda key=key: stats().get(key, 0))

    def observe(self, path: str, status: int, seconds: float, error_code: str | None) -> None:
        """Count one answered request."""
        route = path if path in KNOWN_ROUTES else "other"
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)
        if error_code is not None:
            self.errors.labels(code=error_code).inc()


class AccessLogMiddleware:
    """One log line per request (method, path, status, suggestions, time), and its metrics."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        state = scope.setdefault("state", {})

        async def send_and_watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            elapsed = time.perf_counter() - start
            code = state.get("error_code")
            self.metrics.observe(scope["path"], status, elapsed, code)
            n = state.get("n_suggestions")
            extra = f" {n} suggestions" if n is not None else f" {code}" if code else ""
            log.info("%s %s %d%s %.1f ms", scope["method"], scope["path"], status, extra, elapsed * 1000)
