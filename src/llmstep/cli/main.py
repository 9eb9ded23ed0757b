"""``llmstep`` entry point: builds the subcommands and maps errors to exit codes.

Each subcommand lives in its own module under ``llmstep.cli`` with two
functions: ``register(subparsers)`` adds its parser (and sets ``func``), and
the handler it sets runs the command and returns an exit code. Modules import
nothing heavy at import time, so ``llmstep suggest`` starts fast. This is the
only place that calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from llmstep import __version__
from llmstep.errors import LLMStepError

__all__ = ["build_parser", "main"]

#: Optional dependencies → the extra that installs them, for commands run on a light install.
EXTRAS = {
    "torch": "serve",
    "transformers": "serve",
    "tokenizers": "serve",
    "accelerate": "serve",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "peft": "train",
    "datasets": "train",
    "matplotlib": "eval",
    "ctranslate2": "ct2",
    "gguf": "gguf",
    "vllm": "vllm",
}

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ("serve", "presets", "suggest", "data", "train", "convert", "eval")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="llmstep", description="Language-model proof-step suggestions for Lean 4.")
    parser.add_argument("--version", action="version", version=f"llmstep {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"llmstep.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"llmstep.cli.{name}":
                continue  # a subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``llmstep``; exits with the command's code, an error's ``exit_code``, or 130 on Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        sys.exit(2)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if args.debug or root not in EXTRAS:
            raise
        extra = "train" if args.command == "train" else EXTRAS[root]  # train's extra includes serve's
        print(
            f"error: llmstep {args.command} needs {root}, which is not installed: pip install 'llmstep[{extra}]'",
            file=sys.stderr,
        )
        sys.exit(2)
    except LLMStepError as exc:
        if args.debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code or 0)
