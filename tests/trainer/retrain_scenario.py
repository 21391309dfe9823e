"""A two-model routing scenario for the retrain tests, served by the local test server.

``openai/alpha`` answers arithmetic prompts well and ``openai/beta`` answers
writing prompts well; :func:`grade` scores an answer by whether the right
model wrote it. Prices are tiny, so quality dominates the utility at every λ
of the default grid.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np

from smartllm import _versions
from smartllm._cli import main
from smartllm.testing import OpenAIServer, build_router

POOL = ["openai/alpha", "openai/beta"]
# (input, output) USD per token.
PRICES = {"openai/alpha": (1e-8, 4e-8), "openai/beta": (2e-8, 8e-8)}
ANSWERS = {"alpha": "ALPHA computed the number 42", "beta": "BETA wrote a gentle poem"}
GOOD_SCORE, BAD_SCORE = 0.9, 0.1
NOUNS = ["river", "autumn", "city", "ocean", "mountain", "library", "winter", "garden"]


def is_arithmetic(prompt: str) -> bool:
    """Return True for the prompts that openai/alpha answers well."""
    return prompt.startswith("Compute")


def grade(prompt: str, text: str) -> float:
    """Score an answer: high when the model suited to the prompt's kind wrote it."""
    wanted = "ALPHA" if is_arithmetic(prompt) else "BETA"
    return GOOD_SCORE if text.startswith(wanted) else BAD_SCORE


def make_prompts(count: int, seed: int) -> list[str]:
    """Return alternating arithmetic and writing prompts."""
    rng = np.random.default_rng(seed)
    prompts = []
    for i in range(count):
        if i % 2 == 0:
            a, b, c = rng.integers(10, 999), rng.integers(10, 99), rng.integers(1, 50)
            prompts.append(f"Compute {a} * {b} + {c}.")
        else:
            prompts.append(f"Write a short poem about the {NOUNS[rng.integers(8)]} at dusk.")
    return prompts


def pool_entries(server: OpenAIServer) -> dict[str, dict]:
    """Return the client pool pointed at the local server, with explicit prices."""
    return {
        model: {
            "api_base": server.url,
            "api_key": "test-key",
            "price": {"input_per_token": PRICES[model][0], "output_per_token": PRICES[model][1]},
        }
        for model in POOL
    }


def install_test_router(seed: int = 0) -> str:
    """Install an untrained linear router for the pool and activate it; return its version."""
    staged = _versions.staging_directory()
    build_router(staged, POOL, quality={m: 0.5 for m in POOL}, prices=PRICES, seed=seed)
    return _versions.install_version(staged).name


def expected_utility(client, prompts: list[str]) -> float:
    """Return the mean expected score of the client's routing distribution on prompts.

    Uses the exact probabilities of each decision, so sampling adds no noise.
    Cost is left out because the prices make it negligible.
    """
    total = 0.0
    for prompt in prompts:
        decision = client.route(prompt)
        for model, probability in decision.probabilities.items():
            text = ANSWERS[model.split("/", 1)[1]]
            total += probability * grade(prompt, text)
    return total / len(prompts)


def run_cli(*args: str) -> tuple[int, str]:
    """Run the smartllm command line in process; return the exit code and stdout."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(args))
    return code, buffer.getvalue()


def run_retrain(*args: str) -> dict:
    """Run ``smartllm retrain --json`` quickly and return the parsed report."""
    code, output = run_cli(
        "retrain", "--json", "--no-plot", "--min-feedback", "50", "--bootstrap", "300", *args
    )
    assert code == 0, output
    return json.loads(output)
