"""Turning an eval run into numbers and files: report.json, examples.jsonl and report.md.

``summarize`` computes every metric from the per-example results; the
writers only format them. Plots are ``plots``; comparing two reports is
``compare``. A run stopped early still gets a report, marked partial.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmstep import __version__
from llmstep.evaluate.metrics import GOAL_LENGTH_BUCKETS, latency_stats
from llmstep.evaluate.runner import EvalRun, ExampleResult

__all__ = ["REPORT_FORMAT", "provenance", "render_markdown", "summarize", "write_report"]

#: Written into every report.json, so readers can tell what they are reading.
REPORT_FORMAT = "llmstep-eval/1"

_MATCH_NOTE = (
    "exact: the reference tactic equals a suggestion up to whitespace; "
    "loose: the same, but the contents of rw/simp lemma lists are ignored"
)


def provenance(
    *,
    data: str | Path,
    data_format: str,
    limit: int | None,
    source: dict[str, Any],
    ks: Sequence[int],
    num_samples: int,
    decoding: dict[str, Any],
    max_failure_rate: float,
    context: str = "with",
) -> dict[str, Any]:
    """How the report was made: enough to rerun it and to tell two reports apart."""
    mode = decoding.get("decoding")
    deterministic = None if mode == "server" else mode == "beam" or decoding.get("seed") is not None
    return {
        "data": str(data),
        "data_format": data_format,
        "limit": limit,
        "source": source,
        "k": list(ks),
        "num_samples": num_samples,
        "decoding": decoding,
        "deterministic": deterministic,
        "max_failure_rate": max_failure_rate,
        "context": context,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "llmstep_version": __version__,
    }


def _accuracy(results: Sequence[ExampleResult], ks: Sequence[int]) -> dict[str, dict[str, float | None]]:
    """Share of ``results`` with a hit in the top k, per k, for both matches; failures count as misses."""
    n = len(results)
    out: dict[str, dict[str, float | None]] = {}
    for match in ("exact", "loose"):
        ranks = [getattr(r, f"{match}_rank") for r in results]
        out[match] = {str(k): (sum(rank is not None and rank <= k for rank in ranks) / n if n else None) for k in ks}
    return out


def _group(results: Sequence[ExampleResult], key: str, ks: Sequence[int], order: Sequence[str]) -> dict[str, Any]:
    groups: dict[str, list[ExampleResult]] = defaultdict(list)
    for r in results:
        groups[getattr(r, key)].append(r)
    return {name: {"n": len(groups[name]), **_accuracy(groups[name], ks)} for name in order if name in groups}


def summarize(run: EvalRun, meta: dict[str, Any]) -> dict[str, Any]:
    """The full report: provenance, headline metrics, breakdowns and failures."""
    results = run.results
    ks = meta["k"]
    answered = [r for r in results if not r.failed]
    failed = [r for r in results if r.failed]
    latencies = [r.latency_s for r in answered if r.latency_s is not None]
    heads = [name for name, _ in Counter(r.head for r in results).most_common()]
    return {
        "format": REPORT_FORMAT,
        "status": "partial" if run.partial else "complete",
        "partial_reason": run.partial_reason,
        "provenance": {**meta, "n_examples": run.planned, "n_evaluated": len(results)},
        "match": _MATCH_NOTE,
        "summary": {
            "n": len(results),
            "answered": len(answered),
            "failures": len(failed),
            "failure_rate": len(failed) / len(results) if results else None,
            "accuracy": _accuracy(results, ks),
            "latency_s": latency_stats(latencies),
            "suggestions_per_request": sum(len(r.suggestions) for r in answered) / len(answered) if answered else None,
            "empty_share": sum(not r.suggestions for r in answered) / len(answered) if answered else None,
        },
        "by_tactic_head": _group(results, "head", ks, heads),
        "by_goal_length": _group(results, "goal_bucket", ks, [name for name, _ in GOAL_LENGTH_BUCKETS]),
        "failures": {
            "by_code": dict(Counter(r.error_code for r in failed).most_common()),
            "first": [{"where": r.where, "code": r.error_code, "message": r.error_message} for r in failed[:5]],
        },
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f} ms"


def _breakdown_table(title: str, label: str, groups: dict[str, Any], ks: Sequence[int], top: int = 15) -> list[str]:
    cols = [f"exact@{k}" for k in ks] + [f"loose@{k}" for k in ks]
    lines = [f"## {title}", "", f"| {label} | n | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for name, g in list(groups.items())[:top]:
        values = [_fmt(g["exact"][str(k)]) for k in ks] + [_fmt(g["loose"][str(k)]) for k in ks]
        lines.append(f"| `{name}` | {g['n']} | " + " | ".join(values) + " |")
    if len(groups) > top:
        lines.append(f"| (+{len(groups) - top} more in report.json) | | " + " | ".join("" for _ in cols) + " |")
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: provenance, the headline table, the two breakdowns, and failures."""
    meta, s = report["provenance"], report["summary"]
    ks = meta["k"]
    source = meta["source"]
    made_by = source.get("url") or source.get("model")
    lines = [f"# llmstep eval: {made_by} on {Path(meta['data']).name}", ""]
    if report["status"] == "partial":
        lines += [f"**PARTIAL REPORT**: {report['partial_reason']}", ""]
    lines += [
        f"- data: `{meta['data']}` ({meta['data_format']}), {meta['n_evaluated']} of {meta['n_examples']} examples"
        + (f" (--limit {meta['limit']})" if meta["limit"] is not None else ""),
        f"- suggestions from: {', '.join(f'{k} `{v}`' for k, v in source.items())}",
        f"- decoding: {', '.join(f'{k} {v}' for k, v in meta['decoding'].items())}; num_samples {meta['num_samples']}"
        f"; deterministic: {meta['deterministic'] if meta['deterministic'] is not None else 'as the server decodes'}",
        f"- llmstep {meta['llmstep_version']}, {meta['date']}",
        f"- {report['match']}; failed requests count as misses",
        "",
        "| metric | value |",
        "|---|---:|",
    ]
    lines += [f"| exact accuracy@{k} | {_fmt(s['accuracy']['exact'][str(k)])} |" for k in ks]
    lines += [f"| loose accuracy@{k} | {_fmt(s['accuracy']['loose'][str(k)])} |" for k in ks]
    lat = s["latency_s"]
    lines += [
        f"| latency mean / p50 / p95 / max | {_ms(lat['mean'])} / {_ms(lat['p50'])} / {_ms(lat['p95'])}"
        f" / {_ms(lat['max'])} |",
        f"| suggestions per request | {_fmt(s['suggestions_per_request'], 2)} |",
        f"| empty answers | {_fmt(s['empty_share'])} |",
        f"| failed requests | {s['failures']} of {s['n']} ({_fmt(s['failure_rate'])}) |",
        "",
    ]
    lines += _breakdown_table("By tactic head", "head", report["by_tactic_head"], ks)
    lines += _breakdown_table("By goal length (characters)", "length", report["by_goal_length"], ks)
    if report["failures"]["by_code"]:
        lines += ["## Failures", ""]
        lines += [f"- `{code}`: {n}" for code, n in report["failures"]["by_code"].items()]
        lines += [f"- first at {f['where']}: {f['message']}" for f in report["failures"]["first"][:1]]
        lines.append("")
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file, so a report is never half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(report: dict[str, Any], run: EvalRun, out_dir: str | Path) -> list[Path]:
    """report.json, examples.jsonl (one result per line) and report.md under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.json", out / "examples.jsonl", out / "report.md"]
    _write_text(files[0], json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    rows = (json.dumps(asdict(r), ensure_ascii=False) for r in run.results)
    _write_text(files[1], "".join(row + "\n" for row in rows))
    _write_text(files[2], render_markdown(report))
    return files
