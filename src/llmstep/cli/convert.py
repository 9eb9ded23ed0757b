"""``llmstep convert``: turn a model into the format another engine or tool reads.

Only parsing and printing here; the conversion is ``llmstep.convert``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from llmstep.convert.ct2 import CT2_QUANTIZATIONS  # a light module: ctranslate2 loads on use

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``convert`` and its ``ct2`` and ``gguf`` targets to the top-level parser."""
    parser = subparsers.add_parser(
        "convert", help="convert a model for a faster backend", description=__doc__.splitlines()[0]
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    ct2 = targets.add_parser(
        "ct2",
        help="CTranslate2, for `llmstep serve --backend ct2` (needs llmstep[ct2])",
        description=(
            "Convert a transformers causal LM into a CTranslate2 model directory, tokenizer included; "
            "then run `llmstep serve --backend ct2 --model OUT_DIR`."
        ),
    )
    ct2.add_argument("model_dir", metavar="MODEL_DIR", help="transformers model directory (config.json + weights)")
    ct2.add_argument("out_dir", metavar="OUT_DIR", help="directory to write the CTranslate2 model to")
    ct2.add_argument(
        "--quantization",
        choices=CT2_QUANTIZATIONS,
        default="int8",
        help="how the weights are stored (default int8; float32 keeps transformers' numbers)",
    )
    ct2.add_argument("--force", action="store_true", help="replace OUT_DIR if it holds an earlier conversion")
    ct2.set_defaults(func=run_ct2)

    gguf = targets.add_parser(
        "gguf",
        help="import a GGUF file (llama.cpp) as a transformers model directory (needs the gguf package)",
        description=(
            "Load a GGUF model with transformers (dequantized to float32, tokenizer rebuilt from the file) and "
            "save it as a plain model directory that `llmstep serve`, `train` and `convert ct2` accept."
        ),
    )
    gguf.add_argument("gguf_file", metavar="FILE.gguf", help="the GGUF file")
    gguf.add_argument("out_dir", metavar="OUT_DIR", help="directory to write the transformers model to")
    gguf.add_argument("--force", action="store_true", help="replace OUT_DIR if it holds an earlier import")
    gguf.set_defaults(func=run_gguf)


def run_ct2(args: argparse.Namespace) -> int:
    """Convert, then say where the model is and how to serve it."""
    from llmstep.convert import convert_to_ct2

    start = time.perf_counter()
    out = convert_to_ct2(args.model_dir, args.out_dir, quantization=args.quantization, force=args.force)
    print(f"converted {args.model_dir} to {out} ({args.quantization}) in {time.perf_counter() - start:.1f} s")
    print(f"serve it with: llmstep serve --backend ct2 --model {out}")
    return 0


def run_gguf(args: argparse.Namespace) -> int:
    """Import, then say where the model is and what to do with it."""
    from llmstep.convert.gguf import import_gguf

    start = time.perf_counter()
    out = import_gguf(args.gguf_file, args.out_dir, force=args.force)
    print(f"imported {args.gguf_file} to {out} (float32) in {time.perf_counter() - start:.1f} s")
    print(f"serve it with: llmstep serve --model {out}")
    return 0
