"""Latency per request on llmstep's 17 runtime cases: ours against the original's way of generating.

    python benchmarks/latency.py [--rounds 3]

For each case, in alternation within one process: the baseline (one generate
per temperature, 10 samples at T=0.5, always 128 new tokens, see
baseline.py), then our engine on the transformers backend with the same
model and the same decoding (10 samples, T=0.5, at most 128 tokens) but
stopping at the end of the step and prefilling the prompt once, with the
cache off (a cache hit would measure nothing), then the CTranslate2 backend
(int8) when ``ctranslate2`` is installed. Writes results/latency.json.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from baseline import BaselineGenerator
from common import alternate, bench_model, machine, parameter_count, runtime_cases, summary, write_results
from llmstep.backends import load_backend
from llmstep.config import DecodingConfig, EngineConfig, ModelConfig
from llmstep.engine import SuggestionEngine
from llmstep.engine.blocking import BlockingEngine


def engine_for(model: str, backend: str, **model_options: str) -> BlockingEngine:
    """Our engine with the server's decoding defaults and no cache, called one request at a time."""
    loaded = load_backend(ModelConfig(model=model, backend=backend, device="cpu", **model_options))
    return BlockingEngine(
        SuggestionEngine(
            loaded,
            DecodingConfig(num_samples=10, temperature=0.5, max_new_tokens=128),
            config=EngineConfig(cache_size=0),
        )
    )


def ct2_engine(model_dir: str) -> BlockingEngine | None:
    """Our CTranslate2 backend on an int8 conversion of the same model, if ctranslate2 is installed."""
    try:
        import ctranslate2  # noqa: F401

        from llmstep.convert.ct2 import convert_to_ct2
    except ImportError:
        return None
    from common import CACHE

    out = CACHE / "ct2-int8"
    if not (out / "model.bin").is_file():
        convert_to_ct2(model_dir, out, quantization="int8", force=True)
    return engine_for(str(out), "ct2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the 17 cases")
    args = parser.parse_args()
    cases = runtime_cases()
    model_dir = bench_model()
    contenders: dict[str, Callable[[dict[str, str]], object]] = {}
    baseline = BaselineGenerator(model_dir)
    contenders["baseline"] = lambda c: baseline.suggest(c["tactic_state"], c["prefix"])
    ours = engine_for(str(model_dir), "hf")
    contenders["hf"] = lambda c: ours.suggest(c["tactic_state"], c["prefix"])
    if (ct2 := ct2_engine(str(model_dir))) is not None:
        contenders["ct2-int8"] = lambda c: ct2.suggest(c["tactic_state"], c["prefix"])
    times = alternate(contenders, cases, args.rounds)
    stats = {name: summary(ts) for name, ts in times.items()}
    base = stats["baseline"]["mean_ms"]
    print(
        f"model: {model_dir.name}, {parameter_count(model_dir) / 1e6:.1f}M parameters; "
        f"{len(cases)} cases x {args.rounds} rounds, alternating"
    )
    print(f"{'':10} {'mean ms':>9} {'p50 ms':>9} {'p95 ms':>9} {'baseline/ours':>14}")
    for name, s in stats.items():
        s["speedup_vs_baseline"] = base / s["mean_ms"]
        print(f"{name:10} {s['mean_ms']:9.1f} {s['p50_ms']:9.1f} {s['p95_ms']:9.1f} {s['speedup_vs_baseline']:13.2f}x")
    write_results(
        "latency",
        {
            "what": "per-request generation latency on llmstep's 17 runtime cases; cache off",
            "model": model_dir.name,
            "parameters": parameter_count(model_dir),
            "rounds": args.rounds,
            "machine": machine(),
            "results": stats,
        },
    )


if __name__ == "__main__":
    main()
