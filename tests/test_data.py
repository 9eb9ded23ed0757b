"""`llmstep data leandojo`: both LeanDojo formats, streaming, counts, and every bad input.

Fixtures are made-up theorems written for this project (tests/fixtures/leandojo_2023.json
in the 2023 format, tests/fixtures/leandojo_annotated/ in the newer one); the real
samples in ../shared are used when present.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmstep.cli.main import main
from llmstep.data import (
    convert_leandojo,
    iter_json_array,
    proofstep_record,
    proofstep_records,
    read_proofsteps,
)
from llmstep.errors import DataError

from support import FIXTURES, require_shared

FORMAT_2023 = FIXTURES / "leandojo_2023.json"
ANNOTATED = FIXTURES / "leandojo_annotated"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``llmstep`` in-process; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*argv])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def traced_tactic_count(path: Path) -> int:
    return sum(len(t["traced_tactics"]) for t in json.loads(path.read_text(encoding="utf-8")))


def test_2023_format_becomes_one_record_per_tactic(tmp_path: Path) -> None:
    [counts] = convert_leandojo(FORMAT_2023, tmp_path, progress=False)
    records = read_proofsteps(tmp_path / "leandojo_2023.jsonl")
    assert (counts.theorems, counts.skipped, counts.proofsteps) == (9, 1, 10)
    assert len(records) == traced_tactic_count(FORMAT_2023) == 10
    assert {k: records[0][k] for k in ("prompt", "completion")} == {
        "prompt": "[GOAL]n : ℕ\n⊢ n + 0 = n[PROOFSTEP]",
        "completion": "simp[END]",
    }
    assert {k: records[2][k] for k in ("prompt", "completion")} == {
        "prompt": "[GOAL]p q : Prop\nh : p ∧ q\n⊢ q ∧ p[PROOFSTEP]",
        "completion": "exact ⟨h.2, h.1⟩[END]",
    }
    # Each record names its theorem, so a split can keep a theorem's steps together.
    names = [t["full_name"] for t in json.loads(FORMAT_2023.read_text(encoding="utf-8")) for _ in t["traced_tactics"]]
    assert [r["theorem"] for r in records] == names


@pytest.mark.parametrize("split", ["random", "novel_premises"])
def test_annotated_folder_gives_three_splits_with_plain_tactics(tmp_path: Path, split: str) -> None:
    results = convert_leandojo(ANNOTATED, tmp_path, split, progress=False)
    assert [c.output.name for c in results] == ["train.jsonl", "val.jsonl", "test.jsonl"]
    for counts in results:
        part = counts.output.stem
        records = read_proofsteps(counts.output)
        assert len(records) == counts.proofsteps == traced_tactic_count(ANNOTATED / split / f"{part}.json")
        assert all("<a>" not in r["completion"] for r in records)
    train = {r["completion"] for r in read_proofsteps(tmp_path / "train.jsonl")}
    if split == "random":
        assert "rw [Nat.add_comm][END]" in train
    assert sum(c.skipped for c in results) == 1  # by_decide_fx has no tactic steps


def test_annotated_tactic_without_plain_text_drops_the_markup() -> None:
    theorem = {
        "full_name": "t",
        "traced_tactics": [
            {
                "state_before": "a b : Nat\n⊢ a + b = b + a",
                "annotated_tactic": ["simp [<a>Nat.add_comm</a>]", [{"full_name": "Nat.add_comm"}]],
            }
        ],
    }
    assert proofstep_records(theorem, "here") == [
        proofstep_record("a b : Nat\n⊢ a + b = b + a", "simp [Nat.add_comm]", theorem="t")
    ]


def test_same_conversion_twice_is_byte_identical(tmp_path: Path) -> None:
    convert_leandojo(ANNOTATED, tmp_path / "a", progress=False)
    convert_leandojo(ANNOTATED, tmp_path / "b", progress=False)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("chunk_bytes", [1, 3, 64, 1 << 20], ids=lambda n: f"chunk{n}")
def test_stream_reader_matches_json_load_at_any_chunk_size(tmp_path: Path, chunk_bytes: int) -> None:
    tricky = tmp_path / "tricky.json"
    # Numbers and literals that can straddle a chunk edge, nesting, escapes, and multi-byte UTF-8.
    tricky.write_text(' \n[1234567, -2.5e10 ,true,null, "x\\"]", {"⊢": ["∀ ℕ", {}]},\n[[]] , 0]\n', encoding="utf-8")
    for path in (tricky, FORMAT_2023, ANNOTATED / "random" / "train.json"):
        expected = json.loads(path.read_text(encoding="utf-8"))
        assert list(iter_json_array(path, chunk_bytes=chunk_bytes)) == expected


def test_stream_reader_reports_progress_in_bytes() -> None:
    seen: list[int] = []
    list(iter_json_array(FORMAT_2023, chunk_bytes=256, on_bytes=seen.append))
    assert sum(seen) == FORMAT_2023.stat().st_size


def test_empty_array_and_empty_theorem_list(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[ ]", encoding="utf-8")
    [counts] = convert_leandojo(empty, tmp_path / "out", progress=False)
    assert counts.proofsteps == 0
    assert (tmp_path / "out" / "empty.jsonl").read_text(encoding="utf-8") == ""


def test_cli_prints_counts_and_a_progress_bar(tmp_path: Path) -> None:
    # The real entry point, in a fresh interpreter: `python -m llmstep`.
    proc = subprocess.run(
        [sys.executable, "-m", "llmstep", "data", "leandojo", str(ANNOTATED), "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "train.jsonl: 4 proofsteps from 3 theorems" in proc.stdout
    assert "total: 6 proofsteps" in proc.stdout
    assert "1 theorems without tactics skipped" in proc.stdout
    assert "train.json: 100%" in proc.stderr  # tqdm


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


THEOREM = {"full_name": "t", "traced_tactics": [{"state_before": "⊢ True", "tactic": "trivial"}]}

BAD_INPUTS = {
    "missing-file": (None, "no such file"),
    "truncated-json": ('[{"full_name": "t", "traced_tactics": [', "invalid JSON at line 1"),
    "bad-json-line": ('[\n{"full_name": "t",\n "traced_tactics": [] ,, }\n]', "invalid JSON at line 3, column"),
    "not-an-array": ('{"full_name": "t"}', "expected a JSON array"),
    "empty-file": ("", "found an empty file"),
    "theorem-not-object": ("[1]", "theorem #0: expected a theorem object"),
    "no-traced-tactics": ('[{"full_name": "Foo.bar"}]', "theorem #0 (Foo.bar): field 'traced_tactics' is missing"),
    "no-state-before": (
        json.dumps([THEOREM, {"full_name": "u", "traced_tactics": [{"tactic": "simp"}]}]),
        "theorem #1 (u): traced_tactics[0]: field 'state_before'",
    ),
    "no-tactic": (
        json.dumps([{"full_name": "u", "traced_tactics": [{"state_before": "⊢ True"}]}]),
        "traced_tactics[0]: field 'tactic' is missing",
    ),
    "text-after-array": (json.dumps([THEOREM]) + " []", "unexpected text after the array"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_file_gives_one_line_error_exit_5_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, message = BAD_INPUTS[case]
    source = tmp_path / "in" / "bad.json"
    if text is not None:
        _write(source, text)
    out_dir = tmp_path / "out"
    previous = _write(out_dir / "bad.jsonl", "an earlier, finished conversion\n")

    code, _, err = run_cli(capsys, "data", "leandojo", str(source), "-o", str(out_dir), "--no-progress")

    assert code == DataError.exit_code == 5
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: {source}")
    assert message in line
    assert sorted(p.name for p in out_dir.iterdir()) == ["bad.jsonl"]  # no temp file left behind
    assert previous.read_text(encoding="utf-8") == "an earlier, finished conversion\n"


def test_folder_missing_a_split_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "bench" / "random" / "train.json", "[]")
    _write(tmp_path / "bench" / "random" / "test.json", "[]")
    code, _, err = run_cli(capsys, "data", "leandojo", str(tmp_path / "bench"), "-o", str(tmp_path / "out"))
    assert code == 5
    assert "missing val.json" in err
    assert not (tmp_path / "out").exists()


def test_a_bad_later_split_leaves_no_output_at_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = tmp_path / "bench" / "random"
    _write(bench / "train.json", json.dumps([THEOREM]))
    _write(bench / "val.json", json.dumps([THEOREM]))
    _write(bench / "test.json", '[{"full_name": "broken"}]')
    code, _, err = run_cli(capsys, "data", "leandojo", str(tmp_path / "bench"), "-o", str(tmp_path / "out"))
    assert code == 5
    assert "test.json: theorem #0 (broken)" in err
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("split", ["random", "novel_premises"])
def test_real_annotated_trace_counts_match(tmp_path: Path, split: str) -> None:
    """LeanDojo's trace of lean4-example (newer format), from ../shared/data/leandojo-benchmark4-sample."""
    trace = require_shared() / "data" / "leandojo-benchmark4-sample" / "lean4-example-trace"
    for counts in convert_leandojo(trace, tmp_path, split, progress=False):
        assert counts.proofsteps == traced_tactic_count(counts.source)
        records = read_proofsteps(counts.output)
        assert all(r["prompt"].startswith("[GOAL]") and r["prompt"].endswith("[PROOFSTEP]") for r in records)
        assert all(r["completion"].endswith("[END]") and "<a>" not in r["completion"] for r in records)


def test_real_2023_sample_counts_match(tmp_path: Path) -> None:
    """100 Mathlib theorems of LeanDojo Benchmark 4 (2023 format), from ../shared/data/leandojo-benchmark4-sample."""
    sample = require_shared() / "data" / "leandojo-benchmark4-sample" / "mathlib4-random-test-sample.json"
    [counts] = convert_leandojo(sample, tmp_path, progress=False)
    assert counts.theorems == 100
    assert counts.proofsteps == traced_tactic_count(sample) == 469
    theorems = json.loads(sample.read_text(encoding="utf-8"))
    first = theorems[0]["traced_tactics"][0]
    assert read_proofsteps(counts.output)[0] == proofstep_record(
        first["state_before"], first["tactic"], theorem=theorems[0]["full_name"]
    )
