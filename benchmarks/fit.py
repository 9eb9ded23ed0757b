"""Fitting a long state to the window: from one encoding (the engine's way) ÷ counting every candidate cut.

    python benchmarks/fit.py [--rounds 5]

The baseline is what the engine did before: ``shorten_state`` asking for an exact token count of each
candidate cut (about 17 encodings of the whole prompt), then encoding the chosen prompt for the backend.
The contender is ``engine.fit.fit_prompt``. Both run in this process, alternating, on multi-goal states
of 4k to 48k characters built from the runtime cases' goals, with the benchmark model's tokenizer
(window 2048, 128 tokens kept for the answer). Writes results/fit.json.
"""

from __future__ import annotations

import argparse

from common import alternate, bench_model, machine, runtime_cases, summary, write_results
from llmstep.backends import load_backend
from llmstep.backends.base import Encoding
from llmstep.config import ModelConfig
from llmstep.engine.fit import fit_prompt
from llmstep.protocol.goals import shorten_state
from llmstep.protocol.prompt import LLMSTEP_FORMAT

SIZES = (4_000, 16_000, 48_000)
BUDGET = 2048 - 128


def long_state(chars: int) -> str:
    """A state of about ``chars`` characters: the runtime cases' goals, their hypotheses repeated."""
    goals = [case["tactic_state"] for case in runtime_cases()]
    main = goals[0].split("\n")
    hypotheses = [line for goal in goals for line in goal.split("\n") if line and not line.startswith("⊢")]
    state = "\n".join(hypotheses[: len(hypotheses) // 2] + main)
    while len(state) < chars:
        state += "\n\n" + "\n".join([*hypotheses[: len(hypotheses) // 3], "⊢ " + main[-1].removeprefix("⊢ ")])
    return state[:chars] if "\n\n" not in state[:chars] else state[: state.rfind("\n\n", 0, chars)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    backend = load_backend(ModelConfig(model=str(bench_model()), device="cpu"))
    encodings = {"counting": 0, "one encoding": 0}

    def counted(name: str) -> object:
        def encode(text: str) -> Encoding:
            encodings[name] += 1
            return backend.encode(text)

        return encode

    fit_encode = counted("one encoding")

    def count(text: str) -> int:
        """The count the engine used: ids only, no offsets."""
        encodings["counting"] += 1
        return len(backend.tokenizer(text)["input_ids"])  # type: ignore[attr-defined]

    def counting(state: str) -> object:
        kept = shorten_state(state, lambda s: count(LLMSTEP_FORMAT.render(s.text)) <= BUDGET)
        return count(LLMSTEP_FORMAT.render(kept.text))  # the backend encoded the prompt again

    def one_encoding(state: str) -> object:
        return fit_prompt(LLMSTEP_FORMAT, state, "", "", BUDGET, fit_encode)

    rows = []
    for size in SIZES:
        state = long_state(size)
        for name in encodings:
            encodings[name] = 0
        times = alternate({"counting": counting, "one encoding": one_encoding}, [state], args.rounds)
        calls = {name: n // (args.rounds + 1) for name, n in encodings.items()}
        base, new = summary(times["counting"]), summary(times["one encoding"])
        rows.append(
            {
                "state_chars": len(state),
                "counting": base,
                "one_encoding": new,
                "encodings_per_request": calls,
                "speedup_mean": base["mean_ms"] / new["mean_ms"],
            }
        )
        print(
            f"{len(state):>7} chars: counting {base['mean_ms']:7.1f} ms ({calls['counting']} encodings), "
            f"one encoding {new['mean_ms']:6.1f} ms ({calls['one encoding']}), {rows[-1]['speedup_mean']:.1f}x"
        )
    backend.close()
    write_results("fit", {"machine": machine(), "budget_tokens": BUDGET, "rows": rows})


if __name__ == "__main__":
    main()
