"""HTTP layer: the only place that imports the web framework."""

from llmstep.server.app import create_app

__all__ = ["create_app"]
