"""Measure the client's own overhead per request: everything but the LLM call.

For prompts of about 20 and 256 WordPiece tokens, times in milliseconds:
  embed      the embedder alone (Embedder.embed), measured in a separate call
  routing    embedding, router ONNX run and sampling (Client._prepare_call)
  log write  one row inserted into the SQLite log (Client._write_log)
  overhead   routing plus log write

Uses the bundled router when present, else a linear test router over seven
models built with smartllm.testing.build_router (same input width, so the
ONNX cost differs from a trained MLP). No model is called and no network is
used. Run:

    python benchmarks/route.py --requests 300
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from smartllm import Client  # noqa: E402
from smartllm._calls import CallOutcome  # noqa: E402
from smartllm._router import bundled_router_dir  # noqa: E402

POOL_PRICES = {
    "gpt-4o-2024-05-13": (5e-6, 1.5e-5),
    "gemini/gemini-1.5-pro": (3.5e-6, 1.05e-5),
    "gemini/gemini-1.5-flash": (7.5e-8, 3e-7),
    "together_ai/meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo": (8.8e-7, 8.8e-7),
    "together_ai/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo": (1.8e-7, 1.8e-7),
    "deepseek/deepseek-chat": (2.8e-7, 4.2e-7),
    "mistral/open-mixtral-8x7b": (7e-7, 7e-7),
}

SHORT = "Write a Python function that checks whether a string is a palindrome, ignoring case."
LONG_SENTENCE = (
    "The quarterly report shows revenue growth in every region, driven by new "
    "customers in the enterprise segment and lower churn among small businesses. "
)


def _prompt_with_tokens(client: Client, base: str, target: int) -> str:
    text = base
    while client._embedder.count_tokens([text])[0] < target:
        text += LONG_SENTENCE
    words = text.split(" ")
    while client._embedder.count_tokens([" ".join(words)])[0] > target:
        words.pop()
    return " ".join(words)


def _percentiles(samples: list[float]) -> str:
    values = np.array(samples)
    return f"p50 {np.percentile(values, 50):6.2f} ms   p99 {np.percentile(values, 99):6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per prompt")
    parser.add_argument("--threads", type=int, default=None, help="embedder threads")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="smartllm-bench-"))
    os.environ["SMARTLLM_HOME"] = str(workdir / "home")
    if (bundled_router_dir() / "router.onnx").is_file():
        router, source = None, "bundled router"
    else:
        from smartllm.testing import build_router

        router = build_router(workdir / "router", list(POOL_PRICES), prices=POOL_PRICES)
        source = "linear test router (no bundled router found)"

    client = Client(router=router, embed_threads=args.threads, random_state=0)
    client._pool_state()
    prompts = {
        "20 tokens": _prompt_with_tokens(client, SHORT, 20),
        "256 tokens": _prompt_with_tokens(client, SHORT + " " + LONG_SENTENCE * 20, 256),
    }
    for prompt in prompts.values():
        for _ in range(20):
            client._prepare_call(prompt, None, None, None, None, None, None, None, False, {})

    timings: dict[str, dict[str, list[float]]] = {
        name: {"embed": [], "routing": [], "log": [], "overhead": []} for name in prompts
    }
    for _ in range(args.requests):
        for name, prompt in prompts.items():  # interleaved, so drift hits both
            start = time.perf_counter()
            client._embedder.embed([prompt])
            timings[name]["embed"].append((time.perf_counter() - start) * 1000)

            start = time.perf_counter()
            call = client._prepare_call(
                prompt, None, None, None, None, None, None, None, False, {}
            )
            routed = time.perf_counter()
            outcome = CallOutcome(None, call.order[0], [call.order[0].name], {})
            client._write_log(
                call, served=outcome.served.name, chain=outcome.chain, status="ok",
                input_tokens=20, output_tokens=200, estimated=False, cost=0.001,
                latency=0.5, error=None,
            )
            logged = time.perf_counter()
            timings[name]["routing"].append((routed - start) * 1000)
            timings[name]["log"].append((logged - routed) * 1000)
            timings[name]["overhead"].append((logged - start) * 1000)

    print(f"smartllm client overhead, {args.requests} requests per prompt, {source}")
    print(
        f"cpu count {os.cpu_count()}, embedder threads {client._embedder.threads}, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    for name, parts in timings.items():
        print(f"{name}:")
        for part in ("embed", "routing", "log", "overhead"):
            print(f"  {part:<9} {_percentiles(parts[part])}")
    client.close()


if __name__ == "__main__":
    main()
