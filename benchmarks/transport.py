"""The cost of one call from the Lean side: curl, as the Lean package runs it, against a Python client process.

    python benchmarks/transport.py [--calls 30]

Both talk to the same live ``llmstep serve``, with answers already cached so
the server's own time is a dictionary lookup and what is left is the
transport: spawning the process and one HTTP round trip. The Python client is
``llmstep suggest`` (the light client: no torch import). Writes
results/transport.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

import httpx

from common import bench_model, llmstep_serve, machine, runtime_cases, server_process, summary, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30, help="calls per transport")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("benchmark skipped: curl is not on PATH")
    case = runtime_cases()[2]
    body = json.dumps({"tactic_state": case["tactic_state"], "prefix": case["prefix"], "num_samples": 10})
    times: dict[str, list[float]] = {"curl": [], "python_client": []}
    with server_process(llmstep_serve(bench_model())) as (url, _):
        httpx.post(url + "/v1/suggest", content=body, headers={"Content-Type": "application/json"}, timeout=300)
        curl = [
            "curl",
            "--silent",
            "--show-error",
            "--request",
            "POST",
            "--header",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            "--write-out",
            "\n%{http_code}",
            "--max-time",
            "30",
            url + "/v1/suggest",
        ]
        python = [
            sys.executable,
            "-m",
            "llmstep",
            "suggest",
            "-",
            "--prefix",
            case["prefix"],
            "--url",
            url,
            "--num-samples",
            "10",
        ]
        for _ in range(args.calls):
            start = time.perf_counter()
            out = subprocess.run(curl, input=body, capture_output=True, text=True, check=True)
            times["curl"].append(time.perf_counter() - start)
            assert out.stdout.endswith("200"), out.stdout[-200:]
            start = time.perf_counter()
            subprocess.run(python, input=case["tactic_state"], capture_output=True, text=True, check=True)
            times["python_client"].append(time.perf_counter() - start)
    stats = {name: summary(ts) for name, ts in times.items()}
    ratio = stats["python_client"]["mean_ms"] / stats["curl"]["mean_ms"]
    print(
        f"curl: {stats['curl']['mean_ms']:.1f} ms per call; python client: {stats['python_client']['mean_ms']:.1f} ms"
        f" per call; python/curl {ratio:.1f}x"
    )
    write_results(
        "transport",
        {
            "what": "wall time per call of one cached suggestion request, process spawn included",
            "python_over_curl": ratio,
            "machine": machine(),
            "results": stats,
        },
    )


if __name__ == "__main__":
    main()
