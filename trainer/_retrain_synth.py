"""Synthetic request logs for the retrain benchmark and tests.

Rows follow the client's schema: 392-wide float16 router features, a random
draw from an exploring logging policy with its propensity, token counts,
cost and, for a share of rows, a feedback score. Each prompt belongs to one
of a few latent clusters, and each model's expected quality depends on the
cluster, so a router that reads the features can beat every single model.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np

from smartllm._embedder import Embedder
from smartllm._features import FEATURE_NAMES, FEATURE_SET
from smartllm._store import REQUEST_COLUMNS, LogStore

N_CLUSTERS = 6
EMBEDDING_DIM = 384


def synthetic_models(n_models: int) -> dict[str, tuple[float, float]]:
    """Return model names with (input, output) USD per token, spread over 30x in price."""
    factors = np.geomspace(1.0, 30.0, n_models)
    return {
        f"openai/synthetic-{i}": (1e-7 * f, 4e-7 * f) for i, f in enumerate(factors)
    }


def write_synthetic_log(
    path: Path,
    n_rows: int,
    n_models: int = 8,
    feedback_share: float = 0.8,
    seed: int = 0,
    embedder_sha256: str | None = None,
    policy_version: str = "synthetic",
) -> dict[str, tuple[float, float]]:
    """Write ``n_rows`` logged requests to a new log at ``path``; return the model prices."""
    rng = np.random.default_rng(seed)
    prices = synthetic_models(n_models)
    models = list(prices)
    embedder_sha256 = embedder_sha256 or Embedder().sha256

    centres = rng.standard_normal((N_CLUSTERS, EMBEDDING_DIM))
    cluster = rng.integers(0, N_CLUSTERS, n_rows)
    embedding = centres[cluster] + 0.7 * rng.standard_normal((n_rows, EMBEDDING_DIM))
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    shape = rng.random((n_rows, len(FEATURE_NAMES))) * 0.3
    shape[:, 0] = np.log1p(rng.integers(5, 400, n_rows)) / 5.0
    features = np.hstack([embedding, shape]).astype("<f2")

    # Quality rises with price on average, and one cheap model is best on each cluster.
    base = np.linspace(0.45, 0.8, n_models)
    bonus = np.zeros((N_CLUSTERS, n_models))
    bonus[np.arange(N_CLUSTERS), rng.integers(0, n_models // 2, N_CLUSTERS)] = 0.35
    expected = np.clip(base[None] + bonus[cluster] - 0.1 * (cluster[:, None] % 2), 0, 1)

    scores = rng.standard_normal((n_rows, n_models)) * 0.8 - np.log(base * 10)[None]
    policy = np.exp(scores - scores.max(axis=1, keepdims=True))
    policy /= policy.sum(axis=1, keepdims=True)
    probabilities = 0.9 * policy + 0.1 / n_models
    draws = (rng.random(n_rows)[:, None] > probabilities.cumsum(axis=1)).sum(axis=1)
    chosen = np.minimum(draws, n_models - 1)
    rows = np.arange(n_rows)
    quality = rng.random(n_rows) < expected[rows, chosen]

    input_tokens = rng.integers(10, 800, n_rows)
    output_tokens = rng.integers(20, 600, n_rows)
    price_in = np.array([prices[m][0] for m in models])
    price_out = np.array([prices[m][1] for m in models])
    cost = input_tokens * price_in[chosen] + output_tokens * price_out[chosen]
    has_feedback = rng.random(n_rows) < feedback_share

    now = time.time()
    created = now - 86400.0 * rng.random(n_rows)
    store = LogStore(path)
    connection = store.connection()
    names = [name for name, _ in REQUEST_COLUMNS]
    insert = (
        f"INSERT INTO requests ({', '.join(names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    allowed = json.dumps(models)
    ids = [uuid.uuid4().hex for _ in range(n_rows)]
    with connection:
        connection.executemany(
            insert,
            (
                _record(
                    ids[i], created[i], policy_version, embedder_sha256,
                    features[i].tobytes(), allowed, models, probabilities[i],
                    int(chosen[i]), int(input_tokens[i]), int(output_tokens[i]),
                    float(cost[i]),
                )
                for i in range(n_rows)
            ),
        )
        connection.executemany(
            "INSERT INTO feedback (request_id, score, source, created_at) VALUES (?, ?, ?, ?)",
            (
                (ids[i], float(quality[i]), "synthetic", created[i] + 1.0)
                for i in np.flatnonzero(has_feedback)
            ),
        )
    store.close()
    return prices


def _record(
    request_id, created, version, embedder, blob, allowed, models, probabilities,
    chosen, input_tokens, output_tokens, cost,
):
    model = models[chosen]
    values = {
        "id": request_id,
        "created_at": float(created),
        "policy_version": version,
        "embedder_sha256": embedder,
        "features": FEATURE_SET,
        "embedding": blob,
        "prompt_sha256": request_id,
        "lam": 20.0,
        "allowed_models": allowed,
        "probabilities": json.dumps(
            {m: round(float(p), 6) for m, p in zip(models, probabilities, strict=True)}
        ),
        "predictions": "{}",
        "chosen_model": model,
        "propensity": float(probabilities[chosen]),
        "served_model": model,
        "fallback_chain": json.dumps([model]),
        "over_budget": 0,
        "session_pinned": 0,
        "stream": 0,
        "status": "ok",
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "tokens_estimated": 0,
        "cost": cost,
        "predicted_cost": cost,
        "routing_ms": 1.0,
    }
    return tuple(values.get(name) for name, _ in REQUEST_COLUMNS)
