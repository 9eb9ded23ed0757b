"""``llmstep presets``: list the model presets ``llmstep serve --preset`` knows, or show one."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``presets`` to the subcommands."""
    p = sub.add_parser(
        "presets",
        help="list the model presets for `llmstep serve --preset`",
        description="List the built-in model presets (and a file's), or show one in full.",
    )
    p.add_argument("name", nargs="?", default=None, help="show this preset's template, stops and source")
    p.add_argument("--presets-file", default=None, help="TOML file of extra presets, as for `llmstep serve`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the table, or one preset; an unknown name is a ConfigError listing the valid ones."""
    from llmstep.presets import DEFAULT_PRESET, get_preset, load_presets

    presets = load_presets(args.presets_file)
    if args.name is None:
        width = max(len(name) for name in presets)
        for name, preset in sorted(presets.items()):
            mark = "*" if name == DEFAULT_PRESET else " "
            print(f"{mark} {name:<{width}}  {preset.kind:<7}  {preset.model}")
            if preset.description:
                print(f"  {'':<{width}}  {preset.description}")
        print("\n* the default. Details: llmstep presets NAME. Use: llmstep serve --preset NAME")
        return 0
    preset = get_preset(args.name, presets)
    fmt = preset.prompt_format
    print(f"name:          {preset.name}")
    print(f"description:   {preset.description}")
    print(f"model:         {preset.model}")
    print(f"kind:          {preset.kind} (--backend {preset.backend})")
    print(f"prompt format: {fmt.name}")
    print(f"template:      {fmt.template!r}")
    for extra in fmt.extra_templates:
        print(f"also prompts:  {extra!r} (candidates of every prompt ranked together)")
    if fmt.encoder_decoder:
        print("               (encoder input; the prefix starts the decoder's output)")
    print(f"stop:          {list(fmt.stop)!r}")
    if fmt.remove:
        print(f"remove:        {list(fmt.remove)!r}")
    if fmt.drop:
        print(f"never suggest: {list(fmt.drop)!r}")
    if preset.trust_remote_code:
        print("trust remote code: yes (the model's code comes from its hub repo)")
    decoding = ", ".join(f"{k}={v!r}" for k, v in preset.decoding.items()) or "llmstep's defaults"
    print(f"decoding:      {decoding}")
    print(f"source:        {preset.source}")
    return 0
