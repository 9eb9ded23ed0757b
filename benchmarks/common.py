"""Shared pieces of the benchmarks: the model they measure, the real requests, result files.

Every benchmark compares against a baseline run in the same process on the
same machine, prints a table, and writes its figures to
``benchmarks/results/<name>.json``. None is collected by pytest.

The model is the project's own: the ``small`` from-scratch preset (a GPT-NeoX
with a byte-level BPE), trained by ``llmstep train`` code on the LeanDojo
Benchmark 4 sample in ``../shared`` (or on the project's own test pairs when
that is absent). It is trained once and kept in ``benchmarks/.cache``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_dir() -> Path | None:
    """``$LLMSTEP_SHARED_DIR``, else ``../shared`` beside the repository; None when absent."""
    path = Path(os.environ.get("LLMSTEP_SHARED_DIR") or ROOT.parent / "shared")
    return path if (path / "data").is_dir() else None


def runtime_cases() -> list[dict[str, str]]:
    """llmstep's 17 latency-benchmark requests (wellecks/llmstep, MIT), or exit saying where they should be."""
    root = shared_dir()
    if root is None:
        sys.exit("benchmark skipped: the real requests live in ../shared (or $LLMSTEP_SHARED_DIR), which is absent")
    path = root / "data/llmstep-benchmarks/runtime-test-cases.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def bench_model(preset: str = "small", steps: int = 150) -> Path:
    """The benchmark model directory, trained on first use."""
    out = CACHE / f"{preset}-{steps}"
    if (out / "config.json").is_file():
        return out
    from llmstep.data.jsonl import proofstep_record, write_proofsteps
    from llmstep.train.scratch import train_from_scratch

    data = CACHE / "train.jsonl"
    root = shared_dir()
    if root is not None:
        from llmstep.data.leandojo import convert_leandojo

        sample = root / "data/leandojo-benchmark4-sample/mathlib4-random-test-sample.json"
        convert_leandojo(sample, CACHE / "leandojo", progress=False)
        data = next((CACHE / "leandojo").glob("*.jsonl"))
        print(f"training the {preset} benchmark model on {data.name} ({steps} steps)...", file=sys.stderr)
    else:
        rows = [json.loads(line) for line in (ROOT / "tests/fixtures/pairs.jsonl").read_text().splitlines()]
        write_proofsteps(data, (proofstep_record(r["state"], r["tactic"]) for r in rows))
    train_from_scratch(data, out, preset, max_steps=steps)
    return out


def ct2_model(model_dir: Path) -> Path | None:
    """An int8 CTranslate2 conversion of ``model_dir``, made on first use; None without ctranslate2."""
    try:
        import ctranslate2  # noqa: F401

        from llmstep.convert.ct2 import convert_to_ct2
    except ImportError:
        return None
    out = CACHE / f"{model_dir.name}-ct2-int8"
    if not (out / "model.bin").is_file():
        convert_to_ct2(str(model_dir), out, quantization="int8", force=True)
    return out


def parameter_count(model_dir: Path) -> int:
    """Parameters in a saved model, for the size the benchmarks must state."""
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())


def summary(seconds: list[float]) -> dict[str, float]:
    """Mean, p50, p95 and max, in milliseconds."""
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "mean_ms": 1000 * statistics.fmean(ordered),
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * p95,
        "max_ms": 1000 * ordered[-1],
        "n": len(ordered),
    }


def alternate(contenders: dict[str, Callable[[Any], object]], cases: list[Any], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each contender: all of them on each case in turn, so load drifts hit all alike.

    Each contender first answers one case untimed: first calls pay for lazy initialisation.
    """
    for run in contenders.values():
        run(cases[0])
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for case in cases:
            for name, run in contenders.items():
                start = time.perf_counter()
                run(case)
                times[name].append(time.perf_counter() - start)
    return times


def machine() -> dict[str, Any]:
    """Where the figures came from."""
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` and say where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


@contextmanager
def server_process(command: list[str], ready: str = r"serving .* on (http://\S+)") -> Iterator[tuple[str, int]]:
    """Run a server command; yield (its URL, its pid) once it prints a line matching ``ready``."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if match := re.search(ready, line):
                break
        else:
            raise RuntimeError(f"{command[:4]} exited before serving")
        # Keep draining its output so a chatty server never blocks on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield match.group(1), proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def llmstep_serve(model_dir: Path, *flags: str) -> list[str]:
    """The command line of ``llmstep serve`` on a free port."""
    return [sys.executable, "-m", "llmstep", "serve", "--model", str(model_dir), "--port", "0", *flags]


def baseline_serve(model_dir: Path) -> list[str]:
    """The command line of the original-style baseline server."""
    return [sys.executable, str(ROOT / "benchmarks" / "baseline.py"), str(model_dir)]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
