"""Convert a transformers causal LM into a CTranslate2 model directory.

The output holds ctranslate2's ``model.bin`` and ``config.json``, the model's
tokenizer (saved with ``save_pretrained``, so ``AutoTokenizer`` loads it from
the same directory), and ``llmstep-convert.json`` saying where it came from.
Two ctranslate2 gaps are handled here:

* transformers 5 renamed two GPT-NeoX names ctranslate2's loader still reads
  (``config.rotary_pct``, ``model.embed_out``); :class:`_CompatConverter` puts
  the old names back on the loaded model before conversion.
* ctranslate2's GPT-NeoX loader ignores ``rope_theta`` and always uses 10000,
  so a NeoX checkpoint with another rotary base is refused instead of being
  converted into a silently different model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from llmstep.convert.target import check_target
from llmstep.errors import ConfigError, ModelUnavailable, first_line

__all__ = ["CT2_QUANTIZATIONS", "PROVENANCE_FILE", "convert_to_ct2", "import_ctranslate2", "is_ct2_model_dir"]

log = logging.getLogger(__name__)

#: Weight types ctranslate2 can store; the compute type at load time may differ.
CT2_QUANTIZATIONS = (
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)

#: The rotary base ctranslate2's GPT-NeoX loader hard-codes.
_NEOX_ROPE_THETA = 10000.0

#: Written beside the model so the directory says what it was converted from.
PROVENANCE_FILE = "llmstep-convert.json"


def import_ctranslate2() -> Any:
    """``import ctranslate2``, or a ConfigError with the install hint."""
    try:
        import ctranslate2
    except ImportError as exc:
        raise ConfigError(f"CTranslate2 is not installed ({exc}): pip install 'llmstep[ct2]'") from exc
    return ctranslate2


def is_ct2_model_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a converted CTranslate2 model (its ``model.bin``)."""
    return (Path(path) / "model.bin").is_file()


def _check_source(model_dir: Path) -> None:
    hint = "pass a transformers model directory (one with config.json and weights)"
    if not model_dir.exists():
        raise ModelUnavailable(f"model directory {str(model_dir)!r} does not exist; {hint}")
    if not model_dir.is_dir() or not (model_dir / "config.json").is_file():
        raise ModelUnavailable(f"{str(model_dir)!r} has no config.json, so it is not a model directory; {hint}")
    if is_ct2_model_dir(model_dir):
        raise ModelUnavailable(f"{str(model_dir)!r} is already a CTranslate2 model; serve it with --backend ct2")


def _neox_rope_theta(config: Any) -> float:
    """The rotary base of a GPT-NeoX config, under its transformers 4 or 5 name."""
    params = getattr(config, "rope_parameters", None) or {}
    for value in (
        params.get("rope_theta"),
        getattr(config, "rope_theta", None),
        getattr(config, "rotary_emb_base", None),
    ):
        if value is not None:
            return float(value)
    return _NEOX_ROPE_THETA


def _read_config(model_dir: Path) -> Any:
    """The model's transformers config, after refusing architectures ctranslate2 would convert wrongly."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    if config.model_type == "gpt_neox":
        theta = _neox_rope_theta(config)
        if theta != _NEOX_ROPE_THETA:
            raise ConfigError(
                f"{str(model_dir)!r} is a GPT-NeoX model with rope_theta={theta:g}, but ctranslate2's "
                f"GPT-NeoX converter always uses {_NEOX_ROPE_THETA:g}, so the converted model would be wrong; "
                "serve this model with --backend hf instead"
            )
    return config


def _compat_converter_class(ctranslate2: Any) -> type:
    """A ``TransformersConverter`` that patches transformers-5 renames and keeps the tokenizer it loads."""

    class _CompatConverter(ctranslate2.converters.TransformersConverter):
        tokenizer: Any = None

        def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            model = super().load_model(model_class, model_name_or_path, **kwargs)
            if model.config.model_type == "gpt_neox":
                config = model.config
                if not hasattr(config, "rotary_pct"):
                    # transformers 5 moved it into rope_parameters; editing config.json does not help.
                    config.rotary_pct = (config.rope_parameters or {}).get("partial_rotary_factor", 1.0)
                if not hasattr(model, "embed_out"):
                    model.embed_out = model.lm_head  # same module under its transformers-4 name
            return model

        def load_tokenizer(self, tokenizer_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            self.tokenizer = super().load_tokenizer(tokenizer_class, model_name_or_path, **kwargs)
            return self.tokenizer

    return _CompatConverter


def _fill_special_tokens(config_path: Path) -> None:
    """Name the end-of-text token where the tokenizer has no BOS or UNK token.

    ctranslate2 writes ``null`` for them and then refuses to load its own
    output; GPT-NeoX tokenizers use ``<|endoftext|>`` for all three anyway.
    """
    config = json.loads(config_path.read_text(encoding="utf-8"))
    eos = config.get("eos_token")
    changed = {key: eos for key in ("bos_token", "unk_token") if config.get(key) is None and eos is not None}
    if changed:
        config.update(changed)
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def convert_to_ct2(model_dir: str | Path, out_dir: str | Path, quantization: str = "int8", force: bool = False) -> Path:
    """Convert ``model_dir`` into ``out_dir`` with weights stored as ``quantization``; returns ``out_dir``.

    Raises ModelUnavailable when ``model_dir`` is not a loadable model, and
    ConfigError for a bad quantization, an existing output, a model ctranslate2
    cannot convert correctly, or ctranslate2 missing.
    """
    model_dir, out_dir = Path(model_dir).expanduser(), Path(out_dir).expanduser()
    if quantization not in CT2_QUANTIZATIONS:
        raise ConfigError(f"--quantization {quantization!r} is not one of: {', '.join(CT2_QUANTIZATIONS)}")
    _check_source(model_dir)
    # ctranslate2 deletes the output directory with --force: only allow that for its own output.
    check_target(out_dir, force, is_ct2_model_dir, "a CTranslate2 model")
    ctranslate2 = import_ctranslate2()
    try:
        config = _read_config(model_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailable(f"cannot read the config of {str(model_dir)!r}: {first_line(exc)}") from exc

    converter = _compat_converter_class(ctranslate2)(str(model_dir))
    try:
        # The checks above already refused an unsafe overwrite, so let ctranslate2 replace the directory.
        converter.convert(str(out_dir), quantization=quantization, force=True)
    except (ValueError, NotImplementedError) as exc:
        # ctranslate2 names the unsupported configuration and lists the supported ones.
        raise ConfigError(f"ctranslate2 cannot convert {str(model_dir)!r}: {first_line(exc)}") from exc
    except OSError as exc:
        raise ModelUnavailable(f"cannot load {str(model_dir)!r} for conversion: {first_line(exc)}") from exc
    _fill_special_tokens(out_dir / "config.json")
    converter.tokenizer.save_pretrained(out_dir)
    provenance = {
        "source": str(model_dir.resolve()),
        "model_type": config.model_type,
        "quantization": quantization,
        "ctranslate2": ctranslate2.__version__,
        # ctranslate2's own config does not keep it; the backend reads it to fit long prompts.
        "context_window": getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None),
    }
    (out_dir / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    log.info("converted %s to %s (%s)", model_dir, out_dir, quantization)
    return out_dir
