"""`llmstep eval`: accuracy on a tiny real model, numbers against a hand count, plots, failures, --compare.

The model is a tiny GPT-NeoX trained here with ``train_from_scratch`` on the
project's own pairs (tests/fixtures/eval/train.jsonl), plus 12 short steps of
the LeanDojo Benchmark 4 sample in ../shared (CC BY 2.0, from mathlib4) when
that folder is present. Hand-counted reports use a scripted Suggester and a
fake clock, so every expected number below is worked out in the test itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest

from llmstep.backends.base import Candidate, Encoding, GenerationParams, ShouldStop, never
from llmstep.config import DecodingConfig, EngineConfig, ModelConfig, ServeConfig
from llmstep.data import convert_leandojo, proofstep_record, read_proofsteps, write_proofsteps
from llmstep.errors import BackendError, LLMStepError
from llmstep.evaluate import Example, load_examples, run_eval, summarize, write_plots, write_report
from llmstep.evaluate.metrics import latency_stats, loose_key, normalize_tactic, tactic_head
from llmstep.evaluate.report import provenance
from llmstep.protocol.prompt import Prompt

from support import FIXTURES, live_server, shared_dir

EVAL_FIXTURES = FIXTURES / "eval"
LEANDOJO_SAMPLE = "data/leandojo-benchmark4-sample/mathlib4-random-test-sample.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative --out folders land in the test's own temporary folder."""
    monkeypatch.chdir(tmp_path)


def eval_registered() -> bool:
    from llmstep.cli.main import COMMANDS

    return "eval" in COMMANDS


