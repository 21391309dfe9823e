"""Synthetic routing problems with known optimal policies for the trainer tests."""

import os

# Multi-threaded OpenBLAS is slower than one thread on the small matrix products
# of these tests, by 100x on a loaded 2-core machine. This takes effect only when
# numpy is not imported yet.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("onnx")

MODELS = ["cheap", "mid", "large"]
COSTS = np.array([1e-4, 1e-3, 1e-2])


def true_outcomes(X):
    """Return the expected quality and cost (n, 3) of every model at X.

    The mid model is good only near x1 = 0 (quadratic in x1), so a linear
    outcome model fitted where the logging policy sends it (x1 > 0) extrapolates
    wrongly to x1 < 0.
    """
    x1, x2 = X[:, 0].astype(np.float64), X[:, 1].astype(np.float64)
    cheap = np.full(X.shape[0], 0.55)
    mid = np.clip(0.95 - 0.6 * x1**2, 0.0, 1.0)
    large = 0.35 + 0.55 / (1.0 + np.exp(-3.0 * x2))
    quality = np.column_stack([cheap, mid, large])
    return quality, np.tile(COSTS, (X.shape[0], 1))


def simulate_logs(n, seed, beta=2.0, epsilon=0.2, n_features=5):
    """Return (X, chosen, propensity, quality, cost) from a biased logging policy.

    The logging policy is ``(1 - epsilon) softmax(beta s(x)) + epsilon / 3`` with
    ``s(x) = [0, 2 x1, -1]``, so the mid model serves mostly rows with x1 > 0.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(np.float32)
    scores = np.column_stack([np.zeros(n), 2.0 * X[:, 0], np.full(n, -1.0)])
    probs = np.exp(beta * scores)
    probs /= probs.sum(axis=1, keepdims=True)
    probs = (1.0 - epsilon) * probs + epsilon / 3.0
    chosen = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    chosen = np.minimum(chosen, 2)
    rows = np.arange(n)
    quality, cost = true_outcomes(X)
    observed = np.clip(quality[rows, chosen] + rng.normal(0.0, 0.1, n), 0.0, 1.0)
    return X, chosen, probs[rows, chosen], observed, cost[rows, chosen]


def true_regret(chosen, X, lam):
    """Return the mean regret of the chosen models under the true outcomes."""
    quality, cost = true_outcomes(X)
    utility = quality - lam * cost
    return float((utility.max(axis=1) - utility[np.arange(X.shape[0]), chosen]).mean())


@pytest.fixture(scope="session")
def biased_logs():
    """Return 6,000 logged rows from the biased logging policy."""
    return simulate_logs(6000, seed=0)


@pytest.fixture(scope="session")
def test_features():
    """Return 4,000 fresh feature rows for measuring true regret."""
    rng = np.random.default_rng(123)
    return rng.standard_normal((4000, 5)).astype(np.float32)
