"""Engine layer: requests in, ranked suggestions out. No HTTP here."""

from llmstep.engine.suggest import Suggestion, SuggestionEngine

__all__ = ["Suggestion", "SuggestionEngine"]
