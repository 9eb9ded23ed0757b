"""Requests per second with 1, 8 and 32 concurrent clients: ``llmstep serve`` against the baseline server.

    python benchmarks/throughput.py [--seconds 15]

Both servers run as their own processes on the same model: ours with the
transformers backend, dynamic batching and the cache off (every request is
generated), the baseline generating and serving the way the original llmstep
server does (baseline.py). Clients cycle through llmstep's 17 runtime cases.
Writes results/throughput.json.
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time

import httpx

from common import (
    baseline_serve,
    bench_model,
    llmstep_serve,
    machine,
    parameter_count,
    runtime_cases,
    server_process,
    write_results,
)

CONCURRENCY = (1, 8, 32)


def measure(url: str, cases: list[dict[str, str]], clients: int, seconds: float) -> dict[str, float]:
    """Run ``clients`` threads posting back to back for ``seconds``; requests per second and failures."""
    counter = itertools.count()
    done = failed = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        nonlocal done, failed
        with httpx.Client(timeout=300) as http:
            while time.monotonic() < stop_at:
                case = cases[next(counter) % len(cases)]
                try:
                    r = http.post(url + "/", json={"tactic_state": case["tactic_state"], "prefix": case["prefix"]})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    done += ok
                    failed += not ok

    start = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start  # includes the requests still running at the deadline
    return {"requests": done, "failed": failed, "seconds": elapsed, "rps": done / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per concurrency level and server")
    args = parser.parse_args()
    cases = runtime_cases()
    model_dir = bench_model()
    ours_cmd = llmstep_serve(model_dir, "--cache-size", "0")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, command in [("baseline", baseline_serve(model_dir)), ("ours", ours_cmd)]:
        with server_process(command) as (url, _):
            measure(url, cases, 1, 2.0)  # warm-up
            results[name] = {str(c): measure(url, cases, c, args.seconds) for c in CONCURRENCY}
    print(f"model: {model_dir.name}, {parameter_count(model_dir) / 1e6:.1f}M parameters; {args.seconds:g} s per cell")
    print(f"{'clients':>8} {'baseline rps':>13} {'ours rps':>9} {'ours/baseline':>14} {'failures':>9}")
    for c in CONCURRENCY:
        b, o = results["baseline"][str(c)], results["ours"][str(c)]
        o["speedup_vs_baseline"] = o["rps"] / b["rps"]
        print(f"{c:8} {b['rps']:13.2f} {o['rps']:9.2f} {o['speedup_vs_baseline']:13.2f}x {b['failed'] + o['failed']:9}")
    write_results(
        "throughput",
        {
            "what": "requests per second, clients posting back to back; our cache off",
            "model": model_dir.name,
            "parameters": parameter_count(model_dir),
            "machine": machine(),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
