"""Model presets: each renders exactly what its source specifies, and the seq2seq path runs for real.

The golden strings are written out by hand from each preset's cited source
(presets.toml names it), not produced by the code under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmstep.backends import Backend, GenerationParams, load_backend
from llmstep.cli.main import build_parser, main
from llmstep.cli.serve import build_config
from llmstep.config import DecodingConfig, ModelConfig, ServeConfig
from llmstep.engine import SuggestionEngine
from llmstep.errors import ConfigError
from llmstep.presets import DEFAULT_PRESET, find_prompt_format, get_preset, load_presets
from llmstep.protocol.prompt import LLMSTEP_FORMAT, Prompt, cut_at_first_stop

from support import live_server

PRESETS = load_presets()
NAMES = ", ".join(sorted(PRESETS))

# The example of the miniCTX model cards (l3lab/ntp-mathlib-*-deepseek-coder-1.3b).
STATE = "m n : ℕ\nh : Nat.Coprime m n\n⊢ Nat.gcd m n = 1"
CONTEXT = "import Mathlib.Data.Nat.Prime\n\ntheorem test_thm (m n : Nat) (h : m.Coprime n) : m.gcd n = 1 := by\n  "
PREFIX = "rw ["

GOLDEN = {
    # wellecks/llmstep python/server.py: '[GOAL]%s[PROOFSTEP]%s' % (tactic_state, prefix)
    "llmstep-pythia-2.8b": f"[GOAL]{STATE}[PROOFSTEP]rw [",
    # lean-dojo/ReProver README: tokenizer(state) is the encoder input; the prefix starts the decoder.
    "reprover-byt5-small": STATE,  # the encoder's input; the prefix starts the decoder
    # ByteDance-Seed/BFS-Prover-V1-7B and -V2-7B model cards: prompt = state + ":::".
    "bfs-prover-v1-7b": f"{STATE}:::rw [",
    "bfs-prover-v2-7b": f"{STATE}:::rw [",
    # InternLM/InternLM-Math minif2f/proofsearch_internLM2.5-StepProver.py: _prompt_function wrapped by
    # chat_template_to_prompt; NAME and PROOF_BEFORE are empty (llmstep's request has neither).
    "internlm2.5-step-prover": (
        "<|im_start|>user\n"
        "---\nNAME: \n\n"
        "---\nPROOF_BEFORE: \n\n"
        f"---\nSTATE_BEFORE: {STATE}\n\n"
        "---\nTACTIC: <|im_end|>\n"
        "<|im_start|>assistant\n"
        "rw ["
    ),
    # l3lab/ntp-mathlib-context-deepseek-coder-1.3b model card; cmu-l3/ntp-toolkit instruction_tuning.py.
    "minictx-context": (
        "/- You are proving a theorem in Lean 4.\n"
        "You are given the following information:\n"
        "- The file contents up to the current tactic, inside [CTX]...[/CTX]\n"
        "- The current proof state, inside [STATE]...[/STATE]\n"
        "\n"
        "Your task is to generate the next tactic in the proof.\n"
        "Put the next tactic inside [TAC]...[/TAC]\n"
        "-/\n"
        "[CTX]\n"
        "import Mathlib.Data.Nat.Prime\n"
        "\n"
        "theorem test_thm (m n : Nat) (h : m.Coprime n) : m.gcd n = 1 := by\n"
        "  \n"
        "[/CTX]\n"
        "[STATE]\n"
        "m n : ℕ\n"
        "h : Nat.Coprime m n\n"
        "⊢ Nat.gcd m n = 1\n"
        "[/STATE]\n"
        "[TAC]\n"
        "rw ["
    ),
    # l3lab/ntp-mathlib-st-deepseek-coder-1.3b model card; cmu-l3/ntp-toolkit instruction_tuning.py.
    "minictx-state": (
        "/- You are proving a theorem in Lean 4.\n"
        "You are given the following information:\n"
        "- The current proof state, inside [STATE]...[/STATE]\n"
        "\n"
        "Your task is to generate the next tactic in the proof.\n"
        "Put the next tactic inside [TAC]...[/TAC]\n"
        "-/\n"
        "[STATE]\n"
        "m n : ℕ\n"
        "h : Nat.Coprime m n\n"
        "⊢ Nat.gcd m n = 1\n"
        "[/STATE]\n"
        "[TAC]\n"
        "rw ["
    ),
    # wellecks/llmstep python/server_llemma.py, llmstep_prompt1: the few-shot prompt, '%s' % (tactic_state, prefix).
    "llemma-fewshot": (
        "Given the Lean 4 tactic state, suggest a next tactic.\n"
        "Here are some examples:\n"
        "\n"
        "Tactic state:\n"
        "---\n"
        "α : Type u_1\n"
        "r : α → α → Prop\n"
        "inst✝¹ : DecidableEq α\n"
        "inst✝ : IsIrrefl α r\n"
        "⊢ CutExpand r ≤ InvImage (Finsupp.Lex (rᶜ ⊓ fun x x_1 => x ≠ x_1) fun x x_1 => x < x_1) ↑toFinsupp\n"
        "---\n"
        "Next tactic:\n"
        "---\n"
        "rintro s t ⟨u, a, hr, he⟩\n"
        "---\n"
        "\n"
        "Tactic state:\n"
        "---\n"
        "ι : Type u_1\n"
        "I✝ J✝ : Box ι\n"
        "x y : ι → ℝ\n"
        "I J : WithBot (Box ι)\n"
        "⊢ ↑I = ↑J ↔ I = J\n"
        "---\n"
        "Next tactic:\n"
        "---\n"
        "simp only [Subset.antisymm_iff, ← le_antisymm_iff, withBotCoe_subset_iff]\n"
        "---\n"
        "\n"
        "Tactic state:\n"
        "---\n"
        "m n : ℕ\n"
        "h : Nat.coprime m n\n"
        "⊢ Nat.gcd m n = 1\n"
        "---\n"
        "Next tactic:\n"
        "---\n"
        "rw [← h.gcd_eq_one]\n"
        "---\n"
        "\n"
        "Tactic state:\n"
        "---\n"
        f"{STATE}\n"
        "---\n"
        "Next tactic:\n"
        "---\n"
        "rw ["
    ),
}

STOPS = {
    "llmstep-pythia-2.8b": ("[END]", "\n", "[GOAL]", "[PROOFSTEP]"),
    "reprover-byt5-small": (),
    "bfs-prover-v1-7b": (":::",),
    "bfs-prover-v2-7b": (":::",),
    "internlm2.5-step-prover": ("<|im_end|>",),
    "minictx-context": ("[/TAC]",),
    "minictx-state": ("[/TAC]",),
    "llemma-fewshot": ("---", "\n"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN), ids=sorted(GOLDEN))
def test_preset_renders_its_sources_prompt(name: str) -> None:
    fmt = PRESETS[name].prompt_format
    assert fmt.render(STATE, PREFIX, CONTEXT) == GOLDEN[name]
    assert fmt.stop == STOPS[name]
    prompt = fmt.prompt(GOLDEN[name], PREFIX)
    assert (prompt.text, prompt.decoder_prefix) == (GOLDEN[name], PREFIX if fmt.encoder_decoder else "")


def test_every_builtin_preset_has_a_golden_string_and_a_source() -> None:
    assert set(PRESETS) == set(GOLDEN)
    assert all(p.source.startswith("https://") for p in PRESETS.values())


def test_default_preset_is_llmstep_format() -> None:
    default = PRESETS[DEFAULT_PRESET]
    assert default.prompt_format == LLMSTEP_FORMAT
    assert default.model == ModelConfig().model
    assert find_prompt_format("llmstep", PRESETS) == LLMSTEP_FORMAT


def test_only_the_file_formats_use_context() -> None:
    uses = [n for n, p in sorted(PRESETS.items()) if p.prompt_format.uses_context]
    assert uses == ["llemma-fewshot", "minictx-context"]


def test_llemma_runs_the_file_as_a_second_prompt_and_drops_sorry() -> None:
    # server_llemma.py: llmstep_prompt2 is context + prefix; _filter drops '', 'sorry' and 'admit'.
    fmt = PRESETS["llemma-fewshot"].prompt_format
    few_shot, file = fmt.parts()
    assert few_shot.render(STATE, PREFIX, CONTEXT) == GOLDEN["llemma-fewshot"]
    assert file.render(STATE, PREFIX, CONTEXT) == CONTEXT + "rw ["
    assert file.needs_context() and not few_shot.needs_context()
    assert [fmt.keeps(t) for t in ("sorry", " admit ", "", "simp")] == [False, False, False, True]
    assert all(p.stop == ("---", "\n") for p in fmt.parts())


def test_reprover_output_loses_its_premise_marks() -> None:
    fmt = PRESETS["reprover-byt5-small"].prompt_format
    assert fmt.clean("rw [<a>Nat.gcd_comm</a>, <a>Nat.gcd_self</a>]") == "rw [Nat.gcd_comm, Nat.gcd_self]"


def test_bfs_prover_step_ends_where_the_card_splits() -> None:
    # The card takes decode(output).split(":::")[1]: text past a second ":::" is not the tactic.
    stop = PRESETS["bfs-prover-v2-7b"].prompt_format.stop
    assert cut_at_first_stop(" nlinarith [sq_nonneg (a - b)]:::x", stop)[0] == " nlinarith [sq_nonneg (a - b)]"


def serve_config(*argv: str) -> ServeConfig:
    return build_config(build_parser().parse_args(["serve", *argv]))


def test_serve_defaults_are_unchanged_without_a_preset() -> None:
    config = serve_config()
    assert config.model == ModelConfig()
    assert config.decoding == DecodingConfig()
    assert config.prompt_format == LLMSTEP_FORMAT


def test_preset_sets_model_backend_format_and_decoding() -> None:
    config = serve_config("--preset", "reprover-byt5-small")
    assert config.model.model == "kaiyuy/leandojo-lean4-tacgen-byt5-small"
    assert config.model.backend == "seq2seq"
    assert config.prompt_format.name == "reprover-byt5-small" and config.prompt_format.encoder_decoder
    assert config.decoding.decoding == "beam" and config.decoding.max_new_tokens == 1024


def test_flags_win_over_the_preset() -> None:
    config = serve_config("--preset", "internlm2.5-step-prover", "--model", "/models/mine", "--num-samples", "4")
    assert config.model.model == "/models/mine"
    assert config.model.trust_remote_code
    assert config.decoding.num_samples == 4 and config.decoding.decoding == "beam"
    assert config.prompt_format.name == "internlm2.5-step-prover"
    other = serve_config("--model", "/models/bfs-finetune", "--prompt-format", "bfs-prover-v2-7b")
    assert other.prompt_format.template == "{state}:::{prefix}" and other.model.backend == "hf"


def test_encoder_decoder_format_needs_the_seq2seq_backend() -> None:
    with pytest.raises(ConfigError, match="--backend seq2seq"):
        serve_config("--preset", "reprover-byt5-small", "--backend", "hf")


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


@pytest.mark.parametrize("command", ["serve", "presets"])
def test_unknown_preset_lists_the_valid_names(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--preset", "bfs-prover-v3"] if command == "serve" else ["presets", "bfs-prover-v3"]
    err = one_line_error(capsys, argv)
    assert "unknown preset 'bfs-prover-v3'" in err and NAMES in err


BAD_FILES = {
    "not-toml": '["mine"\nmodel = "x"\n',
    "missing-keys": '["mine"]\nmodel = "x"\n',
    "unknown-key": '["mine"]\nmodel = "x"\nkind = "causal"\ntemplate = "{state}{prefix}"\nsource = "s"\nstops = []\n',
    "prefix-not-last": '["mine"]\nmodel = "x"\nkind = "causal"\ntemplate = "{prefix}{state}"\nsource = "s"\n',
    "bad-kind": '["mine"]\nmodel = "x"\nkind = "rnn"\ntemplate = "{state}{prefix}"\nsource = "s"\n',
    "bad-decoding": (
        '["mine"]\nmodel = "x"\nkind = "causal"\ntemplate = "{state}{prefix}"\nsource = "s"\n'
        '["mine".decoding]\ntemperature = 9.0\n'
    ),
    "template-list-empty": '["mine"]\nmodel = "x"\nkind = "causal"\ntemplate = []\nsource = "s"\n',
    "further-template-shows-nothing": (
        '["mine"]\nmodel = "x"\nkind = "causal"\ntemplate = ["{state}{prefix}", "{prefix}"]\nsource = "s"\n'
    ),
    "seq2seq-two-templates": (
        '["mine"]\nmodel = "x"\nkind = "seq2seq"\ntemplate = ["{state}", "{context}"]\nsource = "s"\n'
    ),
}


@pytest.mark.parametrize("text", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_malformed_presets_file_is_one_line_listing_the_valid_names(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "presets.toml"
    path.write_text(text, encoding="utf-8")
    err = one_line_error(capsys, ["serve", "--presets-file", str(path), "--preset", "mine"])
    assert str(path) in err and NAMES in err


def test_missing_presets_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid presets"):
        load_presets(tmp_path / "nope.toml")


def test_a_users_presets_file_adds_a_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '# my fine-tune, prompted like BFS-Prover\n["my-prover"]\nmodel = "/models/my-prover"\nkind = "causal"\n'
        'template = "{state}:::{prefix}"\nstop = [":::"]\nsource = "my training script"\n'
        '["my-prover".decoding]\nnum_samples = 4\n',
        encoding="utf-8",
    )
    config = serve_config("--presets-file", str(path), "--preset", "my-prover")
    assert config.model.model == "/models/my-prover" and config.decoding.num_samples == 4
    assert config.prompt_format.render("⊢ p", "ex") == "⊢ p:::ex"
    assert get_preset("my-prover", load_presets(path)).source == "my training script"
    with pytest.raises(SystemExit):
        main(["presets", "--presets-file", str(path)])
    assert "my-prover" in capsys.readouterr().out


# --- the encoder-decoder backend, on a tiny T5 with ByT5's byte tokenizer, built here ---


@pytest.fixture(scope="module")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 1-layer T5 and a ByT5 tokenizer (which needs no files), saved like a user's model."""
    import torch
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=384,  # ByT5: 3 specials + 256 bytes + 125 extra ids
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    out = tmp_path_factory.mktemp("tiny-t5")
    T5ForConditionalGeneration(config).save_pretrained(out)
    ByT5Tokenizer().save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def t5_backend(tiny_t5_dir: Path) -> Iterator[Backend]:
    backend = load_backend(ModelConfig(model=str(tiny_t5_dir), backend="seq2seq", device="cpu"))
    yield backend
    backend.close()


