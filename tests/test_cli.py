"""The ``llmstep`` command, run as users run it: in a subprocess, against live servers."""

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmstep.backends.base import Candidate
from llmstep.config import ServeConfig
from llmstep.protocol.prompt import PromptFormat

from doubles import FailingBackend, ScriptedBackend
from support import free_port, live_server, llmstep, one_line_error, own_pairs, serve_process

STATE, TACTIC = own_pairs()[1]


def test_suggest_prints_one_per_line(beam_server_url: str) -> None:
    r = llmstep("suggest", STATE, "--url", beam_server_url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == TACTIC and len(lines) >= 2


def test_suggest_reads_multiline_state_from_stdin(server_url: str) -> None:
    r = llmstep("suggest", "-", "--prefix", "exact", "--url", server_url, stdin=STATE + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == TACTIC


def test_suggest_json(server_url: str) -> None:
    r = llmstep("suggest", STATE, "--json", "--url", server_url)
    assert r.returncode == 0
    assert '"tactic": "exact Nat.succ_le_succ h"' in r.stdout and '"elapsed_ms"' in r.stdout


def test_suggest_finds_the_server_from_the_environment(server_url: str) -> None:
    port = server_url.rsplit(":", 1)[1]
    r = llmstep("suggest", STATE, env={"LLMSTEP_HOST": "127.0.0.1", "LLMSTEP_PORT": port})
    assert r.returncode == 0 and r.stdout.splitlines()[0] == TACTIC


def test_suggest_with_server_down_says_what_to_run() -> None:
    r = llmstep("suggest", STATE, "--url", f"http://127.0.0.1:{free_port()}")
    assert "llmstep serve" in one_line_error(r, 3)


def test_suggest_timeout() -> None:
    with socket.socket() as silent:  # accepts connections into its backlog, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        r = llmstep("suggest", STATE, "--url", f"http://127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.5")
    assert "did not answer within 0.5 s" in one_line_error(r, 3)


def test_suggest_shows_the_servers_own_error() -> None:
    with live_server(ServeConfig(), FailingBackend(failures=1)) as url:
        r = llmstep("suggest", "⊢ True", "--url", url)
    assert "device-side assert" in one_line_error(r, 4)


def test_suggest_rejects_bad_values_before_sending(server_url: str) -> None:
    r = llmstep("suggest", STATE, "--url", server_url, "--num-samples", "0")
    assert "num_samples" in one_line_error(r, 2)


def test_client_imports_no_model_code() -> None:
    code = (
        "import sys; from llmstep.cli.main import build_parser; build_parser(); import llmstep.client; "
        "heavy = [m for m in ('torch', 'transformers', 'fastapi', 'datasets') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_serve_missing_model_is_one_line(tmp_path: Path) -> None:
    r = llmstep("serve", "--model", str(tmp_path / "absent"), "--port", "0", env={"HF_HUB_OFFLINE": "1"})
    line = one_line_error(r, 3)
    assert "absent" in line and "does not exist" in line and "--model DIR" in line


def test_serve_directory_without_a_model_is_one_line(tmp_path: Path) -> None:
    r = llmstep("serve", "--model", str(tmp_path), "--port", "0", env={"HF_HUB_OFFLINE": "1"})
    assert "config.json" in one_line_error(r, 3)


def test_serve_unreachable_hub_id_is_one_line() -> None:
    r = llmstep("serve", "--model", "nobody/no-such-model", "--port", "0", env={"HF_HUB_OFFLINE": "1"})
    assert "nobody/no-such-model" in one_line_error(r, 3)


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        ((), {"LLMSTEP_PORT": "sixthousand"}, "LLMSTEP_PORT must be an integer"),
        ((), {"LLMSTEP_PORT": "70000"}, "between 0 and 65535"),
        (("--port", "70000"), {}, "--port"),
        (("--num-samples", "0"), {}, "--num-samples"),
        (("--backend", "nope"), {}, "unknown backend"),
    ],
    ids=["port-env-text", "port-env-range", "port-flag-range", "num-samples", "backend"],
)
def test_serve_bad_config_is_one_line(args: tuple[str, ...], env: dict[str, str], needle: str) -> None:
    r = llmstep("serve", "--model", "unused", *args, env={"HF_HUB_OFFLINE": "1", **env})
    assert needle in one_line_error(r, 2)


def test_serve_busy_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = llmstep("serve", "--model", "unused", "--port", str(taken.getsockname()[1]))
    assert "pick another --port" in one_line_error(r, 2)


def test_serve_end_to_end_and_sigterm(tiny_model_dir: Path) -> None:
    with serve_process("--model", str(tiny_model_dir), "--decoding", "beam", "--num-samples", "4") as (url, proc):
        r = httpx.post(url + "/", json={"tactic_state": STATE, "prefix": "", "context": ""}, timeout=30)
        assert r.json()["suggestions"][0] == TACTIC
        assert httpx.get(url + "/health").json()["model"] == str(tiny_model_dir)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
    assert re.search(r"POST / 200 \d+ suggestions [\d.]+ ms", rest)


def test_suggest_sends_the_context_file(tmp_path: Path) -> None:
    source = tmp_path / "Foo.lean"
    source.write_text("theorem helper : 1 = 1 := rfl\n-- ∀ ℕ, near the cursor\n", encoding="utf-8")
    backend = ScriptedBackend([Candidate(" exact helper", -0.1)])
    fmt = PromptFormat(name="ctx-test", template="{context}[GOAL]{state}[PROOFSTEP]{prefix}", stop=("\n",))
    with live_server(ServeConfig(prompt_format=fmt), backend) as url:
        r = llmstep("suggest", "⊢ 1 = 1", "--url", url, "--context-file", str(source))
    assert r.returncode == 0 and r.stdout.strip() == "exact helper"
    (prompt,), _ = backend.calls[0]
    assert prompt == source.read_text(encoding="utf-8") + "[GOAL]⊢ 1 = 1[PROOFSTEP]"


def test_suggest_with_a_missing_context_file_is_one_line(tmp_path: Path) -> None:
    r = llmstep("suggest", "⊢ p", "--url", "http://127.0.0.1:9", "--context-file", str(tmp_path / "nope.lean"))
    assert "nope.lean" in one_line_error(r, 2)


@pytest.mark.parametrize(
    ("missing", "args", "extra"),
    [
        ("uvicorn", ("serve", "--model", "unused"), "serve"),
        ("transformers", ("train", "--from-scratch", "tiny", "--data", "d.jsonl", "--output", "o"), "train"),
    ],
    ids=["serve-without-uvicorn", "train-without-transformers"],
)
def test_a_light_install_says_which_extra_to_add(
    tmp_path: Path, missing: str, args: tuple[str, ...], extra: str
) -> None:
    # Shadow the package with one that cannot be imported, as on `pip install llmstep` without extras.
    (tmp_path / missing).mkdir()
    (tmp_path / missing / "__init__.py").write_text(
        f'raise ModuleNotFoundError("No module named {missing}", name="{missing}")\n'
    )
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "[GOAL]x[PROOFSTEP]", "completion": "rfl[END]"}\n')
    r = llmstep(*[str(tmp_path / a) if a in ("d.jsonl", "o") else a for a in args], env={"PYTHONPATH": str(tmp_path)})
    assert f"pip install 'llmstep[{extra}]'" in one_line_error(r, 2)
