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
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any

from llmstep.config import DecodingConfig, EngineConfig, ModelConfig, PresetOptions, ServeConfig
from llmstep.errors import ConfigError
from llmstep.options import add_flags, config_error, env_values, flag_values, merge, settings
from llmstep.presets import DEFAULT_PRESET, find_prompt_format, get_preset, load_presets

__all__ = ["build_config", "register"]

log = logging.getLogger("llmstep.serve")


def register(sub: Any) -> None:
    """Add ``serve`` to the subcommands; its flags come from the config models (``llmstep.options``)."""
    p = sub.add_parser(
        "serve",
        help="load a model and serve suggestions over HTTP",
        description="Load a causal LM and answer llmstep, /v1/suggest and Lean Copilot requests. "
        "A flag wins over its environment variable, that over the preset, that over llmstep's default.",
    )
    presets = p.add_argument_group("preset", PresetOptions.__doc__)
    add_flags(presets, PresetOptions, defaults={"preset": DEFAULT_PRESET})
    add_flags(presets, ServeConfig, only=("prompt_format",))
    add_flags(p.add_argument_group("model", ModelConfig.__doc__), ModelConfig)
    add_flags(p.add_argument_group("decoding", DecodingConfig.__doc__), DecodingConfig)
    # ServeConfig's own settings, beside its groups (model, decoding, engine) and the prompt format above.
    server = [s.key for s in settings(ServeConfig) if len(s.path) == 1 and s.key != "prompt_format"]
    add_flags(p.add_argument_group("server", "Where to listen, and who may ask."), ServeConfig, only=server)
    add_flags(p.add_argument_group("engine", EngineConfig.__doc__), EngineConfig)
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log verbosity (default: info)",
    )
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> ServeConfig:
    """Flags over environment over preset over defaults, validated in one place."""
    from pydantic import ValidationError

    presets = load_presets(args.presets_file)
    preset = get_preset(args.preset or DEFAULT_PRESET, presets)
    from_preset = {
        "model": {"model": preset.model, "backend": preset.backend, "trust_remote_code": preset.trust_remote_code},
        "decoding": preset.decoding,
        "prompt_format": preset.prompt_format,
    }
    flags = flag_values(args, ServeConfig)
    if "prompt_format" in flags:  # the flag names a preset (or a format); its format is the value
        flags["prompt_format"] = find_prompt_format(flags["prompt_format"], presets)
    try:
        return ServeConfig.model_validate(merge(from_preset, env_values(ServeConfig, environ), flags))
    except ValidationError as exc:
        raise config_error(exc, ServeConfig) from None


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
