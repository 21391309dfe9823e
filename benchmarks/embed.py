"""Measure the bundled embedder: latency, cold start, peak memory, import time.

    python benchmarks/embed.py [--repeats 200] [--threads 2]

Prints one line per figure. Latency is wall time of Embedder.embed around
prompts of about 20, 256 and 2,000 word pieces, one at a time and in batches
of 32, after warm-up. Cold start and import time run in fresh processes.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from smartllm import Embedder

SENTENCE = "The quarterly report shows revenue growth in every region we serve. "


def make_prompt(embedder: Embedder, tokens: int) -> str:
    """Return a prompt of about ``tokens`` word pieces."""
    text = "Summarise this: "
    while embedder.count_tokens([text])[0] < tokens:
        text += SENTENCE
    return text


def time_calls(fn, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def cold_start_seconds(threads: int, runs: int = 5) -> float:
    code = (
        "import time; t = time.perf_counter(); from smartllm import Embedder; "
        f"Embedder(threads={threads}).embed(['hello world']); "
        "print(time.perf_counter() - t)"
    )
    values = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        values.append(float(out.stdout.strip()))
    return statistics.median(values)


def import_seconds(runs: int = 5) -> float:
    values = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import smartllm"],
            capture_output=True,
            text=True,
        )
        last = [line for line in out.stderr.splitlines() if line.endswith("| smartllm")]
        cumulative_us = int(re.split(r"\s*\|\s*", last[-1])[1])
        values.append(cumulative_us / 1e6)
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    embedder = Embedder(threads=args.threads)
    results: dict[str, float | str] = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"python {platform.python_version()}",
        "threads": args.threads,
    }
    for tokens in (20, 256, 2000):
        prompt = make_prompt(embedder, tokens)
        embedder.embed([prompt])
        p50, p99 = time_calls(lambda p=prompt: embedder.embed([p]), args.repeats)
        results[f"single_{tokens}_p50_ms"] = round(p50, 2)
        results[f"single_{tokens}_p99_ms"] = round(p99, 2)
        batch = [prompt] * 32
        embedder.embed(batch)
        repeats = max(5, args.repeats // 20)
        p50, p99 = time_calls(lambda b=batch: embedder.embed(b), repeats)
        results[f"batch32_{tokens}_p50_ms"] = round(p50, 1)
        results[f"batch32_{tokens}_p99_ms"] = round(p99, 1)

    results["peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    results["cold_start_to_first_vector_s"] = round(cold_start_seconds(args.threads), 3)
    results["import_smartllm_s"] = round(import_seconds(), 3)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
