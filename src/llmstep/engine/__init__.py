"""Engine layer: requests in, ranked suggestions out. No HTTP here."""

from llmstep.engine.suggest import Suggestion, SuggestionEngine, Suggestions

__all__ = ["Suggestion", "SuggestionEngine", "Suggestions"]
