"""Decoding threads fit the cores this process may use, or what OMP_NUM_THREADS says."""

from __future__ import annotations

import os

import pytest

from llmstep.backends.threads import decoding_threads


def test_the_affinity_mask_not_the_machine_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert decoding_threads() == expected


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("3", 3), ("0", None), ("many", None), (" ", None)])
def test_omp_num_threads_wins_when_it_is_a_positive_number(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int | None
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert decoding_threads() == (expected or 2)
