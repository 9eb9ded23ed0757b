"""Helpers for tests: where the real data is, the project's own pairs, and a live server."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from llmstep.backends import Backend
from llmstep.config import ServeConfig

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_dir() -> Path | None:
    """``$LLMSTEP_SHARED_DIR``, else ``../shared`` beside the repository; None when absent."""
    path = Path(os.environ.get("LLMSTEP_SHARED_DIR") or REPO.parent / "shared")
    return path if (path / "data").is_dir() else None


def require_shared() -> Path:
    """The shared data folder, or skip the test saying why."""
    path = shared_dir()
    if path is None:
        pytest.skip("real data not found: set LLMSTEP_SHARED_DIR or put shared/ beside the repository")
    return path


def own_pairs() -> list[tuple[str, str]]:
    """The project's own (state, tactic) pairs; the tests assert on these."""
    lines = (FIXTURES / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    return [(r["state"], r["tactic"]) for r in map(json.loads, lines) if r]


def real_pairs(limit: int = 4, max_state_chars: int = 200) -> list[tuple[str, str]]:
    """A few short steps from llmstep's miniF2F search traces (MIT, wellecks/llmstep), if present."""
    root = shared_dir()
    if root is None:
        return []
    pairs: list[tuple[str, str]] = []
    for path in sorted((root / "data/llmstep-benchmarks/minif2f-search-traces").glob("*.json")):
        for result in json.loads(path.read_text(encoding="utf-8"))["results"]:
            for attempt in result.get("attempt_results", []):
                for step in attempt.get("trace", []):
                    if len(step["state_before"]) <= max_state_chars and len(pairs) < limit:
                        pairs.append((step["state_before"], step["tactic"]))
    return pairs


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    """Return once ``condition()`` holds, checking every millisecond; fail after ``timeout_s``.

    For conditions on another thread's state (a loop's counters) that no event signals: the wait
    ends on the condition itself, never on a guessed duration.
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)  # yield the GIL to the thread being watched


@contextmanager
def live_server(
    config: ServeConfig, backend: Backend | None = None, graceful_shutdown_s: float | None = None
) -> Iterator[str]:
    """Serve ``create_app(config, backend)`` with uvicorn in a thread on 127.0.0.1; yields its URL.

    ``graceful_shutdown_s``: how long uvicorn waits for requests in flight when the block ends
    before it cancels them (None: it waits for them).
    """
    import uvicorn

    from llmstep.cli.serve import bind
    from llmstep.server import create_app

    sock = bind("127.0.0.1", 0)
    app = create_app(config, backend)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=graceful_shutdown_s)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def llmstep(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 60):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSTEP_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llmstep", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_error(result: subprocess.CompletedProcess, code: int) -> str:
    """The error line, checking it is the last thing printed and that no traceback came with it."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1
    return lines[-1]


@contextmanager
def serve_process(*args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``llmstep serve`` in a subprocess; yields its URL once it says where it listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSTEP_")} | {"HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmstep", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        log = ""
        while True:
            ready, _, _ = select.select([proc.stderr], [], [], 60)
            line = proc.stderr.readline() if ready else ""
            log += line
            if match := re.search(r"serving .* on (http://\S+)", line):
                proc.startup_log = log  # type: ignore[attr-defined]
                break
            if not line:
                raise AssertionError(f"server did not start:\n{log}")
        yield match.group(1), proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


#: A state the looping model (conftest's ``looping_model_dir``) answers with a tactic that repeats itself.
LOOP_STATE = "x r : ℝ\nhxr : |x| < r\n⊢ |x| ≤ r"
#: A state it answers with ``simp`` or with the looping tactic.
MIXED_STATE = "x : ℝ\nhx : |x| < 1\n⊢ |x| ≤ 1"
LOOP_TACTIC = "have : " + "hxr.abs := " * 40
