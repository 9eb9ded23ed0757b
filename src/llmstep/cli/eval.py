"""``llmstep eval``: accuracy@k, latency and failures of a server or a model on held-out proof steps.

Only parsing, wiring and printing here; the work is ``llmstep.evaluate``.
The report is written even when the run stops early (Ctrl-C, too many
failed requests), marked partial, before the command exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from llmstep.config import DecodingConfig, ModelConfig, PresetOptions, ServeConfig
from llmstep.errors import ConfigError
from llmstep.options import add_flags, config_error, env_values, flag_values, merge
from llmstep.protocol.wire import MAX_NUM_SAMPLES

__all__ = ["EVAL_DECODING", "register"]

#: Where eval's decoding differs from serve's: beam search, so that a run is deterministic.
EVAL_DECODING: dict[str, object] = {"decoding": "beam"}

_EPILOG = """\
examples:
  llmstep eval --data data/test.jsonl --url http://localhost:6000 -k 1,5,10 --out eval/served
  llmstep eval --data random/test.json --model out/tiny --decoding beam --num-samples 10 --out eval/tiny
  llmstep eval --compare eval/served/report.json eval/tiny/report.json
  llmstep eval --data ctx/test.jsonl --url http://localhost:6000 --context both --out eval/ctx
See docs/evaluation.md for what each metric means.
"""


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,5,10, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"every k must be at least 1, got {text!r}")
    return ks


def register(subparsers: Any) -> None:
    """Add ``eval`` to the top-level parser."""
    p = subparsers.add_parser(
        "eval",
        help="measure accuracy@k and latency on held-out proof steps",
        description=(
            "Ask a running server (--url) or a model loaded here (--model) for suggestions on every step of a "
            "proofstep JSONL or LeanDojo JSON file, and write report.json, report.md and plots."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", metavar="TEST.jsonl", help="proofstep JSONL (llmstep data ...) or a LeanDojo JSON file")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--url", help="a running llmstep server; it decodes as `llmstep serve` was told to")
    # The shared model and decoding declarations (llmstep.config), as `llmstep serve` has them; eval's --model
    # names the weights (no preset picks them) and eval decodes with beam search unless told otherwise.
    add_flags(source, ModelConfig, only=("model",), defaults={"model": None}, preset=False)
    source.add_argument(
        "--compare", nargs=2, metavar=("A.json", "B.json"), help="print two reports side by side and exit"
    )
    p.add_argument("-k", type=_ks, default=[1, 5, 10], metavar="K,K,...", help="accuracy@k for these k (1,5,10)")
    p.add_argument("--num-samples", type=int, help="suggestions asked per request (default: the largest k)")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples")
    p.add_argument("--out", default="eval-report", metavar="DIR", help="report folder (default ./eval-report)")
    p.add_argument(
        "--max-failure-rate",
        type=float,
        default=0.2,
        help="stop, with a partial report and a non-zero exit, once more than this fraction fails (default 0.2)",
    )
    p.add_argument(
        "--context",
        choices=["with", "without", "both"],
        default="with",
        help="send each record's 'context' (with, the default), leave it out (without), or run both and "
        "compare them (both: OUT/with-context and OUT/without-context)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server per request (60)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (needs no matplotlib)")
    model = p.add_argument_group(
        "--model only", "How to load and prompt the model, and decode (--temperature is sent with --url too)."
    )
    add_flags(model, PresetOptions)
    add_flags(model, ServeConfig, only=("prompt_format",))
    add_flags(model, ModelConfig, skip=("model",))
    add_flags(model, DecodingConfig, skip=("num_samples",), defaults=EVAL_DECODING)
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> int:
    """Flag combinations argparse cannot express; returns num_samples."""
    if not args.data:
        raise ConfigError("pass --data TEST.jsonl (or --compare A.json B.json)")
    if not (args.url or args.model):
        raise ConfigError("pass --url of a running server, or --model to load one here")
    if args.url and (args.decoding or args.seed is not None or args.preset or args.prompt_format):
        raise ConfigError(
            "--decoding, --seed, --preset and --prompt-format apply to --model; a server decodes and prompts as "
            "`llmstep serve` was told to"
        )
    if not 0.0 <= args.max_failure_rate <= 1.0:
        raise ConfigError(f"--max-failure-rate must be between 0 and 1, got {args.max_failure_rate}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    num_samples = args.num_samples or max(args.k)
    if not 1 <= num_samples <= MAX_NUM_SAMPLES:
        raise ConfigError(f"--num-samples must be between 1 and {MAX_NUM_SAMPLES}, got {num_samples}")
    return num_samples


def run(args: argparse.Namespace) -> int:
    """Evaluate, or compare two reports; see the module docstring for the exit behaviour."""
    from llmstep.evaluate import compare_reports, load_report

    if args.compare:
        print(compare_reports(load_report(args.compare[0]), load_report(args.compare[1])))
        return 0
    num_samples = _check(args)

    from llmstep.evaluate import load_examples

    examples, data_format = load_examples(args.data, args.limit)
    if args.url:
        from llmstep.evaluate import ClientSuggester

        suggester: Any = ClientSuggester(
            args.url, num_samples=num_samples, temperature=args.temperature, timeout_s=args.timeout
        )
        decoding: dict[str, Any] = {"decoding": "server", "temperature": args.temperature}
        try:
            return _evaluate(args, examples, data_format, suggester, num_samples, decoding)
        finally:
            suggester.close()

    from pydantic import ValidationError

    from llmstep.backends import load_backend
    from llmstep.config import EngineConfig
    from llmstep.engine.blocking import BlockingEngine
    from llmstep.engine.suggest import SuggestionEngine
    from llmstep.evaluate import EngineSuggester
    from llmstep.presets import DEFAULT_PRESET, find_prompt_format, get_preset, load_presets

    presets = load_presets(args.presets_file)
    preset = get_preset(args.preset or DEFAULT_PRESET, presets)
    prompt_format = find_prompt_format(args.prompt_format, presets) if args.prompt_format else preset.prompt_format
    if args.context == "both" and not prompt_format.uses_context:
        raise ConfigError(
            f"--context both: the {prompt_format.name} prompt format does not show the file context to the model, "
            "so both runs would send the same prompts; pick a format that reads it (--prompt-format minictx-context)"
        )
    # Flags over the environment over the preset (only one named: --model names the weights) over eval's defaults.
    from_preset: dict[str, object] = {}
    if args.preset:
        from_preset = {"backend": preset.backend, "trust_remote_code": preset.trust_remote_code}
    try:
        model_config = ModelConfig.model_validate(
            merge(from_preset, env_values(ModelConfig), flag_values(args, ModelConfig))
        )
    except ValidationError as exc:
        raise config_error(exc, ModelConfig) from None
    try:
        config = DecodingConfig.model_validate(
            merge(
                EVAL_DECODING,
                preset.decoding if args.preset else {},
                flag_values(args, DecodingConfig, skip=("num_samples",)),
                {"num_samples": num_samples},
            )
        )
    except ValidationError as exc:
        raise config_error(exc, DecodingConfig) from None
    backend = load_backend(model_config)
    # No cache (a repeated state would time as free) and no batch window (requests come one at a time).
    engine = BlockingEngine(
        SuggestionEngine(backend, config, prompt_format, config=EngineConfig(cache_size=0, batch_window_ms=0))
    )
    try:
        decoding = config.model_dump(exclude={"num_samples"})
        suggester = EngineSuggester(engine, num_samples=num_samples)
        return _evaluate(args, examples, data_format, suggester, num_samples, decoding)
    finally:
        engine.close()
        backend.close()


def _evaluate(
    args: argparse.Namespace,
    examples: list[Any],
    data_format: str,
    suggester: Any,
    num_samples: int,
    decoding: dict[str, Any],
) -> int:
    """Evaluate with the file context as ``--context`` asks; with ``both``, once each way, then compare."""
    from dataclasses import replace
    from pathlib import Path

    with_context = sum(bool(e.context) for e in examples)
    if args.context != "with" and not with_context:
        raise ConfigError(f"--context {args.context}: no record in {args.data} has a 'context' field to leave out")
    bare = [replace(e, context="") for e in examples]
    if args.context != "both":
        chosen = examples if args.context == "with" else bare
        return _evaluate_once(args, chosen, data_format, suggester, num_samples, decoding, args.out, args.context)

    from llmstep.evaluate import compare_reports, load_report

    outs = {mode: str(Path(args.out) / f"{mode}-context") for mode in ("with", "without")}
    for mode, chosen in (("with", examples), ("without", bare)):
        print(f"-- {mode} context ({with_context} of {len(examples)} records have one)")
        code = _evaluate_once(args, chosen, data_format, suggester, num_samples, decoding, outs[mode], mode)
        if code != 0:
            return code
    comparison = compare_reports(
        load_report(Path(outs["with"]) / "report.json"), load_report(Path(outs["without"]) / "report.json")
    )
    (Path(args.out) / "context-comparison.txt").write_text(comparison + "\n", encoding="utf-8")
    print(comparison)
    return 0


def _evaluate_once(
    args: argparse.Namespace,
    examples: list[Any],
    data_format: str,
    suggester: Any,
    num_samples: int,
    decoding: dict[str, Any],
    out: str,
    context: str,
) -> int:
    """Run, write every output, print where they are; then exit 130 on Ctrl-C or raise on too many failures."""
    from llmstep.evaluate import provenance, run_eval, summarize, write_plots, write_report

    meta = provenance(
        data=args.data,
        data_format=data_format,
        limit=args.limit,
        source=suggester.describe(),
        ks=args.k,
        num_samples=num_samples,
        decoding=decoding,
        max_failure_rate=args.max_failure_rate,
        context=context,
    )
    run_ = run_eval(examples, suggester, max_failure_rate=args.max_failure_rate, progress=not args.no_progress)
    report = summarize(run_, meta)
    files = write_report(report, run_, out)
    if not args.no_plots:
        latencies = [r.latency_s for r in run_.results if r.latency_s is not None]
        try:
            files += write_plots(report, latencies, out)
        except ModuleNotFoundError as exc:
            if exc.name != "matplotlib":
                raise
            print("note: no plots: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
    print(_headline(report))
    print(f"wrote {', '.join(f.name for f in files)} to {out}")
    if run_.interrupted:
        print(f"interrupted: the partial report in {out} covers {len(run_.results)} examples", file=sys.stderr)
        return 130
    if run_.abort_error is not None:
        err = run_.abort_error
        raise type(err)(f"{err.message}; partial report written to {out}")
    return 0


def _headline(report: dict[str, Any]) -> str:
    s = report["summary"]
    acc = ", ".join(
        f"{match}@{k} {value:.3f}" for match in ("exact", "loose") for k, value in s["accuracy"][match].items()
    )
    status = " (PARTIAL)" if report["status"] == "partial" else ""
    return f"{s['n']} examples{status}: {acc}; {s['failures']} failed"
