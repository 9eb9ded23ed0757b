"""Import a GGUF file (llama.cpp's format) as a transformers model directory.

Many small models reach users only as GGUF. transformers reads GGUF (it
dequantizes the weights to float32 and rebuilds the tokenizer from the file's
metadata) but refuses to ``save_pretrained`` the result, because it still
carries the GGUF quantizer. Dropping that quantizer, which did its work at load
time, gives a plain float32 model that reloads identically and that every
backend, ``llmstep train`` and ``llmstep convert ct2`` accept.

The output is written into a hidden folder beside ``out_dir`` and renamed into
place at the end, so an interrupted import leaves nothing half-written.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from llmstep.convert.target import check_target
from llmstep.errors import ConfigError, ModelUnavailable

__all__ = ["import_gguf"]

#: Written beside the model so the directory says what it was imported from.
PROVENANCE_FILE = "llmstep-import.json"


def _check(gguf_file: Path, out_dir: Path, force: bool) -> None:
    if not gguf_file.is_file():
        raise ModelUnavailable(f"GGUF file {str(gguf_file)!r} does not exist")
    with gguf_file.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelUnavailable(f"{str(gguf_file)!r} is not a GGUF file (it does not start with 'GGUF')")
    check_target(
        out_dir, force, lambda d: (d / PROVENANCE_FILE).is_file(), "the output of an earlier `llmstep convert gguf`"
    )
    try:
        import gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:
        raise ConfigError(f"reading GGUF needs the gguf package ({exc}): pip install 'llmstep[gguf]'") from exc


def import_gguf(gguf_file: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """Load ``gguf_file`` with transformers and save it, with its tokenizer, as a float32 model in ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, out = Path(gguf_file).resolve(), Path(out_dir)
    _check(source, out, force)
    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelUnavailable(f"transformers could not load {str(source)!r}: {exc}") from exc
    # The weights are float32 tensors now; the quantizer only marks the model as unsaveable.
    model.hf_quantizer = None
    for holder in (model.config, getattr(model, "generation_config", None)):
        if holder is not None and hasattr(holder, "quantization_config"):
            delattr(holder, "quantization_config")
    model.is_quantized = False

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.importing")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        provenance = {
            "source": str(source),
            "source_bytes": source.stat().st_size,
            "architecture": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "dtype": "float32",
            "seconds": round(time.perf_counter() - start, 1),
        }
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
