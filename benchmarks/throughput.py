"""Requests per second with 1, 2, 4, 8 and 32 concurrent clients: ``llmstep serve`` (hf, ct2) and the baseline.

    python benchmarks/throughput.py [--rounds 2] [--repeats 3] [--backends hf,ct2] [--model small|realistic]

Every server runs as its own process on the same model, with its defaults (10 samples at T=0.5, the
cache on): ours on the transformers backend and on CTranslate2 int8, the baseline generating and
serving the way the original llmstep server does (baseline.py). The workload is fixed: llmstep's 17
runtime cases, each twice per round with a different number of trailing spaces, so that no request
repeats and the cache never answers (issue #16 measured it so). Clients take the next request as
soon as they have an answer; a cell's figure is requests answered over the time to answer them all.
Our servers visit every level ``--repeats`` times, in a rotated order each time (1, 2, 4, 8, 32, then
2, 4, 8, 32, 1, ...), so that drifts of the machine fall on every level alike; a level's figure is
the median of its repeats. Ratios: against the baseline at the same number of clients, and against
our own 1-client median. Writes results/throughput.json.

``--model realistic`` serves the fine-tuned SmolLM2-135M that ``realistic.py`` makes (its
``finetuned`` and ``ct2-int8`` folders, which must exist) and writes results/throughput-realistic.json.
There the baseline is measured at one client only: it serves one request at a time whatever the
clients (the small model's table shows it), and each of its requests takes seconds.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from common import (
    CACHE,
    baseline_serve,
    bench_model,
    ct2_model,
    llmstep_serve,
    machine,
    parameter_count,
    runtime_cases,
    server_process,
    write_results,
)

CONCURRENCY = (1, 2, 4, 8, 32)


def workload(cases: list[dict[str, str]], rounds: int, visit: int) -> list[dict[str, str]]:
    """Each case twice per round, salted with trailing spaces: distinct across rounds and visits, no cache hits."""
    salts = range(2 * rounds * visit, 2 * rounds * (visit + 1))
    return [{"tactic_state": c["tactic_state"] + " " * salt, "prefix": c["prefix"]} for salt in salts for c in cases]


def measure(url: str, requests: list[dict[str, str]], clients: int) -> dict[str, float]:
    """``clients`` threads posting ``requests`` back to back until none is left; requests per second."""
    todo: queue.SimpleQueue[dict[str, str]] = queue.SimpleQueue()
    for body in requests:
        todo.put(body)
    done = failed = 0
    lock = threading.Lock()

    def client() -> None:
        nonlocal done, failed
        with httpx.Client(timeout=600) as http:
            while True:
                try:
                    body = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    ok = http.post(url + "/", json=body).status_code == 200
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
    elapsed = time.monotonic() - start
    return {"requests": done, "failed": failed, "seconds": elapsed, "rps": done / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="passes over the cases (each twice) for our servers")
    parser.add_argument("--repeats", type=int, default=3, help="visits of every level, rotated, for our servers")
    parser.add_argument("--backends", default="hf,ct2", help="our backends to measure, comma-separated")
    parser.add_argument("--model", choices=("small", "realistic"), default="small", help="which model to serve")
    args = parser.parse_args()
    cases = runtime_cases()
    if args.model == "realistic":
        model_dir = CACHE / "realistic" / "finetuned"
        converted: Path | None = CACHE / "realistic" / "ct2-int8"
        if not (model_dir / "config.json").is_file() or not (converted / "model.bin").is_file():
            sys.exit("benchmark skipped: run benchmarks/realistic.py first (it makes the fine-tuned model)")
        baseline_levels: tuple[int, ...] = (1,)
    else:
        model_dir = bench_model()
        converted = ct2_model(model_dir)
        baseline_levels = CONCURRENCY
    servers = {"baseline": baseline_serve(model_dir)}
    for backend in args.backends.split(","):
        model = model_dir if backend == "hf" else converted
        if model is None:
            print(f"skipping {backend}: ctranslate2 is not installed")
            continue
        servers[backend] = llmstep_serve(model, "--backend", backend)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, command in servers.items():
        # The baseline serves one request at a time, whatever the clients: one visit of one round shows it.
        rounds, repeats = (1, 1) if name == "baseline" else (args.rounds, args.repeats)
        levels = baseline_levels if name == "baseline" else CONCURRENCY
        with server_process(command) as (url, _):
            warm_up = [{"tactic_state": c["tactic_state"] + "\t", "prefix": c["prefix"]} for c in cases[:4]]
            measure(url, warm_up, 1)
            visits: dict[int, list[dict[str, float]]] = {c: [] for c in levels}
            for repeat in range(repeats):
                for k in range(len(levels)):
                    level = (k + repeat) % len(levels)
                    visit = repeat * len(levels) + level
                    visits[levels[level]].append(measure(url, workload(cases, rounds, visit), levels[level]))
            results[name] = {
                str(c): {
                    "rps": statistics.median(v["rps"] for v in cells),
                    "runs_rps": [round(v["rps"], 3) for v in cells],
                    "requests": sum(v["requests"] for v in cells),
                    "failed": sum(v["failed"] for v in cells),
                }
                for c, cells in visits.items()
            }
    size = parameter_count(model_dir) / 1e6
    print(f"model: {model_dir.name}, {size:.1f}M parameters; server defaults, no cache hits")
    ours = [name for name in results if name != "baseline"]
    print(f"{'clients':>8} {'baseline':>9}" + "".join(f" {n + ' rps':>9} {'÷base':>6} {'÷1 client':>9}" for n in ours))
    for c in CONCURRENCY:
        # A baseline measured at one client only stands for every level (it serves one request at a time).
        b = results["baseline"].get(str(c), results["baseline"]["1"])
        line = f"{c:8} {b['rps']:9.2f}"
        for name in ours:
            o = results[name][str(c)]
            o["vs_baseline"] = o["rps"] / b["rps"]
            o["vs_one_client"] = o["rps"] / results[name]["1"]["rps"]
            line += f" {o['rps']:9.2f} {o['vs_baseline']:5.2f}x {o['vs_one_client']:8.2f}x"
        print(line)
    for name in ours:
        print(
            f"{name} runs (rps per visit): "
            + "; ".join(f"{c}: {results[name][str(c)]['runs_rps']}" for c in CONCURRENCY)
        )
    failures = sum(cell["failed"] for per in results.values() for cell in per.values())
    print(f"failures: {failures}")
    write_results(
        "throughput" if args.model == "small" else "throughput-realistic",
        {
            "what": "requests per second (median of the visits), clients posting a fixed salted workload back to "
            "back; server defaults",
            "model": model_dir.name,
            "parameters": parameter_count(model_dir),
            "machine": machine(),
            "baseline_levels": list(baseline_levels),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