def llmstep_eval(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``llmstep eval`` in-process: through ``main`` once it is registered, else through its own parser."""
    if eval_registered():
        from llmstep.cli.main import main

        with pytest.raises(SystemExit) as exit_info:
            main(["eval", *args])
        code = int(exit_info.value.code or 0)
    else:
        from llmstep.cli.eval import register

        parser = argparse.ArgumentParser(prog="llmstep")
        register(parser.add_subparsers())
        try:
            ns = parser.parse_args(["eval", *args])
            code = ns.func(ns)
        except SystemExit as exc:  # argparse rejected the flags
            code = int(exc.code or 0)
        except LLMStepError as exc:  # what cli.main does with it
            print(f"error: {exc.message}", file=sys.stderr)
            code = exc.exit_code
    out, err = capsys.readouterr()
    return code, out, err


def read_report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def read_examples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "examples.jsonl").read_text(encoding="utf-8").splitlines()]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def write_pairs(path: Path, pairs: Sequence[tuple[str, str]]) -> Path:
    return write_proofsteps(path, (proofstep_record(s, t) for s, t in pairs))


# ---------------------------------------------------------------- a tiny real model


@dataclass
class Trained:
    model_dir: Path
    shared_seen: Path | None  # LeanDojo sample steps the model trained on
    shared_unseen: Path | None  # LeanDojo sample steps it never saw


def shared_steps(shared: Path, out: Path) -> tuple[Path, Path]:
    """19 short steps of the LeanDojo sample with distinct states: 12 to train on, 7 held out."""
    convert_leandojo(shared / LEANDOJO_SAMPLE, out, progress=False)
    chosen, states = [], set()
    for r in read_proofsteps(out / "mathlib4-random-test-sample.jsonl"):
        if len(r["prompt"]) <= 120 and len(r["completion"]) <= 45 and r["prompt"] not in states:
            states.add(r["prompt"])
            chosen.append(r)
    return write_proofsteps(out / "seen.jsonl", chosen[:12]), write_proofsteps(out / "unseen.jsonl", chosen[12:])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One tiny model for every model test: the fixture pairs, plus the sample's seen steps when present."""
    from llmstep.train.scratch import train_from_scratch

    tmp = tmp_path_factory.mktemp("eval-model")
    records = read_proofsteps(EVAL_FIXTURES / "train.jsonl")
    seen = unseen = None
    if (shared := shared_dir()) is not None:
        seen, unseen = shared_steps(shared, tmp / "shared")
        records += read_proofsteps(seen)
    data = write_proofsteps(tmp / "train.jsonl", records)
    # At this rate the 22 pairs are memorised by step ~70 (loss < 0.03); 100 leaves a margin.
    model_dir = train_from_scratch(data, tmp / "model", max_steps=100, learning_rate=5e-3)
    return Trained(model_dir, seen, unseen)


@pytest.mark.slow
def test_a_model_scores_one_on_its_training_pairs_and_less_on_unseen_ones(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(trained.model_dir), "--device", "cpu", "-k", "1,5", "--no-progress"]
    code, out, err = llmstep_eval(capsys, "--data", str(EVAL_FIXTURES / "train.jsonl"), *model, "--out", "seen")
    assert code == 0, err
    seen = read_report(Path("seen"))
    assert seen["status"] == "complete"
    assert seen["summary"]["accuracy"]["exact"] == {"1": 1.0, "5": 1.0}
    assert "10 examples: exact@1 1.000" in out

    code, _, err = llmstep_eval(capsys, "--data", str(EVAL_FIXTURES / "heldout.jsonl"), *model, "--out", "unseen")
    assert code == 0, err
    unseen = read_report(Path("unseen"))["summary"]["accuracy"]["exact"]
    assert unseen["1"] <= 0.4, unseen  # 5 made-up steps it never saw; a lucky `simp` may still hit

    meta = seen["provenance"]
    assert meta["source"] == {"model": str(trained.model_dir), "backend": "hf", "prompt_format": "llmstep"}
    assert meta["decoding"]["decoding"] == "beam" and meta["deterministic"] is True
    assert (meta["k"], meta["num_samples"], meta["n_examples"], meta["n_evaluated"]) == ([1, 5], 5, 10, 10)
    assert meta["data"] == str(EVAL_FIXTURES / "train.jsonl") and meta["llmstep_version"] and meta["date"]


@pytest.mark.slow
def test_served_and_in_process_beam_search_give_the_same_report(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmstep.backends import load_backend

    data = str(EVAL_FIXTURES / "train.jsonl")
    common = ["--data", data, "-k", "1,5", "--no-progress", "--no-plots"]
    backend = load_backend(ModelConfig(model=str(trained.model_dir), device="cpu"))
    config = ServeConfig(decoding=DecodingConfig(decoding="beam", num_samples=5))
    try:
        with live_server(config, backend) as url:
            code, _, err = llmstep_eval(capsys, *common, "--url", url, "--out", "served")
    finally:
        backend.close()
    assert code == 0, err
    code, _, err = llmstep_eval(capsys, *common, "--model", str(trained.model_dir), "--device", "cpu", "--out", "local")
    assert code == 0, err
    served, local = read_examples(Path("served")), read_examples(Path("local"))
    assert [r["suggestions"] for r in served] == [r["suggestions"] for r in local]
    assert read_report(Path("served"))["provenance"]["source"]["url"] == url


@pytest.mark.slow
def test_leandojo_sample_seen_steps_score_one_and_unseen_steps_less(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    if trained.shared_seen is None or trained.shared_unseen is None:
        pytest.skip("real data not found: set LLMSTEP_SHARED_DIR or put shared/ beside the repository")
    model = ["--model", str(trained.model_dir), "--device", "cpu", "-k", "1,5", "--no-progress", "--no-plots"]
    code, _, err = llmstep_eval(capsys, "--data", str(trained.shared_seen), *model, "--out", "seen")
    assert code == 0, err
    assert read_report(Path("seen"))["summary"]["accuracy"]["exact"]["1"] == 1.0
    code, _, err = llmstep_eval(capsys, "--data", str(trained.shared_unseen), *model, "--out", "unseen")
    assert code == 0, err
    assert read_report(Path("unseen"))["summary"]["accuracy"]["exact"]["1"] <= 0.5


# ---------------------------------------------------------------- reading data


def test_a_leandojo_json_file_is_read_like_its_converted_jsonl(tmp_path: Path) -> None:
    source = FIXTURES / "leandojo_2023.json"
    convert_leandojo(source, tmp_path, progress=False)
    direct, direct_format = load_examples(source)
    converted, converted_format = load_examples(tmp_path / "leandojo_2023.jsonl")
    assert (direct_format, converted_format) == ("leandojo-json", "proofstep-jsonl")
    assert [(e.state, e.reference) for e in direct] == [(e.state, e.reference) for e in converted]
    assert converted[2].where == f"{tmp_path / 'leandojo_2023.jsonl'}:3"
    assert len(load_examples(source, limit=3)[0]) == 3


@pytest.mark.parametrize(
    ("name", "text", "needles"),
    [
        (
            "missing-completion.jsonl",
            '{"prompt": "[GOAL]⊢ True[PROOFSTEP]", "completion": "trivial[END]"}\n'
            '\n{"prompt": "[GOAL]⊢ 1 = 1[PROOFSTEP]"}\n',
            [":3:", "'completion'"],
        ),
        (
            "bad-prompt.jsonl",
            '{"prompt": "⊢ True", "completion": "trivial[END]"}\n',
            [":1:", "'prompt'", "[GOAL]"],
        ),
        (
            "missing-tactic.json",
            json.dumps([{"full_name": "foo", "traced_tactics": [{"state_before": "⊢ True"}]}]),
            ["theorem #0", "(foo)", "traced_tactics[0]", "'tactic'"],
        ),
    ],
    ids=["jsonl-missing-field", "jsonl-bad-prompt", "leandojo-missing-field"],
)
def test_bad_data_is_a_data_error_naming_where_and_what(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, needles: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    code, _, err = llmstep_eval(capsys, "--data", str(path), "--url", closed_port_url(), "--out", "never")
    assert code == 5, err
    [line] = [line for line in err.splitlines() if line.startswith("error: ")]
    assert str(path) in line and all(n in line for n in needles), line
    assert not Path("never").exists()  # nothing was asked, so nothing was written


# ---------------------------------------------------------------- the numbers, counted by hand


class FakeClock:
    """Seconds that pass only when a suggester says so: latencies a test can count."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedSuggester:
    """Answers each state from a table after ``latency_s`` fake seconds; raises what the table says."""

    def __init__(self, table: dict[str, tuple[float, list[str] | BaseException]], clock: FakeClock) -> None:
        self.table = table
        self.clock = clock

    def suggest(self, state: str, context: str = "") -> list[str]:
        latency_s, answer = self.table[state]
        self.clock.now += latency_s
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)


LONG_STATE = "x : ℕ\n⊢ " + " ∧ ".join(["x = x"] * 20)  # 100-299 characters
HAND_TABLE: dict[str, tuple[str, float, list[str] | BaseException]] = {
    # state: (reference, latency_s, answer)
    "⊢ a": ("simp", 0.1, ["simp", "rfl"]),  # exact@1, loose@1
    "⊢ b": ("rw [h₁, h₂]", 0.2, ["rw [h₂]", "rw  [h₁,h₂]"]),  # exact at rank 2 (whitespace); loose at rank 1
    "⊢ c": ("exact h", 0.3, ["apply h", "intro x", "exact h'"]),  # no hit
    "⊢ d": ("simp only [foo] at h", 0.4, []),  # empty answer
    LONG_STATE: ("intro x", 9.9, BackendError("the hf backend failed: boom")),  # a failed request
}


def hand_run(table: dict = HAND_TABLE, ks: Sequence[int] = (1, 2, 3)) -> tuple[object, dict]:
    clock = FakeClock()
    examples = [Example(state, ref, f"hand.jsonl:{i}") for i, (state, (ref, _, _)) in enumerate(table.items(), 1)]
    suggester = ScriptedSuggester({s: (lat, ans) for s, (_, lat, ans) in table.items()}, clock)
    run = run_eval(examples, suggester, max_failure_rate=0.2, progress=False, clock=clock)
    meta = provenance(
        data="hand.jsonl",
        data_format="proofstep-jsonl",
        limit=None,
        source={"model": "scripted"},
        ks=ks,
        num_samples=3,
        decoding={"decoding": "beam"},
        max_failure_rate=0.2,
    )
    return run, summarize(run, meta)


def test_report_numbers_match_a_hand_count() -> None:
    _, report = hand_run()
    s = report["summary"]
    assert report["status"] == "complete"  # 1 failure of 5 is not more than 20%
    assert (s["n"], s["answered"], s["failures"], s["failure_rate"]) == (5, 4, 1, 1 / 5)
    # exact hits: "⊢ a" at rank 1, "⊢ b" at rank 2; the failure counts as a miss, out of all 5.
    assert s["accuracy"]["exact"] == {"1": 1 / 5, "2": 2 / 5, "3": 2 / 5}
    # loose: "rw [h₂]" matches "rw [h₁, h₂]" once lemma lists are ignored, so "⊢ b" hits at rank 1.
    assert s["accuracy"]["loose"] == {"1": 2 / 5, "2": 2 / 5, "3": 2 / 5}
    # latencies of the 4 answered requests: 0.1 0.2 0.3 0.4; p95 sits at rank 0.95 * 3 = 2.85.
    lat = s["latency_s"]
    assert lat["mean"] == pytest.approx(0.25) and lat["p50"] == pytest.approx(0.25)
    assert lat["p95"] == pytest.approx(0.3 + 0.85 * 0.1) and lat["max"] == pytest.approx(0.4)
    assert s["suggestions_per_request"] == (2 + 2 + 3 + 0) / 4
    assert s["empty_share"] == 1 / 4

    heads = report["by_tactic_head"]
    assert list(heads) == ["simp", "rw", "exact", "intro"]  # most frequent first
    assert heads["simp"]["n"] == 2 and heads["simp"]["exact"]["1"] == 1 / 2
    assert heads["rw"]["exact"] == {"1": 0.0, "2": 1.0, "3": 1.0} and heads["rw"]["loose"]["1"] == 1.0
    assert heads["intro"] == {"n": 1, "exact": {"1": 0.0, "2": 0.0, "3": 0.0}, "loose": {"1": 0.0, "2": 0.0, "3": 0.0}}
    lengths = report["by_goal_length"]
    assert list(lengths) == ["<100", "100-299"]
    assert lengths["<100"]["n"] == 4 and lengths["<100"]["exact"]["2"] == 2 / 4
    assert lengths["100-299"]["n"] == 1 and lengths["100-299"]["exact"]["1"] == 0.0
    assert report["failures"]["by_code"] == {"backend_error": 1}
    assert report["failures"]["first"][0]["where"] == "hand.jsonl:5"


def test_outputs_are_written_with_real_plots(tmp_path: Path) -> None:
    run, report = hand_run()
    files = write_report(report, run, tmp_path)
    files += write_plots(report, [r.latency_s for r in run.results if r.latency_s is not None], tmp_path)
    assert [f.name for f in files] == [
        "report.json",
        "examples.jsonl",
        "report.md",
        "accuracy_at_k.png",
        "latency_histogram.png",
        "accuracy_by_head.png",
    ]
    for png in files[3:]:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1024, png
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| exact accuracy@1 | 0.200 |" in md and "| loose accuracy@1 | 0.400 |" in md
    assert "| `rw` | 1 | 0.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in md
    rows = read_examples(tmp_path)
    assert len(rows) == 5 and rows[4]["error_code"] == "backend_error" and rows[4]["latency_s"] is None


def test_ctrl_c_keeps_a_partial_report(tmp_path: Path) -> None:
    table = dict(HAND_TABLE)
    table["⊢ c"] = ("exact h", 0.3, KeyboardInterrupt())
    run, report = hand_run(table)
    assert run.interrupted and len(run.results) == 2
    assert report["status"] == "partial" and "interrupted" in report["partial_reason"]
    assert report["provenance"]["n_examples"] == 5 and report["provenance"]["n_evaluated"] == 2
    write_report(report, run, tmp_path)
    assert "**PARTIAL REPORT**: interrupted" in (tmp_path / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("tactic", "normal", "loose", "head"),
    [
        ("rw [a,b ]", "rw [a, b]", "rw [_]", "rw"),
        ("simp only [foo,\n  bar] at h ⊢", "simp only [foo, bar] at h ⊢", "simp only [_] at h ⊢", "simp"),
        ("· exact ⟨ hp , hq ⟩", "· exact ⟨hp, hq⟩", "· exact ⟨hp, hq⟩", "exact"),
        ("apply f (g x)", "apply f (g x)", "apply f (g x)", "apply"),
        ("rw [foo (l := [1, 2])] at h", "rw [foo (l := [1, 2])] at h", "rw [_] at h", "rw"),
        ("constructor <;> simp [h]", "constructor <;> simp [h]", "constructor <;> simp [h]", "constructor"),
    ],
    ids=["rw-spacing", "simp-only-multiline", "focus-dot", "apply-parens", "nested-list", "combinator"],
)
def test_normalisation_loose_key_and_head(tactic: str, normal: str, loose: str, head: str) -> None:
    assert (normalize_tactic(tactic), loose_key(tactic), tactic_head(tactic)) == (normal, loose, head)


def test_latency_stats_of_nothing_are_empty_not_zero() -> None:
    assert latency_stats([]) == {"mean": None, "p50": None, "p95": None, "max": None}


# ---------------------------------------------------------------- failures end to end


class ExplodingBackend:
    """Answers `simp`, except for states containing BOOM, where it raises: a model that breaks mid-run."""

    name = "exploding"
    model_id = "exploding-model"
    context_window: int | None = None

    def encode(self, text: str) -> Encoding:
        return Encoding(tuple(map(ord, text)))

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, should_stop: ShouldStop = never
    ) -> list[list[Candidate]]:
        if any("BOOM" in p.text for p in prompts):
            raise RuntimeError("CUDA error: device-side assert triggered (simulated)")
        return [[Candidate(" simp", -0.1)] for _ in prompts]

    def schedules_rows(self, params: GenerationParams) -> bool:
        return False

    def close(self) -> None:
        pass


def test_a_backend_failing_mid_run_is_counted_and_past_the_limit_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Examples 3 and 7 of 10 break the model: 2 failures, 20%.
    states = [f"n : ℕ\n⊢ n + {i} = {i} + n" + (" BOOM" if i in (3, 7) else "") for i in range(1, 11)]
    data = write_pairs(tmp_path / "ten.jsonl", [(s, "simp") for s in states])
    config = ServeConfig(engine=EngineConfig(cache_size=0))
    with live_server(config, ExplodingBackend()) as url:
        common = ["--data", str(data), "--url", url, "-k", "1", "--no-progress", "--no-plots"]
        code, _, err = llmstep_eval(capsys, *common, "--out", "tolerated")
        assert code == 0, err  # 2 of 10 is not more than the default 0.2
        report = read_report(Path("tolerated"))
        s = report["summary"]
        assert (report["status"], s["n"], s["failures"]) == ("complete", 10, 2)
        assert s["accuracy"]["exact"]["1"] == 8 / 10  # the failures are misses, not dropped
        assert report["failures"]["by_code"] == {"backend_error": 2}
        assert [r["error_code"] for r in read_examples(Path("tolerated"))].count("backend_error") == 2

        code, _, err = llmstep_eval(capsys, *common, "--max-failure-rate", "0.1", "--out", "stopped")
    assert code == 4, err  # BackendError's exit code
    assert "stopped after 2 of 7 requests failed" in err and "partial report written to stopped" in err
    report = read_report(Path("stopped"))
    assert report["status"] == "partial" and report["provenance"]["n_evaluated"] == 7
    assert report["summary"]["failures"] == 2


def test_an_unreachable_server_counts_failures_and_stops_with_a_partial_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_pairs(tmp_path / "five.jsonl", [(f"⊢ {i} = {i}", "rfl") for i in range(5)])
    code, out, err = llmstep_eval(capsys, "--data", str(data), "--url", closed_port_url(), "--out", "down")
    assert code == 3, err  # ServerUnreachable's exit code
    # 2 failures out of 5 planned is past 20% whatever the rest would do: stop there.
    assert "stopped after 2 of 2 requests failed" in err and "cannot reach the llmstep server" in err
    report = read_report(Path("down"))
    assert report["status"] == "partial" and "too many failed requests" in report["partial_reason"]
    assert (report["summary"]["n"], report["summary"]["failures"]) == (2, 2)
    assert report["failures"]["by_code"] == {"server_unreachable": 2}
    assert "health_error" in report["provenance"]["source"]
    assert all((Path("down") / name).stat().st_size > 1024 for name in ("accuracy_at_k.png", "latency_histogram.png"))
    assert "(PARTIAL)" in out


def test_llmstep_eval_exit_code_in_a_subprocess(tmp_path: Path) -> None:
    if not eval_registered():
        pytest.skip("eval is not in llmstep.cli.main.COMMANDS yet")
    data = write_pairs(tmp_path / "one.jsonl", [("⊢ True", "trivial")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSTEP_")}
    r = subprocess.run(
        [sys.executable, "-m", "llmstep", "eval", "--data", str(data), "--url", closed_port_url(), "--no-plots"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: stopped after 1 of 1 requests failed")
    assert "Traceback" not in r.stderr and read_report(tmp_path / "eval-report")["status"] == "partial"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--url", "http://127.0.0.1:9"], 2, "--data"),
        (["--data", "x.jsonl"], 2, "--url"),
        (["--data", "x.jsonl", "--url", "http://127.0.0.1:9", "--decoding", "beam"], 2, "apply to --model"),
        (["--data", "x.jsonl", "--url", "http://127.0.0.1:9", "--max-failure-rate", "2"], 2, "between 0 and 1"),
        (["--data", "x.jsonl", "--url", "http://127.0.0.1:9", "-k", "0"], 2, "at least 1"),
        (["--data", "missing.jsonl", "--url", "http://127.0.0.1:9"], 5, "no such file"),
    ],
    ids=["no-data", "no-source", "decoding-with-url", "bad-rate", "bad-k", "missing-file"],
)
def test_bad_flags_say_what_to_change(
    capsys: pytest.CaptureFixture[str], args: list[str], code: int, needle: str
) -> None:
    got, _, err = llmstep_eval(capsys, *args)
    assert got == code and needle in err, err


# ---------------------------------------------------------------- --compare


def test_compare_shows_both_values_and_the_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_a, report_a = hand_run()
    perfect = {state: (ref, 0.5, [ref]) for state, (ref, _, _) in HAND_TABLE.items()}
    run_b, report_b = hand_run(perfect)
    write_report(report_a, run_a, tmp_path / "a")
    write_report(report_b, run_b, tmp_path / "b")
    code, out, err = llmstep_eval(capsys, "--compare", str(tmp_path / "a" / "report.json"), str(tmp_path / "b"))
    assert code == 0, err
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines()}
    assert rows["exact accuracy@1"][-3:] == ["0.200", "1.000", "+0.800"]
    assert rows["loose accuracy@3"][-3:] == ["0.400", "1.000", "+0.600"]
    assert rows["latency mean"][-6:] == ["250.0", "ms", "500.0", "ms", "+250.0", "ms"]
    assert rows["failure rate"][-3:] == ["0.200", "0.000", "-0.200"]
    assert out.startswith("A: scripted on hand.jsonl")


def test_compare_rejects_a_file_that_is_not_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}', encoding="utf-8")
    code, _, err = llmstep_eval(capsys, "--compare", str(other), str(other))
    assert code == 5 and "not an llmstep eval report" in err, err
