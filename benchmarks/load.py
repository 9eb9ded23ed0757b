"""32 concurrent clients for 60 s against a real ``llmstep serve``: requests, failures, latency, memory.

    python benchmarks/load.py [--clients 32] [--seconds 60]

The server runs the benchmark model in its own process with the cache off, so
every request is generated (the worst case; proof search sends many distinct
states). Clients post llmstep's 17 runtime cases back to back. A 15 s warm-up
under the same load comes first, so that full-size batches have been
allocated before memory is read. Goals: zero failures, and a resident memory
that stays flat from the start of the measured run to its end. Writes results/load.json.
"""

from __future__ import annotations

import argparse
import itertools
import threading
import time

import httpx

from common import bench_model, llmstep_serve, machine, rss_mb, runtime_cases, server_process, summary, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    cases = runtime_cases()
    counter = itertools.count()
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    rss: list[float] = []  # the server's resident memory every 5 s of the measured run, MB
    command = llmstep_serve(bench_model(), "--cache-size", "0")
    with server_process(command) as (url, pid):

        def run_clients(seconds: float, record: bool) -> None:
            stop_at = time.monotonic() + seconds

            def client() -> None:
                with httpx.Client(timeout=300) as http:
                    while time.monotonic() < stop_at:
                        case = cases[next(counter) % len(cases)]
                        body = {"tactic_state": case["tactic_state"], "prefix": case["prefix"]}
                        start = time.perf_counter()
                        try:
                            r = http.post(url + "/v1/suggest", json=body)
                            error = None if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:120]}"
                        except httpx.HTTPError as exc:
                            error = f"{type(exc).__name__}: {exc}"
                        if record:
                            with lock:
                                (failures.append(error) if error else latencies.append(time.perf_counter() - start))

            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                rss.append(round(rss_mb(pid), 1))
                time.sleep(5)
            for t in threads:
                t.join()

        # Warm up under the same load, so full-size batches have been allocated before the first reading.
        run_clients(15.0, record=False)
        rss.clear()
        rss_start = rss_mb(pid)
        run_clients(args.seconds, record=True)
        rss_end = rss_mb(pid)
        stats = httpx.get(url + "/health").json()["stats"]
    lat = summary(latencies)
    print(
        f"{args.clients} clients, {args.seconds:g} s: {len(latencies)} answered, {len(failures)} failed; "
        f"p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms; "
        f"server RSS {rss_start:.0f} MB -> {rss_end:.0f} MB; largest batch {stats['largest_batch']}"
    )
    for line in failures[:5]:
        print("  failure:", line)
    write_results(
        "load",
        {
            "what": f"{args.clients} concurrent clients for {args.seconds:g} s, cache off",
            "requests": len(latencies) + len(failures),
            "failures": len(failures),
            "latency": lat,
            "rss_mb_start": rss_start,
            "rss_mb_end": rss_end,
            "rss_mb_every_5s": rss,
            "server_stats": stats,
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
