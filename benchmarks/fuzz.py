"""Fuzz every route of a real ``llmstep serve`` with 10,000+ generated requests and count the answers.

    python benchmarks/fuzz.py [--cases 10000]

The server runs the benchmark model in its own process, with small
generation limits so that valid requests stay fast. Cases come from the
server's OpenAPI spec (schemathesis: valid and invalid requests per route),
random bytes, random JSON and near-miss objects (hypothesis). A client error
must never become a 5xx; afterwards the server must still answer a good
request. Writes results/fuzz.json.
"""

from __future__ import annotations

import argparse
import collections
import time

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import bench_model, llmstep_serve, machine, server_process, write_results

POST_ROUTES = ["/", "/v1/suggest", "/generate", "/v1/completions"]
FIELDS = ["tactic_state", "prefix", "context", "num_samples", "temperature", "max_new_tokens", "input", "name", "n"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="total requests, spread over the generators")
    args = parser.parse_args()
    flags = ("--num-samples", "1", "--max-new-tokens", "8", "--limit-num-samples", "2", "--limit-new-tokens", "8")
    statuses: collections.Counter[str] = collections.Counter()
    server_errors: list[str] = []
    start = time.monotonic()
    with server_process(llmstep_serve(bench_model(), *flags)) as (url, _):
        http = httpx.Client(base_url=url, timeout=60)

        def record(kind: str, response: httpx.Response, what: object) -> None:
            statuses[f"{kind} {response.status_code}"] += 1
            if response.status_code >= 500:
                server_errors.append(f"{kind}: {response.status_code} for {str(what)[:200]}")

        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        operations = [op.ok() for op in schema.get_all_operations()]
        # hypothesis may stop a generator early once it thinks it has seen enough, so run
        # rounds (fresh random examples each time) until the requested count is reached.
        quick = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))

        def spec_cases(operation: object) -> None:
            @given(case=operation.as_strategy())  # type: ignore[attr-defined]
            @quick
            def run(case: schemathesis.Case) -> None:
                record("spec", case.call(base_url=url, timeout=60), case.body)

            run()

        @given(route=st.sampled_from(POST_ROUTES), body=st.binary(max_size=400))
        @quick
        def raw_bytes(route: str, body: bytes) -> None:
            record("bytes", http.post(route, content=body, headers={"Content-Type": "application/json"}), body)

        @given(route=st.sampled_from(POST_ROUTES), body=JSON)
        @quick
        def random_json(route: str, body: object) -> None:
            record("json", http.post(route, json=body), body)

        @given(route=st.sampled_from(POST_ROUTES), body=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))
        @quick
        def near_misses(route: str, body: object) -> None:
            record("near-miss", http.post(route, json=body), body)

        while sum(statuses.values()) < args.cases:
            for operation in operations:
                spec_cases(operation)
            for run in (raw_bytes, random_json, near_misses):
                run()
        good = http.post("/v1/suggest", json={"tactic_state": "⊢ True", "prefix": ""})
        alive = good.status_code == 200 and isinstance(good.json()["suggestions"], list)
    total = sum(statuses.values())
    elapsed = time.monotonic() - start
    print(
        f"{total} requests in {elapsed:.0f} s; 5xx answers: {len(server_errors)}; "
        f"server answered a good request afterwards: {alive}"
    )
    for key, count in sorted(statuses.items()):
        print(f"  {key:22} {count}")
    for line in server_errors[:10]:
        print("  5xx:", line)
    write_results(
        "fuzz",
        {
            "what": "generated requests against a live llmstep serve; 5xx answers must be 0",
            "requests": total,
            "server_errors": len(server_errors),
            "alive_after": alive,
            "seconds": elapsed,
            "by_generator_and_status": dict(sorted(statuses.items())),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
