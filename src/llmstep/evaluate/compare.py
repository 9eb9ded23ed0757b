"""Two eval reports side by side: each metric of A and of B, and B minus A.

Reads report.json files (or the folders holding them); a file that is not an
llmstep eval report is a ``DataError``. Only metrics both reports have are
compared, so reports made with different k still line up where they overlap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmstep.errors import DataError
from llmstep.evaluate.report import REPORT_FORMAT

__all__ = ["compare_reports", "load_report"]


def load_report(path: str | Path) -> dict[str, Any]:
    """A report.json, given its path or its folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such report (pass report.json files written by `llmstep eval`)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise DataError(f'{path}: not an llmstep eval report (expected "format": "{REPORT_FORMAT}")')
    return report


def _rows(report: dict[str, Any]) -> dict[str, tuple[float | None, str]]:
    """Metric label -> (value, kind); kind picks the formatting: 'acc', 'ms', 'num' or 'count'."""
    s = report["summary"]
    rows: dict[str, tuple[float | None, str]] = {"examples evaluated": (s["n"], "count")}
    for match in ("exact", "loose"):
        for k, value in s["accuracy"][match].items():
            rows[f"{match} accuracy@{k}"] = (value, "acc")
    for stat, value in s["latency_s"].items():
        rows[f"latency {stat}"] = (value, "ms")
    rows["suggestions per request"] = (s["suggestions_per_request"], "num")
    rows["empty answers"] = (s["empty_share"], "acc")
    rows["failure rate"] = (s["failure_rate"], "acc")
    k1 = str(min(report["provenance"]["k"]))
    for head, g in report["by_tactic_head"].items():
        rows[f"exact@{k1} on `{head}`"] = (g["exact"][k1], "acc")
    return rows


def _fmt(value: float | None, kind: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    sign = "+" if signed else ""
    if kind == "ms":
        return f"{value * 1000:{sign}.1f} ms"
    if kind == "count":
        return f"{value:{sign}.0f}"
    return f"{value:{sign}.3f}" if kind == "acc" else f"{value:{sign}.2f}"


def _name(report: dict[str, Any]) -> str:
    meta = report["provenance"]
    source = meta["source"].get("model") or meta["source"].get("url")
    partial = " [PARTIAL]" if report["status"] == "partial" else ""
    context = f", {meta['context']} context" if "context" in meta else ""
    return f"{source} on {Path(meta['data']).name}{context}, {meta['date']}{partial}"


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> str:
    """A text table: metric, A's value, B's value, and B − A, for the metrics both reports have."""
    rows_b = _rows(b)
    table = []
    for label, (va, kind) in _rows(a).items():
        if label not in rows_b:
            continue
        vb = rows_b[label][0]
        diff = None if va is None or vb is None else vb - va
        table.append((label, _fmt(va, kind), _fmt(vb, kind), _fmt(diff, kind, signed=True)))
    header = ("metric", "A", "B", "B - A")
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(4)]
    lines = [f"A: {_name(a)}", f"B: {_name(b)}", ""]
    for row in [header, *table]:
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if row is header:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
