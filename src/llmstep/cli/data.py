"""``llmstep data``: turn proof datasets into proofstep JSONL for ``llmstep train``.

Only parsing and printing here; the conversion is ``llmstep.data.leandojo``.
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
