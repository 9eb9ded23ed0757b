"""`llmstep data traces` and `llmstep data split`: proof-search traces to JSONL, and held-out sets by theorem.

The search results here are made up for this project in the format of llmstep's
``results__*.json`` (its ``python/benchmarking/proofsearch`` output); the real
miniF2F shards in ../shared are used when present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmstep.cli.main import main
from llmstep.data import convert_leandojo, convert_traces, read_proofsteps, split_by_theorem
from llmstep.errors import DataError

from support import FIXTURES, require_shared


def attempt(theorem: str, steps: list[tuple[str, str]], success: bool = True) -> dict:
    return {
        "theorem": theorem,
        "proof": [t for _, t in steps],
        "success": success,
        "trace": [{"state_before": s, "tactic": t} for s, t in steps] if success else [],
        "failure_reason": "" if success else "SearchEnded",
    }


def results_file(path: Path, results: list[list[dict]]) -> Path:
    body = {"results": [{"attempt_results": a, "success": any(x["success"] for x in a)} for a in results]}
    path.write_text(json.dumps({**body, "args": {"model_name": "made-up"}}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    one = results_file(
        tmp_path / "results__0.json",
        [
            [attempt("thm_a", [("x : ℕ\n⊢ x + 0 = x", "simp")])],
            [attempt("thm_b", [], success=False)],  # no proof found: nothing to learn from
            [
                attempt("thm_c", [("⊢ 2 + 2 = 4", "norm_num")], success=False),
                attempt("thm_c", [("⊢ 2 + 2 = 4", "rfl")]),
            ],
        ],
    )
    two = results_file(
        tmp_path / "results__1.json",
        [
            [attempt("thm_d", [("p q : Prop\n⊢ p → q → p", "intro hp _"), ("p q : Prop\nhp : p\n⊢ p", "exact hp")])],
            [attempt("thm_a", [("x : ℕ\n⊢ x + 0 = x", "rfl")])],  # the same theorem in another shard
        ],
    )
    return [one, two]


def test_traces_keep_each_proved_theorems_steps_once(shards: list[Path], tmp_path: Path) -> None:
    counts = convert_traces(shards, tmp_path / "out.jsonl")
    records = read_proofsteps(tmp_path / "out.jsonl")
    assert (counts.files, counts.theorems, counts.duplicates, counts.proofsteps) == (2, 3, 1, 4)
    assert [(r["theorem"], r["completion"]) for r in records] == [
        ("thm_a", "simp[END]"),
        ("thm_c", "rfl[END]"),  # the successful attempt, not the failed one before it
        ("thm_d", "intro hp _[END]"),
        ("thm_d", "exact hp[END]"),
    ]
    assert records[2]["prompt"] == "[GOAL]p q : Prop\n⊢ p → q → p[PROOFSTEP]"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[]", "the file must be a dict"),
        ('{"results": [{"attempt_results": [{"success": true, "trace": []}]}]}', "'theorem' must be a str"),
        ('{"results": [{"attempt_results": [{"success": true, "theorem": "t", "trace": [{"tactic": "simp"}]}]}]}',
         "trace[0]: 'state_before' must be a str"),
        ("{", "invalid JSON"),
    ],
)  # fmt: skip
def test_malformed_traces_are_one_line_and_write_nothing(
    body: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "results__9.json"
    bad.write_text(body, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "traces", str(bad), "-o", str(tmp_path / "out.jsonl")])
    assert exit_info.value.code == DataError.exit_code
    [line] = capsys.readouterr().err.strip().splitlines()
    assert message in line and str(bad) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results__9.json"]


def pooled(tmp_path: Path, shards: list[Path]) -> list[Path]:
    convert_leandojo(FIXTURES / "leandojo_2023.json", tmp_path / "raw", progress=False)
    convert_traces(shards, tmp_path / "raw" / "traces.jsonl")
    return [tmp_path / "raw" / "leandojo_2023.jsonl", tmp_path / "raw" / "traces.jsonl"]


def theorems(path: Path) -> set[str]:
    return {r["theorem"] for r in read_proofsteps(path)}


def test_split_puts_each_theorem_on_one_side(shards: list[Path], tmp_path: Path) -> None:
    sources = pooled(tmp_path, shards)
    counts = split_by_theorem(sources, tmp_path / "split", held_out=0.3, seed=0)
    train, test = theorems(tmp_path / "split" / "train.jsonl"), theorems(tmp_path / "split" / "test.jsonl")
    everything = set().union(*(theorems(p) for p in sources))
    assert not train & test and train | test == everything
    assert counts.held_out_theorems == len(test) == round(0.3 * len(everything))
    steps = sum(len(read_proofsteps(p)) for p in sources)
    assert counts.train_steps + counts.held_out_steps == steps


def test_split_depends_on_the_seed_and_not_on_file_order(shards: list[Path], tmp_path: Path) -> None:
    sources = pooled(tmp_path, shards)
    split_by_theorem(sources, tmp_path / "a", seed=0)
    split_by_theorem(list(reversed(sources)), tmp_path / "b", seed=0)
    for name in ("train.jsonl", "test.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    held = {seed: theorems(split_by_theorem(sources, tmp_path / f"s{seed}", seed=seed).held_out) for seed in range(4)}
    assert len({frozenset(h) for h in held.values()}) > 1


def test_split_cli_prints_counts_and_refuses_records_without_theorems(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = pooled(tmp_path, shards)
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "split", *map(str, sources), "-o", str(tmp_path / "split"), "--seed", "3"])
    assert exit_info.value.code == 0
    assert "train.jsonl:" in capsys.readouterr().out
    bare = tmp_path / "bare.jsonl"
    bare.write_text('{"prompt": "[GOAL]⊢ p[PROOFSTEP]", "completion": "simp[END]"}\n', encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "split", str(bare), "-o", str(tmp_path / "nope")])
    assert exit_info.value.code == DataError.exit_code
    assert "no 'theorem' field" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_real_minif2f_traces(tmp_path: Path) -> None:
    """llmstep's Pythia-2.8B search on miniF2F test, from ../shared/data/llmstep-benchmarks."""
    shards = sorted((require_shared() / "data" / "llmstep-benchmarks" / "minif2f-search-traces").glob("*.json"))
    counts = convert_traces(shards, tmp_path / "minif2f.jsonl")
    assert (counts.files, counts.theorems, counts.proofsteps) == (4, 68, 94)
    assert len(theorems(tmp_path / "minif2f.jsonl")) == 68
