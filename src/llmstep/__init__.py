"""llmstep: language-model proof-step suggestions for Lean 4.

The public surface is small and light to import: no torch or transformers is
loaded until a backend is.
"""

from llmstep.errors import (
    BackendError,
    ConfigError,
    DataError,
    LLMStepError,
    ModelUnavailable,
    ServerUnreachable,
)

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "LLMStepError",
    "ModelUnavailable",
    "ServerUnreachable",
    "__version__",
]
