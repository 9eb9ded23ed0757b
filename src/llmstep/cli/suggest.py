"""``llmstep suggest``: ask a running server for suggestions from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from llmstep.errors import ConfigError

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``suggest`` to the subcommands."""
    p = sub.add_parser(
        "suggest",
        help="ask a running server for next-tactic suggestions",
        description="Print suggestions for a tactic state, one per line, best first.",
    )
    p.add_argument("state", help="the tactic state, or - to read it from stdin (goals are multi-line)")
    p.add_argument("--prefix", default="", help="the start of the tactic to complete")
    p.add_argument("--context-file", default=None, help="the file's source before the goal, for models that read it")
    p.add_argument("--url", default=None, help="server URL (default: http://$LLMSTEP_HOST:$LLMSTEP_PORT)")
    p.add_argument("--num-samples", type=int, default=None, help="sequences to generate (server default)")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (server default)")
    p.add_argument("--token", default=None, help="bearer token the server requires (default $LLMSTEP_TOKEN)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")
    p.add_argument("--json", action="store_true", help="print the server's scored JSON reply")
    p.set_defaults(func=run)


def read_context(path: str) -> str:
    """The context file's text, or a one-line error naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--context-file {path}: {getattr(exc, 'strerror', None) or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Query the server and print the result."""
    from llmstep.client import Client

    state = sys.stdin.read() if args.state == "-" else args.state
    context = read_context(args.context_file) if args.context_file else ""
    with Client(args.url, timeout_s=args.timeout, token=args.token) as client:
        reply = client.suggest(
            state.rstrip("\n"), args.prefix, context=context, num_samples=args.num_samples, temperature=args.temperature
        )
    if args.json:
        print(json.dumps(reply.model_dump(), ensure_ascii=False, indent=2))
    else:
        for s in reply.suggestions:
            print(s.tactic)
    return 0
