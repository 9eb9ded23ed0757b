"""``llmstep serve``: load a model and answer suggestion requests over HTTP.

A preset (``--preset``, default ``llmstep-pythia-2.8b``) supplies the model, the
backend for its architecture, its prompt format and its decoding defaults;
any flag given explicitly wins over the preset, and the preset over llmstep's
defaults.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import socket
import sys
from typing import Any

from llmstep.config import (
    DEFAULT_HOST,
    DEFAULT_MODEL,
    DEFAULT_PORT,
    DecodingConfig,
    EngineConfig,
    ModelConfig,
    ServeConfig,
    env_host,
    env_token,
    env_upstream_api_key,
    resolve_port,
)
from llmstep.errors import ConfigError
from llmstep.presets import DEFAULT_PRESET, find_prompt_format, get_preset, load_presets

__all__ = ["register"]

log = logging.getLogger("llmstep.serve")

#: Config fields whose flag is not simply the field name in kebab case.
_FLAGS = {
    "engine.request_timeout_s": "--request-timeout",
    "engine.max_num_samples": "--limit-num-samples",
    "engine.max_new_tokens": "--limit-new-tokens",
    "model.upstream_timeout_s": "--upstream-timeout",
}


def register(sub: Any) -> None:
    """Add ``serve`` to the subcommands."""
    defaults = DecodingConfig()
    p = sub.add_parser(
        "serve",
        help="load a model and serve suggestions over HTTP",
        description="Load a causal LM and answer llmstep, /v1/suggest and Lean Copilot requests.",
    )
    p.add_argument(
        "--preset",
        default=None,
        help=f"named model with its prompt format and decoding defaults (default {DEFAULT_PRESET}); "
        "see `llmstep presets`",
    )
    p.add_argument("--presets-file", default=None, help="TOML file of extra presets (schema: docs/presets.md)")
    p.add_argument(
        "--model",
        "--hf-model",
        dest="model",
        default=None,
        help=f"hub id or local model directory (default: the preset's, {DEFAULT_MODEL} for the default preset)",
    )
    p.add_argument(
        "--prompt-format",
        default=None,
        help="prompt format of another preset, by its name (default: the preset's own)",
    )
    p.add_argument(
        "--backend",
        default=None,
        help="generation engine: hf (transformers), seq2seq (encoder-decoder), ct2, vllm, openai "
        "(default: the preset's, hf for causal models)",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=None,
        help="run model code from the hub repo (some presets need it; only for repos you trust)",
    )
    p.add_argument("--host", default=None, help=f"address to bind (default $LLMSTEP_HOST or {DEFAULT_HOST})")
    p.add_argument(
        "--port", type=int, default=None, help=f"port (default $LLMSTEP_PORT or {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    p.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto")
    p.add_argument("--compute-type", default="auto", help="ct2 compute type: int8 (auto), int8_float32, int16, ...")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs to shard the model over (vllm)")
    p.add_argument("--upstream-url", default=None, help="OpenAI-compatible server to forward to (openai backend)")
    p.add_argument(
        "--upstream-model", default=None, help="model name at the upstream; key from $LLMSTEP_UPSTREAM_API_KEY"
    )
    p.add_argument(
        "--upstream-timeout", type=float, default=60.0, help="seconds to wait for the upstream server (default 60)"
    )
    # Decoding flags default to None: unset, the preset's value applies, then llmstep's.
    p.add_argument(
        "--num-samples", type=int, default=None, help=f"sequences per request (default {defaults.num_samples})"
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=None, help=f"longest tactic in tokens (default {defaults.max_new_tokens})"
    )
    p.add_argument(
        "--temperature", type=float, default=None, help=f"sampling temperature (default {defaults.temperature})"
    )
    p.add_argument("--decoding", choices=["sample", "beam"], default=None, help=f"default {defaults.decoding}")
    p.add_argument("--seed", type=int, default=None, help="seed sampling, for reproducible answers")
    engine = EngineConfig()
    p.add_argument("--cache-size", type=int, default=engine.cache_size, help="answers cached (0: no cache)")
    p.add_argument(
        "--batch-window-ms", type=float, default=engine.batch_window_ms, help="wait this long to batch requests"
    )
    p.add_argument("--max-batch-size", type=int, default=engine.max_batch_size, help="requests per backend call")
    model = ModelConfig()
    p.add_argument(
        "--max-batch-rows",
        type=int,
        default=model.max_batch_rows,
        help=f"sequences decoded together, hf (default {model.max_batch_rows})",
    )
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=model.max_batch_tokens,
        help=f"KV positions held together, hf (default {model.max_batch_tokens})",
    )
    p.add_argument(
        "--request-timeout", type=float, default=engine.request_timeout_s, help="seconds before a request gets 504"
    )
    p.add_argument(
        "--token",
        default=None,
        help="require 'Authorization: Bearer TOKEN' on every route but /health (default $LLMSTEP_TOKEN)",
    )
    p.add_argument("--max-in-flight", type=int, default=64, help="more concurrent requests get 503 (default 64)")
    p.add_argument("--limit-num-samples", type=int, default=engine.max_num_samples, help="largest num_samples allowed")
    p.add_argument("--limit-new-tokens", type=int, default=engine.max_new_tokens, help="largest max_new_tokens allowed")
    p.add_argument(
        "--max-state-chars",
        type=int,
        default=engine.max_state_chars,
        help="longer states lose trailing goals, then early hypotheses",
    )
    p.add_argument("--refuse-long-states", action="store_true", help="answer 413 to long states instead of cutting")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger bodies get 413 (default 1 MiB)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> ServeConfig:
    """Flags over environment over preset over defaults, validated in one place."""
    from pydantic import ValidationError

    presets = load_presets(args.presets_file)
    preset = get_preset(args.preset or DEFAULT_PRESET, presets)
    prompt_format = preset.prompt_format
    if args.prompt_format is not None:
        prompt_format = find_prompt_format(args.prompt_format, presets)
    flags = {
        "num_samples": args.num_samples,
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        "decoding": args.decoding,
        "seed": args.seed,
    }
    decoding = {**preset.decoding, **{k: v for k, v in flags.items() if v is not None}}
    trust = preset.trust_remote_code if args.trust_remote_code is None else args.trust_remote_code
    try:
        return ServeConfig(
            model=ModelConfig(
                model=args.model or preset.model,
                backend=args.backend or preset.backend,
                trust_remote_code=trust,
                device=args.device,
                dtype=args.dtype,
                compute_type=args.compute_type,
                tensor_parallel_size=args.tensor_parallel_size,
                upstream_url=args.upstream_url,
                upstream_model=args.upstream_model,
                upstream_api_key=env_upstream_api_key(),
                upstream_timeout_s=args.upstream_timeout,
                max_batch_rows=args.max_batch_rows,
                max_batch_tokens=args.max_batch_tokens,
            ),
            decoding=DecodingConfig(**decoding),
            engine=EngineConfig(
                cache_size=args.cache_size,
                batch_window_ms=args.batch_window_ms,
                max_batch_size=args.max_batch_size,
                request_timeout_s=args.request_timeout,
                max_num_samples=args.limit_num_samples,
                max_new_tokens=args.limit_new_tokens,
                max_state_chars=args.max_state_chars,
                refuse_long_states=args.refuse_long_states,
            ),
            host=args.host or env_host() or DEFAULT_HOST,
            port=resolve_port(args.port),
            max_body_bytes=args.max_body_bytes,
            max_in_flight=args.max_in_flight,
            token=args.token or env_token(),
            prompt_format=prompt_format,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a check across fields: its message names the flags
            raise ConfigError(first["msg"].removeprefix("Value error, ")) from None
        where = ".".join(str(part) for part in first["loc"])
        flag = _FLAGS.get(where, "--" + str(first["loc"][-1]).replace("_", "-"))
        raise ConfigError(f"{flag}: {first['msg']}") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def bind(host: str, port: int) -> socket.socket:
    """Open the listening socket ourselves, so a busy port is a clear error and port 0 works."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    """Load the model, then serve until interrupted."""
    config = build_config(args)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sock = bind(config.host, config.port)  # before the slow load: a busy port fails fast
    if not config.token and not is_loopback(config.host):
        log.warning(
            "listening on %s without a token: anyone who can reach this port can use the model; "
            "set --token or LLMSTEP_TOKEN",
            config.host,
        )

    import uvicorn

    from llmstep.backends import load_backend
    from llmstep.server import create_app

    log.info(
        "loading %s on the %s backend, prompt format %s",
        config.model.model,
        config.model.backend,
        config.prompt_format.name,
    )
    backend = load_backend(config.model)
    try:
        app = create_app(config, backend)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        log.info(
            "serving %s on http://%s:%d (POST /, /v1/suggest, /generate; GET /health)", backend.model_id, shown, port
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app, log_config=None, access_log=False, log_level=args.log_level, timeout_graceful_shutdown=30
            )
        )
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the
        # handler it found. Make that handler a no-op so a clean stop exits 0.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        server.run(sockets=[sock])
    finally:
        backend.close()
        sock.close()
    return 0