def test_a_state_holding_the_old_separator_feeds_the_encoder_whole(t5_backend: Backend) -> None:
    """The decoder prefix is a field of its own, so no character of a state can split the prompt."""
    fmt = PRESETS["reprover-byt5-small"].prompt_format
    params = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=4, decoding="sample", stop=())
    state = "h : a\x1fb\n⊢ a"
    [[odd]] = t5_backend.generate([fmt.prompt(fmt.render(state), "")], params)
    [[encoded]] = t5_backend.generate([Prompt(state, token_ids=tuple(t5_backend.encode(state).ids))], params)
    assert odd == encoded


def test_seq2seq_prefix_starts_the_decoder_and_the_state_alone_feeds_the_encoder(t5_backend: Backend) -> None:
    """Greedy output equals a hand-rolled greedy decode from [start] + prefix bytes over the bare state."""
    import torch

    model, tok = t5_backend.model, t5_backend.tokenizer  # type: ignore[attr-defined]
    fmt = PRESETS["reprover-byt5-small"].prompt_format
    params = GenerationParams(num_samples=1, temperature=0.0, max_new_tokens=6, decoding="sample", stop=())
    [[cand]] = t5_backend.generate([fmt.prompt(fmt.render(STATE, PREFIX), PREFIX)], params)

    forced = [0, *tok.encode(PREFIX, add_special_tokens=False)]
    ids = list(forced)
    encoder_ids = tok(STATE, return_tensors="pt").input_ids
    with torch.inference_mode():
        for _ in range(6):
            logits = model(input_ids=encoder_ids, decoder_input_ids=torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
            if ids[-1] in (0, 1):  # pad or </s> end the step
                break
    continuation = ids[len(forced) :]
    if continuation and continuation[-1] in (0, 1):
        continuation = continuation[:-1]
    assert cand.text == tok.decode(continuation, skip_special_tokens=False)
    assert len(cand.token_logprobs) >= 1


@pytest.mark.parametrize("decoding", ["beam", "sample"])
def test_seq2seq_suggestions_keep_the_prefix(t5_backend: Backend, decoding: str) -> None:
    fmt = PRESETS["reprover-byt5-small"].prompt_format
    defaults = DecodingConfig(decoding=decoding, num_samples=3, max_new_tokens=8, seed=0)
    engine = SuggestionEngine(t5_backend, defaults, fmt)
    try:
        result = asyncio.run(engine.suggest(STATE, PREFIX))
    finally:
        engine.close()
    assert result.items
    assert all(s.tactic.startswith(PREFIX) and "<a>" not in s.tactic for s in result.items)


def test_server_serves_the_presets_format(t5_backend: Backend) -> None:
    config = serve_config("--preset", "reprover-byt5-small", "--num-samples", "2", "--max-new-tokens", "4")
    with live_server(config, t5_backend) as url:
        health = httpx.get(url + "/health").json()
        reply = httpx.post(url + "/", json={"tactic_state": STATE, "prefix": PREFIX}, timeout=60)
    assert health["prompt_format"] == "reprover-byt5-small" and health["backend"] == "seq2seq"
    assert reply.status_code == 200
    assert all(s.startswith(PREFIX) for s in reply.json()["suggestions"])


@pytest.mark.parametrize(
    ("env", "argv", "port"),
    [
        ({"LLMSTEP_PORT": "0"}, (), 0),
        ({"LLMSTEP_PORT": "7001"}, (), 7001),
        ({}, (), 6000),
        ({"LLMSTEP_PORT": "7001"}, ("--port", "0"), 0),
    ],
    ids=["env-zero-is-any-free-port", "env", "default", "flag-zero-over-env"],
)
def test_port_precedence_and_zero(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: tuple[str, ...], port: int
) -> None:
    """``LLMSTEP_PORT=0`` means any free port, as ``--port 0`` does; it was read as unset and became 6000."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert serve_config(*argv).port == port
