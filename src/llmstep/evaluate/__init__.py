"""``llmstep eval``: how often a model's suggestions contain the tactic a human proof used.

``examples`` reads the data, ``suggesters`` asks a server or an in-process
model, ``runner`` records each request, ``metrics`` defines the matches and
statistics, ``report``, ``plots`` and ``compare`` write and read the results.
"""

from llmstep.evaluate.compare import compare_reports, load_report
from llmstep.evaluate.examples import Example, load_examples
from llmstep.evaluate.metrics import loose_key, match_rank, normalize_tactic, tactic_head
from llmstep.evaluate.plots import write_plots
from llmstep.evaluate.report import provenance, render_markdown, summarize, write_report
from llmstep.evaluate.runner import EvalRun, ExampleResult, run_eval
from llmstep.evaluate.suggesters import ClientSuggester, EngineSuggester, Suggester

__all__ = [
    "ClientSuggester",
    "EngineSuggester",
    "EvalRun",
    "Example",
    "ExampleResult",
    "Suggester",
    "compare_reports",
    "load_examples",
    "load_report",
    "loose_key",
    "match_rank",
    "normalize_tactic",
    "provenance",
    "render_markdown",
    "run_eval",
    "summarize",
    "tactic_head",
    "write_plots",
    "write_report",
]
