"""Latency of a cache hit and of ``GET /health`` while many slow requests are in flight.

    python benchmarks/busy.py [--in-flight 64] [--samples 200]

Lean sends the same ``llmstep`` call again on every re-elaboration, which the
cache answers, and liveness probes hit ``/health``: neither may wait behind
generation. The server runs the benchmark model in its own process; first both
cheap requests are timed on the idle server (the baseline, in the same run),
then again while ``--in-flight`` distinct slow requests (32 samples, 256 new
tokens each) are being generated or queued. Target (issue #16): p99 under 50 ms
for both while busy. Writes results/busy.json.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from contextlib import suppress

import httpx

from common import bench_model, llmstep_serve, machine, runtime_cases, server_process, write_results

SLOW = {"num_samples": 32, "max_new_tokens": 256, "temperature": 1.5}


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": 1000 * statistics.median(ordered), "p99_ms": 1000 * p99, "max_ms": 1000 * ordered[-1]}


def time_cheap(http: httpx.Client, hit: dict[str, str], samples: int) -> dict[str, dict[str, float]]:
    """Alternate a cache hit and ``/health``, ``samples`` of each; their latency percentiles."""
    times: dict[str, list[float]] = {"cache hit": [], "/health": []}
    for _ in range(samples):
        for name, send in (
            ("cache hit", lambda: http.post("/v1/suggest", json=hit)),
            ("/health", lambda: http.get("/health")),
        ):
            start = time.perf_counter()
            r = send()
            times[name].append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
            assert name != "cache hit" or r.json()["cached"], "the repeated request was not a cache hit"
    return {name: percentiles(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    cases = runtime_cases()
    command = llmstep_serve(bench_model(), "--max-in-flight", str(args.in_flight + 16), "--request-timeout", "900")
    with server_process(command) as (url, _), httpx.Client(base_url=url, timeout=60) as http:
        hit = {"tactic_state": cases[0]["tactic_state"], "prefix": cases[0]["prefix"]}
        assert http.post("/v1/suggest", json=hit).status_code == 200  # fills the cache
        idle = time_cheap(http, hit, args.samples)

        def slow(i: int) -> None:
            case = cases[i % len(cases)]
            body = {"tactic_state": case["tactic_state"] + " " * (1 + i), "prefix": case["prefix"], **SLOW}
            with suppress(httpx.HTTPError):  # cut off when the server stops at the end of the run, as expected
                httpx.post(url + "/v1/suggest", json=body, timeout=900)

        for i in range(args.in_flight):
            threading.Thread(target=slow, args=(i,), daemon=True).start()
        deadline = time.monotonic() + 120
        while http.get("/health").json()["stats"]["queue_depth"] < args.in_flight:
            assert time.monotonic() < deadline, "the slow requests never all reached the engine"
        busy = time_cheap(http, hit, args.samples)
        still = http.get("/health").json()["stats"]["queue_depth"]
    print(f"{args.in_flight} slow requests in flight ({still} still unanswered after the busy timing)")
    header = ("idle p50", "idle p99", "busy p50", "busy p99", "busy max")
    print(f"{'':10} " + " ".join(f"{h:>9}" for h in header) + "  target: busy p99 < 50 ms")
    for name in idle:
        i, b = idle[name], busy[name]
        cells = (i["p50_ms"], i["p99_ms"], b["p50_ms"], b["p99_ms"], b["max_ms"])
        met = "met" if b["p99_ms"] < 50 else "MISSED"
        print(f"{name:10} " + " ".join(f"{c:9.1f}" for c in cells) + f"  {met}")
    write_results(
        "busy",
        {
            "what": "latency of a cache hit and GET /health, idle and with slow requests in flight",
            "in_flight": args.in_flight,
            "unanswered_after_timing": still,
            "slow_request": SLOW,
            "machine": machine(),
            "idle": idle,
            "busy": busy,
        },
    )


if __name__ == "__main__":
    main()
