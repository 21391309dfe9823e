"""The router that ships in smartllm/assets: integrity and golden routes."""

from __future__ import annotations

import json
import warnings

import pytest

from smartllm import Client, Embedder
from smartllm._features import FEATURE_NAMES, FEATURE_SET
from smartllm._paths import asset_path, file_sha256

MOST_EXPENSIVE = "gpt-4o-2024-05-13"
# The two pool models with the highest mean quality over the routing matrix.
STRONGEST = {"gpt-4o-2024-05-13", "gemini/gemini-1.5-pro"}
COMPETITION_MATH = (
    "Let n be the smallest positive integer such that n! is divisible by 2^100. "
    "Find the remainder when n is divided by 1000."
)
# Expected most likely model of the policy (no exploration) per prompt and
# willingness to pay in USD. Regenerate after `python -m trainer.pretrain`.
GOLDEN = [
    ("What is the capital of France?", 1.0, "gpt-4o-2024-05-13"),
    ("What is the capital of France?", 0.001, "gemini/gemini-1.5-flash"),
    ("def f(text):\n    return text[::-1].upper()\nassert f('abc') == ??", 0.05,
     "gpt-4o-2024-05-13"),
    ("A landowner conveyed land to his nephew by a deed that was never recorded. "
     "Which of the following best describes the nephew's interest? (A) fee simple "
     "(B) life estate (C) easement (D) license", 0.05, "gemini/gemini-1.5-pro"),
    (COMPETITION_MATH, 0.0001, "gemini/gemini-1.5-flash"),
]


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(asset_path("router.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Client:
    home = tmp_path_factory.mktemp("home")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return Client(exploration=0.0, min_explore=0.0, log_path=home / "log.sqlite3")


def _top(decision) -> str:
    return max(decision.probabilities, key=decision.probabilities.get)


def test_manifest_matches_onnx_file(manifest):
    """router.json records the sha256 of the router.onnx beside it."""
    assert manifest["onnx_sha256"] == file_sha256(asset_path("router.onnx"))


def test_manifest_matches_embedder(manifest):
    """router.json names the bundled embedder and the client's feature set."""
    assert manifest["embedder_sha256"] == Embedder().sha256
    assert manifest["embedder_sha256"] == file_sha256(asset_path("embedder.onnx"))
    assert manifest["features"] == FEATURE_SET
    assert manifest["input_dim"] == 384 + len(FEATURE_NAMES)


def test_manifest_records_test_regret(manifest):
    """router.json carries the held-out regret per λ against the baselines."""
    test = manifest["metrics"]["test"]
    assert len(test["lambda"]) == len(manifest["lambda_grid"])
    assert len(test["regret"]) == len(test["lambda"])
    assert len(test["regret_best_single"]) == len(test["lambda"])
    assert test["n_test"] > 1000


def test_pool_is_priced_and_diverse(manifest):
    """The pool has six or more models, three providers and a 30x price span."""
    models = manifest["models"]
    prices = manifest["prices"]["per_model"]
    providers = {m.split("/")[0] if "/" in m else "openai" for m in models}
    per_token = [prices[m]["input_per_token"] + prices[m]["output_per_token"] for m in models]
    assert len(models) >= 6
    assert len(providers) >= 3
    assert max(per_token) / min(per_token) >= 30


def test_greeting_at_high_cost_sensitivity(client):
    """A greeting at a tiny willingness to pay never goes to the priciest model."""
    for greeting in ("hi", "Hello!", "hey there, how are you?", "good morning"):
        decision = client.route(greeting, willingness_to_pay=0.0001)
        assert _top(decision) != MOST_EXPENSIVE
        assert decision.probabilities[MOST_EXPENSIVE] < 0.01


def test_competition_math_at_zero_lambda(client):
    """A hard competition problem with only a budget (λ = 0) goes to a strongest model."""
    decision = client.route(COMPETITION_MATH, budget=1.0)
    assert decision.lam == 0
    assert _top(decision) in STRONGEST


@pytest.mark.parametrize(("prompt", "willingness_to_pay", "expected"), GOLDEN)
def test_golden_routes(client, prompt, willingness_to_pay, expected):
    """Fixed prompts at fixed λ keep their recorded most likely model."""
    decision = client.route(prompt, willingness_to_pay=willingness_to_pay)
    assert _top(decision) == expected
