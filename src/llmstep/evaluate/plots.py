"""The report's three PNG plots: accuracy@k by k, a latency histogram, accuracy by tactic head.

Drawn on ``matplotlib.figure.Figure`` objects, which render with the Agg
backend without pyplot, so no display is needed and no global backend is
switched. Reads a finished report (and the per-request latencies); computes no metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["PLOT_FILES", "write_plots"]

#: The files ``write_plots`` creates, in order.
PLOT_FILES = ("accuracy_at_k.png", "latency_histogram.png", "accuracy_by_head.png")


def _accuracy_at_k(fig: Any, report: dict[str, Any]) -> None:
    ks = report["provenance"]["k"]
    acc = report["summary"]["accuracy"]
    ax = fig.add_subplot()
    for match, marker in (("exact", "o"), ("loose", "s")):
        values = [acc[match][str(k)] or 0.0 for k in ks]
        ax.plot(ks, values, marker=marker, label=match)
    ax.set(xlabel="k (suggestions considered)", ylabel="accuracy@k", ylim=(0, 1.05), xticks=ks)
    ax.set_title("Reference tactic among the top k")
    ax.grid(alpha=0.3)
    ax.legend()


def _latency_histogram(fig: Any, latencies_s: Sequence[float]) -> None:
    ax = fig.add_subplot()
    if latencies_s:
        ax.hist([t * 1000 for t in latencies_s], bins=min(30, max(5, len(latencies_s) // 3)), color="tab:blue")
    else:
        ax.text(0.5, 0.5, "no answered requests", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="latency per request (ms)", ylabel="requests")
    ax.set_title(f"Latency ({len(latencies_s)} answered requests)")


def _accuracy_by_head(fig: Any, report: dict[str, Any], top: int = 12) -> None:
    ks = report["provenance"]["k"]
    k1, kmax = str(min(ks)), str(max(ks))
    groups = list(report["by_tactic_head"].items())[:top]
    names = [f"{name}\n(n={g['n']})" for name, g in groups]
    x = range(len(groups))
    ax = fig.add_subplot()
    width = 0.4
    ax.bar([i - width / 2 for i in x], [g["exact"][k1] or 0.0 for _, g in groups], width, label=f"exact@{k1}")
    ax.bar([i + width / 2 for i in x], [g["loose"][kmax] or 0.0 for _, g in groups], width, label=f"loose@{kmax}")
    ax.set_xticks(list(x), names, fontsize=8)
    ax.set(ylabel="accuracy", ylim=(0, 1.05))
    ax.set_title(f"Accuracy by reference tactic head (the {len(groups)} most frequent)")
    ax.legend()


def write_plots(report: dict[str, Any], latencies_s: Sequence[float], out_dir: str | Path) -> list[Path]:
    """Draw the three plots into ``out_dir``; returns their paths."""
    from matplotlib.figure import Figure

    out = Path(out_dir)
    paths = [out / name for name in PLOT_FILES]
    drawers = (
        lambda fig: _accuracy_at_k(fig, report),
        lambda fig: _latency_histogram(fig, latencies_s),
        lambda fig: _accuracy_by_head(fig, report),
    )
    for path, draw in zip(paths, drawers, strict=True):
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        draw(fig)
        fig.savefig(path, dpi=100)
    return paths
