"""``llmstep data``: turn proof datasets into proofstep JSONL for ``llmstep train``.

Only parsing and printing here; the work is ``llmstep.data.leandojo``,
``llmstep.data.traces`` and ``llmstep.data.split``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``data`` and its ``leandojo`` converter to the top-level parser."""
    parser = subparsers.add_parser(
        "data",
        help="convert proof datasets to proofstep JSONL",
        description="Turn proof datasets into proofstep JSONL for `llmstep train`.",
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    leandojo = sources.add_parser(
        "leandojo",
        help="LeanDojo Benchmark 4 (folder or single JSON file)",
        description=(
            "Convert LeanDojo Benchmark 4 to JSONL, one "
            '{"prompt": "[GOAL]<state>[PROOFSTEP]", "completion": "<tactic>[END]"} per traced tactic. '
            "A folder gives train/val/test.jsonl; a file X.json gives X.jsonl."
        ),
    )
    leandojo.add_argument("path", help="benchmark folder (with random/ and novel_premises/) or one JSON file")
    leandojo.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the JSONL files")
    leandojo.add_argument(
        "--split",
        choices=("random", "novel_premises"),
        default="random",
        help="which LeanDojo split to convert when PATH is a folder (default: random)",
    )
    leandojo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    leandojo.set_defaults(func=run_leandojo)

    traces = sources.add_parser(
        "traces",
        help="proofs found by llmstep's proof search (its results JSON files)",
        description=(
            "Convert the proofs found by llmstep's best-first search (results__*.json, one per shard) to one "
            "proofstep JSONL file: every step of every successful search, each theorem once."
        ),
    )
    traces.add_argument("paths", nargs="+", metavar="RESULTS.json", help="search results files")
    traces.add_argument("-o", "--output", required=True, metavar="OUT.jsonl", help="the JSONL file to write")
    traces.set_defaults(func=run_traces)

    split = sources.add_parser(
        "split",
        help="split proofstep JSONL into train and held-out sets by theorem",
        description=(
            "Put every theorem's steps on one side only (train.jsonl or test.jsonl in OUT_DIR), chosen by a "
            "seeded hash of its name, so no held-out proof leaks into training. Records need a 'theorem' field."
        ),
    )
    split.add_argument("paths", nargs="+", metavar="IN.jsonl", help="proofstep JSONL files to pool and split")
    split.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for train/test.jsonl")
    split.add_argument("--held-out", type=float, default=0.2, help="fraction of theorems held out (default 0.2)")
    split.add_argument("--seed", type=int, default=0, help="(default 0)")
    split.set_defaults(func=run_split)


def run_leandojo(args: argparse.Namespace) -> int:
    """Convert, then print one count line per output file and a total."""
    from llmstep.data.leandojo import convert_leandojo

    results = convert_leandojo(args.path, args.output, args.split, progress=not args.no_progress)
    for counts in results:
        print(counts.summary())
    total = sum(c.proofsteps for c in results)
    skipped = sum(c.skipped for c in results)
    print(f"total: {total} proofsteps written to {args.output} ({skipped} theorems without tactics skipped)")
    return 0


def run_traces(args: argparse.Namespace) -> int:
    """Convert, then print the counts."""
    from llmstep.data.traces import convert_traces

    print(convert_traces(args.paths, args.output).summary())
    return 0


def run_split(args: argparse.Namespace) -> int:
    """Split, then print the counts."""
    from llmstep.data.split import split_by_theorem

    counts = split_by_theorem(args.paths, args.output, held_out=args.held_out, seed=args.seed)
    print(f"{counts.summary()} (seed {args.seed}) -> {args.output}")
    return 0
