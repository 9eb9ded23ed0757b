"""Peak server memory with 8 clients at the request limits (64 samples of 1024 new tokens each).

    python benchmarks/memory.py [--clients 8] [--seconds 90]

What bounds it is the hf decoding loop's budget (``--max-batch-rows`` 64 and
``--max-batch-tokens`` 32768 KV positions) and the per-token scores (one float
per generated token, not a vocabulary row): requests past the budget wait
instead of adding rows. The server's resident memory is read from /proc every
second, idle first (the baseline, in the same run) and then under load. The
sampling temperature is high so that rows run long. Writes results/memory.json.
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from contextlib import suppress

import httpx

from common import bench_model, llmstep_serve, machine, rss_mb, runtime_cases, server_process, write_results

AT_LIMITS = {"num_samples": 64, "max_new_tokens": 1024, "temperature": 1.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=90.0)
    args = parser.parse_args()
    cases = runtime_cases()
    counter = itertools.count()
    answered = failed = 0
    lock = threading.Lock()
    command = llmstep_serve(bench_model(), "--cache-size", "0", "--request-timeout", "900")
    with server_process(command) as (url, pid):
        idle = rss_mb(pid)
        stop_at = time.monotonic() + args.seconds

        def client() -> None:
            nonlocal answered, failed
            with httpx.Client(timeout=900) as http:
                while time.monotonic() < stop_at:
                    i = next(counter)
                    case = cases[i % len(cases)]
                    body = {"tactic_state": case["tactic_state"] + " " * (1 + i), "prefix": case["prefix"], **AT_LIMITS}
                    ok = False
                    with suppress(httpx.HTTPError):  # the last ones are cut off when the server stops
                        ok = http.post(url + "/v1/suggest", json=body).status_code == 200
                    with lock:
                        answered += ok
                        failed += not ok

        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        for t in threads:
            t.start()
        readings = []
        while time.monotonic() < stop_at:
            readings.append(rss_mb(pid))
            time.sleep(1.0)
        stats = httpx.get(url + "/health").json()["stats"]
    peak = max(readings)
    print(f"{args.clients} clients at the limits ({AT_LIMITS}), {args.seconds:g} s: {answered} answered")
    print(f"server RSS: idle {idle:.0f} MB, peak {peak:.0f} MB under load ({peak / idle:.2f}x idle)")
    write_results(
        "memory",
        {
            "what": f"server RSS with {args.clients} clients posting requests at the limits",
            "request": AT_LIMITS,
            "answered": answered,
            "unanswered_at_the_end": failed,
            "rss_mb_idle": idle,
            "rss_mb_peak": peak,
            "rss_mb_every_1s": readings,
            "stats": stats,
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
