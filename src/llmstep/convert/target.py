"""Where a conversion may write: never over a user's folder, and over an earlier output only when asked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmstep.errors import ConfigError

__all__ = ["check_target"]


def check_target(out_dir: Path, force: bool, ours: Callable[[Path], bool], kind: str) -> None:
    """Refuse to overwrite silently, and never replace a directory ``ours`` does not recognise as ``kind``."""
    if not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return
    if not force:
        raise ConfigError(f"output directory {str(out_dir)!r} already exists; pass --force to replace it")
    if not ours(out_dir):
        raise ConfigError(
            f"output directory {str(out_dir)!r} exists and is not {kind}; "
            "refusing to delete it even with --force: pick a new directory"
        )
