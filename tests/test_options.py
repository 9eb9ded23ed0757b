"""One declaration per setting (llmstep.config): the flags, environment variables, help and errors derived from it.

Nothing here is mocked: each test parses a real command line through ``llmstep``'s own
parser and builds the config ``llmstep serve`` would run with, or runs ``main``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmstep.cli.main import build_parser, main
from llmstep.cli.serve import build_config
from llmstep.config import DEFAULT_MODEL, DecodingConfig, ModelConfig, PresetOptions, ServeConfig
from llmstep.errors import ConfigError
from llmstep.options import Setting, env_token, env_url, settings
from llmstep.protocol.prompt import PromptFormat
from llmstep.protocol.wire import MAX_NUM_SAMPLES

HELDOUT = Path(__file__).parent / "fixtures" / "eval" / "heldout.jsonl"
SERVE_SETTINGS = settings(ServeConfig) + settings(PresetOptions)


def serve_config(*argv: str, environ: dict[str, str] | None = None) -> ServeConfig:
    return build_config(build_parser().parse_args(["serve", *argv]), environ or {})


def help_text(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str) -> str:
    monkeypatch.setenv("COLUMNS", "2000")  # one line per usage entry and per option's help
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def usage_flags(text: str) -> set[str]:
    """The first flag of every option in the usage line (``-h`` aside), mutually exclusive ones included."""
    usage = text.split("\n\n")[0]
    return set(re.findall(r"(?:\[|\| )(--[a-z0-9-]+)", usage))


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def value_at(config: ServeConfig, path: tuple[str, ...]) -> object:
    node: object = config.model_dump()
    for part in path:
        assert isinstance(node, dict)
        node = node[part]
    return node


# ---------------------------------------------------------------- one flag per setting


def test_every_setting_has_exactly_one_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    every_flag = [flag for s in SERVE_SETTINGS for flag in s.flags]
    assert len(every_flag) == len(set(every_flag)), "two settings share a flag"
    assert len({s.dest for s in SERVE_SETTINGS}) == len(SERVE_SETTINGS)
    # serve's options are the settings' flags, one option each, and --log-level (not a config setting).
    assert usage_flags(help_text(capsys, monkeypatch, "serve")) == {s.flag for s in SERVE_SETTINGS} | {"--log-level"}


def other_value(s: Setting) -> tuple[list[str], object]:
    """Arguments that set ``s`` to a valid value other than its default, and that value as the config holds it."""
    default = s.default
    if s.cli.by_name:
        return [s.flag, "bfs-prover-v2-7b"], "bfs-prover-v2-7b"
    if isinstance(default, bool):
        return [s.flag], True
    if s.name in ("device", "dtype", "decoding"):
        value = {"device": "cpu", "dtype": "float16", "decoding": "beam"}[s.name]
        return [s.flag, value], value
    if isinstance(default, int) or s.name == "seed":
        value = 7 if default is None else int(default) - 1 if s.name.startswith("max_n") else int(default) + 1
        return [s.flag, str(value)], value
    if isinstance(default, float):
        return [s.flag, str(default / 2)], default / 2
    return [s.flag, "x1"], "x1"


@pytest.mark.parametrize("setting", settings(ServeConfig), ids=lambda s: s.key)
def test_each_flag_sets_its_own_field(setting: Setting) -> None:
    argv, expected = other_value(setting)
    config = serve_config(*argv)
    got = value_at(config, setting.path)
    if setting.cli.by_name:
        assert isinstance(config.prompt_format, PromptFormat)
        got = config.prompt_format.name
    assert got == expected
    # and every other setting keeps what it has without the flag
    plain = serve_config()
    others = [s for s in settings(ServeConfig) if s.key != setting.key and not s.key.startswith("prompt_format")]
    assert [value_at(config, s.path) for s in others] == [value_at(plain, s.path) for s in others]


def test_serve_help_shows_each_model_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = help_text(capsys, monkeypatch, "serve")
    blocks = {block.split()[0].rstrip(","): " ".join(block.split()) for block in re.split(r"\n(?=  -)", text)}
    checked = 0
    for s in settings(ServeConfig):
        default = s.default
        if default is None or default is False:
            continue
        shown = default.name if isinstance(default, PromptFormat) else str(default)
        assert re.search(r"\(default: [^)]*\b" + re.escape(shown) + r"\)", blocks[s.flag]), (s.flag, blocks[s.flag])
        checked += 1
    assert checked >= 25
    for s in SERVE_SETTINGS:
        assert s.info.description and s.info.description in blocks[s.flag]
    assert "$LLMSTEP_PORT" in blocks["--port"] and "$OPENAI_API_KEY" in blocks["--upstream-api-key"]


# ---------------------------------------------------------------- precedence


@pytest.fixture
def presets_file(tmp_path: Path) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(
        '["mine"]\nmodel = "/models/from-preset"\nkind = "causal"\ntemplate = "{state}:::{prefix}"\n'
        'source = "a test"\n["mine".decoding]\ntemperature = 0.9\n',
        encoding="utf-8",
    )
    return path


def test_decoding_and_model_precedence_flag_over_preset_over_default(presets_file: Path) -> None:
    preset = ("--presets-file", str(presets_file), "--preset", "mine")
    assert serve_config().decoding.temperature == DecodingConfig().temperature == 0.5
    assert serve_config().model.model == DEFAULT_MODEL
    from_preset = serve_config(*preset)
    assert from_preset.decoding.temperature == 0.9 and from_preset.model.model == "/models/from-preset"
    flagged = serve_config(*preset, "--temperature", "0.2", "--hf-model", "/models/from-flag")
    assert flagged.decoding.temperature == 0.2 and flagged.model.model == "/models/from-flag"


@pytest.mark.parametrize(
    ("env", "argv", "port"),
    [
        ({}, (), 6000),
        ({"LLMSTEP_PORT": "7001"}, (), 7001),
        ({"LLMSTEP_PORT": "7001"}, ("--port", "7002"), 7002),
        ({"LLMSTEP_PORT": "0"}, (), 0),
        ({"LLMSTEP_PORT": ""}, (), 6000),
    ],
    ids=["default", "env", "flag-over-env", "env-zero-is-a-port", "env-empty-is-unset"],
)
def test_port_precedence(env: dict[str, str], argv: tuple[str, ...], port: int) -> None:
    assert serve_config(*argv, environ=env).port == port


def test_environment_under_flags_for_host_token_and_upstream_key() -> None:
    env = {"LLMSTEP_HOST": "0.0.0.0", "LLMSTEP_TOKEN": "t-env", "OPENAI_API_KEY": "k-openai"}
    config = serve_config(environ=env)
    assert (config.host, config.token, config.model.upstream_api_key) == ("0.0.0.0", "t-env", "k-openai")
    config = serve_config(environ={**env, "LLMSTEP_UPSTREAM_API_KEY": "k-llmstep"})
    assert config.model.upstream_api_key == "k-llmstep"
    config = serve_config("--host", "::1", "--token", "t-flag", "--upstream-api-key", "k-flag", environ=env)
    assert (config.host, config.token, config.model.upstream_api_key) == ("::1", "t-flag", "k-flag")
    assert serve_config().host == "127.0.0.1" and serve_config().token is None


def test_the_client_finds_the_server_through_the_same_declarations() -> None:
    assert env_url({}) == "http://localhost:6000"
    assert env_url({"LLMSTEP_HOST": "gpu-box", "LLMSTEP_PORT": "0"}) == "http://gpu-box:0"
    assert env_token({"LLMSTEP_TOKEN": "t"}) == "t" and env_token({"LLMSTEP_TOKEN": ""}) is None
    with pytest.raises(ConfigError, match=r"^LLMSTEP_PORT must be an integer, got 'abc'$"):
        env_url({"LLMSTEP_PORT": "abc"})


# ---------------------------------------------------------------- errors


def test_bad_port_variable_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"^LLMSTEP_PORT must be an integer, got 'abc'$"):
        serve_config(environ={"LLMSTEP_PORT": "abc"})
    monkeypatch.setenv("LLMSTEP_PORT", "abc")
    assert "LLMSTEP_PORT" in one_line_error(capsys, ["serve", "--model", "unused"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--limit-num-samples", "0"), f"--limit-num-samples must be between 1 and {MAX_NUM_SAMPLES}, got 0"),
        (("--limit-new-tokens", "0"), "--limit-new-tokens must be between 1 and"),
        (("--request-timeout", "0"), "--request-timeout must be over 0"),
        (("--upstream-timeout", "-1"), "--upstream-timeout must be over 0"),
        (("--max-batch-rows", "0"), "--max-batch-rows must be between 1 and 4096"),
        (("--temperature", "3"), "--temperature must be between 0.0 and 2.0, got 3.0"),
        (("--num-samples", "12", "--limit-num-samples", "8"), "--num-samples, --limit-num-samples: num_samples 12"),
    ],
    ids=lambda value: value[0] if isinstance(value, tuple) else "",
)
def test_a_validation_error_names_the_flag_typed(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        serve_config(*argv)
    assert str(info.value.message).startswith(message), info.value.message


# ---------------------------------------------------------------- eval shares the declarations


def test_eval_has_serves_model_and_decoding_flags(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = settings(ModelConfig) + [s for s in settings(DecodingConfig) if s.name != "num_samples"]
    shared += settings(PresetOptions) + [s for s in settings(ServeConfig) if s.key == "prompt_format"]
    assert {s.flag for s in shared} <= usage_flags(help_text(capsys, monkeypatch, "eval"))
    args = build_parser().parse_args(
        ["eval", "--model", "m", "--preset", "bfs-prover-v2-7b", "--prompt-format", "llmstep", "--trust-remote-code"]
    )
    assert (args.model, args.preset, args.prompt_format, args.trust_remote_code) == (
        "m",
        "bfs-prover-v2-7b",
        "llmstep",
        True,
    )
    assert build_parser().parse_args(["eval", "--hf-model", "m"]).model == "m"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--prompt-format", "nope"], "unknown prompt format 'nope'"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--temperature", "9"], "--temperature must be between 0.0 and 2.0, got 9.0"),
        (["--num-samples", str(MAX_NUM_SAMPLES + 1)], f"between 1 and {MAX_NUM_SAMPLES}"),
    ],
    ids=["prompt-format", "preset", "temperature", "num-samples"],
)
def test_eval_model_flags_are_checked_before_loading(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    err = one_line_error(capsys, ["eval", "--data", str(HELDOUT), "--model", "unused", "--no-progress", *argv])
    assert needle in err


@pytest.mark.parametrize("flag", [["--preset", "bfs-prover-v2-7b"], ["--prompt-format", "llmstep"], ["--seed", "1"]])
def test_eval_still_refuses_model_flags_with_a_url(capsys: pytest.CaptureFixture[str], flag: list[str]) -> None:
    err = one_line_error(capsys, ["eval", "--data", str(HELDOUT), "--url", "http://127.0.0.1:9", *flag])
    assert "apply to --model" in err
