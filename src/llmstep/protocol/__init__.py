"""Protocol layer: the prompt format and the wire models. Pure; imports no model code."""
