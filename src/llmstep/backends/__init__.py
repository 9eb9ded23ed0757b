"""Generation engines behind one interface, chosen by name.

Each entry maps a ``--backend`` name to the module and class that implement
it; the module is imported only when that backend is loaded, so heavy or
optional dependencies stay out of every other code path.
"""

from __future__ import annotations

import importlib

from llmstep.backends.base import Backend, Candidate, GenerationParams
from llmstep.config import ModelConfig
from llmstep.errors import ConfigError

__all__ = ["BACKENDS", "Backend", "Candidate", "GenerationParams", "load_backend"]

#: ``--backend`` name → "module:Class". Every class takes a ModelConfig, and
#: raises ModelUnavailable or ConfigError (never a bare ImportError) when it cannot load.
BACKENDS: dict[str, str] = {
    "hf": "llmstep.backends.hf:HFBackend",
    "seq2seq": "llmstep.backends.seq2seq:Seq2SeqBackend",
    "ct2": "llmstep.backends.ct2:CT2Backend",
    "vllm": "llmstep.backends.vllm:VLLMBackend",
    "openai": "llmstep.backends.openai:OpenAIBackend",
}


def load_backend(config: ModelConfig) -> Backend:
    """Load the model ``config`` names on the engine it names."""
    try:
        target = BACKENDS[config.backend]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown backend {config.backend!r}; choose one of: {known}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Backend modules import their engine lazily; this is a missing optional dependency.
        raise ConfigError(
            f"the {config.backend} backend needs {exc.name!r}: pip install 'llmstep[{config.backend}]'"
        ) from exc
    return getattr(module, class_name)(config)
