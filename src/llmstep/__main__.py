"""``python -m llmstep``: the same as the ``llmstep`` command."""

from llmstep.cli.main import main

main()
