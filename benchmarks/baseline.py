"""Generation the way llmstep's original server does it: the baseline every speed figure is divided by.

The original server (wellecks/llmstep ``python/server.py``) runs one
``generate`` per temperature with ``num_return_sequences`` samples and no stop
string, so its samples run to ``max_new_tokens`` (128) whatever they say,
then cuts each text at ``[END]``; it serves one request at a time. This module
reproduces that behaviour on the same model the benchmarks serve, so that the
ratios compare decoding strategies, not models.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

TEMPERATURES = (0.5,)
NUM_SAMPLES = 10
MAX_NEW_TOKENS = 128


class BaselineGenerator:
    """A causal LM generating like the original llmstep server."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def suggest(self, tactic_state: str, prefix: str) -> list[str]:
        """Tactics for one request: every temperature, every sample, 128 new tokens."""
        prompt = f"[GOAL]{tactic_state}[PROOFSTEP]{prefix}"
        input_ids = self.tokenizer.encode(prompt, return_tensors="pt")
        texts: list[str] = []
        with self.torch.inference_mode():
            for temperature in TEMPERATURES:
                out = self.model.generate(
                    input_ids,
                    max_new_tokens=MAX_NEW_TOKENS,
                    # llmstep's Pythia was tuned without an end-of-text after [END], so its samples
                    # run on into invented examples until the 128-token cap. Our model was tuned
                    # with one; forcing the full length reproduces the original's cost.
                    min_new_tokens=MAX_NEW_TOKENS,
                    do_sample=True,
                    temperature=temperature,
                    num_return_sequences=NUM_SAMPLES,
                    pad_token_id=self.tokenizer.eos_token_id,
                    return_dict_in_generate=True,
                    output_scores=True,
                )
                continuations = out.sequences[:, input_ids.shape[1] :]
                decoded = self.tokenizer.batch_decode(continuations, skip_special_tokens=False)
                texts.extend(prefix + text.split("[END]")[0] for text in decoded)
        return list(dict.fromkeys(t.strip() for t in texts if t.strip()))


def serve_baseline(generator: BaselineGenerator) -> tuple[str, HTTPServer]:
    """The original's protocol (POST / → suggestions) on a one-request-at-a-time server (not started)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = json.dumps({"suggestions": generator.suggest(body["tactic_state"], body.get("prefix", ""))})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.encode())))
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args: Any) -> None:
            pass

    class OneAtATime(HTTPServer):  # not ThreadingHTTPServer: requests are answered one at a time
        request_queue_size = 128  # but waiting clients queue rather than being reset

    server = OneAtATime(("127.0.0.1", 0), Handler)
    return f"http://127.0.0.1:{server.server_address[1]}", server


def main() -> None:
    """``python benchmarks/baseline.py MODEL_DIR``: serve the baseline until killed; prints its URL."""
    import sys

    url, server = serve_baseline(BaselineGenerator(Path(sys.argv[1])))
    print(f"serving baseline on {url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
