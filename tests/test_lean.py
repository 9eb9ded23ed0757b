"""Runs the Lean package's tests in ``tests/lean`` with a real Lean toolchain.

Each ``tests/lean/*.lean`` file pins its expected messages with ``#guard_msgs``, so
``lake env lean FILE`` exits 0 exactly when every message matches. Files named ``e2e_*.lean`` run
against a live ``llmstep serve`` with a tiny model trained on ``tests/lean/pairs.jsonl`` (the goals
those files produce, paired with the tactics the model should answer); their server's address
reaches Lean through ``LLMSTEP_HOST``/``LLMSTEP_PORT``, which the ``llmstep.url`` option's default
reads. The other files need no server; ``server_down.lean``, ``try_offline.lean`` and
``silent_server.lean`` need ``curl``, and the last gets, in ``LLMSTEP_SILENT_URL``, a loopback port
that accepts connections and never answers.

The whole module skips when ``lake`` is not on PATH.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("lake") is None, reason="lake not on PATH; Lean tests need a Lean toolchain"
)

ROOT = Path(__file__).resolve().parents[1]
LEAN_TESTS = ROOT / "tests" / "lean"
PAIRS = LEAN_TESTS / "pairs.jsonl"
TINY_MODEL = ROOT / "tests" / "tiny_model.py"

LEAN_FILES = sorted(LEAN_TESTS.glob("*.lean"))
OFFLINE_FILES = [path for path in LEAN_FILES if not path.name.startswith("e2e_")]
SERVER_FILES = [path for path in LEAN_FILES if path.name.startswith("e2e_")]
#: Offline files that still run curl (against a closed port).
NEEDS_CURL = {"server_down.lean", "silent_server.lean", "try_offline.lean"}

BUILD_TIMEOUT_S = 1800
TRAIN_TIMEOUT_S = 1800
HEALTH_TIMEOUT_S = 300
LEAN_FILE_TIMEOUT_S = 600


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``LLMSTEP_*`` variable, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLMSTEP_")}
    env.update(extra)
    return env


def _run_lean(path: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["lake", "env", "lean", str(path.relative_to(ROOT))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=LEAN_FILE_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"`lake env lean {path.relative_to(ROOT)}` exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait_until_healthy(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Polls ``GET /health`` until it answers 200; fails with the server's log otherwise."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"llmstep serve exited with code {server.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(f"llmstep serve was not healthy within {HEALTH_TIMEOUT_S} s:\n{_tail(log)}")


@pytest.fixture(scope="session")
def lean_build() -> None:
    """``lake build``: the library and its examples."""
    result = subprocess.run(["lake", "build"], cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, f"lake build failed:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def llmstep_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Trains the tiny model on ``pairs.jsonl``, serves it on a free port, yields the port."""
    if shutil.which("curl") is None:
        pytest.skip("curl not on PATH; the llmstep tactic talks to the server with curl")
    assert TINY_MODEL.exists(), f"{TINY_MODEL.relative_to(ROOT)} is missing; it trains the tiny model"
    model_dir = tmp_path_factory.mktemp("tiny-model")
    trained = subprocess.run(
        [sys.executable, str(TINY_MODEL), "--pairs", str(PAIRS), "--out", str(model_dir)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TRAIN_TIMEOUT_S,
    )
    assert trained.returncode == 0, f"tiny_model.py failed:\n{trained.stdout}{trained.stderr}"

    port = _free_port()
    serve = [sys.executable, "-m", "llmstep", "serve", "--model", str(model_dir), "--port", str(port)]
    # Greedy decoding (temperature 0) gives the one answer the model memorised, every time.
    serve += ["--temperature", "0", "--seed", "0"]
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            serve,
            cwd=ROOT,
            env=_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(f"http://127.0.0.1:{port}", server, log)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def silent_url() -> Iterator[str]:
    """A loopback port that never answers: the kernel completes the handshake, nobody reads."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("path", OFFLINE_FILES, ids=lambda path: path.name)
def test_lean_file(path: Path, lean_build: None, silent_url: str) -> None:
    if path.name in NEEDS_CURL and shutil.which("curl") is None:
        pytest.skip(f"curl not on PATH; {path.name} runs curl")
    _run_lean(path, _env(LLMSTEP_SILENT_URL=silent_url))


@pytest.mark.slow
@pytest.mark.parametrize("path", SERVER_FILES, ids=lambda path: path.name)
def test_lean_file_against_server(path: Path, lean_build: None, llmstep_port: int) -> None:
    _run_lean(path, _env(LLMSTEP_HOST="127.0.0.1", LLMSTEP_PORT=str(llmstep_port)))
