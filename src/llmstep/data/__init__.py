"""Turning proof datasets into proofstep JSONL (``{"prompt", "completion"}`` per line).

Streaming readers and all-or-nothing writers; no model code here.
"""

from llmstep.data.jsonarray import iter_json_array
from llmstep.data.jsonl import (
    END_MARKER,
    AtomicJsonlWriter,
    iter_proofsteps,
    proofstep_record,
    read_proofsteps,
    write_proofsteps,
)
from llmstep.data.leandojo import ConversionCounts, convert_leandojo, proofstep_records
from llmstep.data.split import SplitCounts, split_by_theorem
from llmstep.data.traces import TraceCounts, convert_traces

__all__ = [
    "END_MARKER",
    "AtomicJsonlWriter",
    "ConversionCounts",
    "SplitCounts",
    "TraceCounts",
    "convert_leandojo",
    "convert_traces",
    "iter_json_array",
    "iter_proofsteps",
    "proofstep_record",
    "proofstep_records",
    "read_proofsteps",
    "split_by_theorem",
    "write_proofsteps",
]
