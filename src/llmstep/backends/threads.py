"""How many threads decoding may use: one number for every local engine, so they do not fight the cores."""

from __future__ import annotations

import os

__all__ = ["decoding_threads"]


def decoding_threads() -> int:
    """Threads for the one thread (or ctranslate2 worker) that runs the model: ``OMP_NUM_THREADS`` if set, else
    the cores this process may use.

    Request threads only tokenize and wait, so the model may take every core. The affinity mask, not
    the machine's core count, is what a container or ``taskset`` allows; more threads than that make
    decoding and requests fight (ctranslate2's own default counts the machine's cores).
    """
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
