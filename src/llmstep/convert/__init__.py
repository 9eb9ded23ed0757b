"""Turning a transformers checkpoint into another engine's format.

Only the conversion logic lives here; ``llmstep.cli.convert`` parses the
flags and the backends load what this package writes.
"""

from __future__ import annotations

from llmstep.convert.ct2 import CT2_QUANTIZATIONS, convert_to_ct2, is_ct2_model_dir

__all__ = ["CT2_QUANTIZATIONS", "convert_to_ct2", "is_ct2_model_dir"]
