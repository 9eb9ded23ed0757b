"""What the HTTP server adds: a request's latency through ``llmstep serve`` ÷ the backend's bare call.

    python benchmarks/overhead.py [--rounds 3]

For each of the 17 runtime cases, alternating: the backend's ``generate`` on
the rendered prompt in this process, then the same request through a live
``llmstep serve`` (its own process, cache off, the same seed so both generate
the same tokens). Target: ratio ≤ 1.10. Writes results/overhead.json.
"""

from __future__ import annotations

import argparse
import time

import httpx

from common import bench_model, llmstep_serve, machine, runtime_cases, server_process, summary, write_results
from llmstep.backends import load_backend
from llmstep.backends.base import GenerationParams
from llmstep.config import ModelConfig
from llmstep.protocol.prompt import LLMSTEP_FORMAT, Prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cases = runtime_cases()
    model_dir = bench_model()
    backend = load_backend(ModelConfig(model=str(model_dir), device="cpu"))
    params = GenerationParams(num_samples=10, temperature=0.5, max_new_tokens=128, stop=LLMSTEP_FORMAT.stop, seed=0)
    bare: list[float] = []
    http: list[float] = []
    flags = ("--cache-size", "0", "--seed", "0")
    with server_process(llmstep_serve(model_dir, *flags)) as (url, _), httpx.Client(timeout=300) as client:
        for case in cases[:2]:  # warm-up both paths
            backend.generate([Prompt(LLMSTEP_FORMAT.render(case["tactic_state"], case["prefix"]))], params)
            client.post(url + "/v1/suggest", json={"tactic_state": case["tactic_state"], "prefix": case["prefix"]})
        for _ in range(args.rounds):
            for case in cases:
                prompt = LLMSTEP_FORMAT.render(case["tactic_state"], case["prefix"])
                start = time.perf_counter()
                backend.generate([Prompt(prompt)], params)
                bare.append(time.perf_counter() - start)
                start = time.perf_counter()
                r = client.post(
                    url + "/v1/suggest", json={"tactic_state": case["tactic_state"], "prefix": case["prefix"]}
                )
                http.append(time.perf_counter() - start)
                assert r.status_code == 200, r.text
    stats = {"bare_backend": summary(bare), "http": summary(http)}
    ratio = stats["http"]["mean_ms"] / stats["bare_backend"]["mean_ms"]
    print(
        f"bare backend call: {stats['bare_backend']['mean_ms']:.1f} ms mean; "
        f"through HTTP: {stats['http']['mean_ms']:.1f} ms mean; ratio {ratio:.3f} (target <= 1.10)"
    )
    write_results(
        "overhead",
        {
            "what": "HTTP request latency / bare backend call, same request and seed, cache off",
            "ratio_mean": ratio,
            "machine": machine(),
            "results": stats,
        },
    )


if __name__ == "__main__":
    main()
