"""Merging fitted policies into one network that averages their logits."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from trainer import RouterTrainer
from trainer._ensemble import merge_ensemble


def _fit(seed, X, quality, cost, hidden=(8,)):
    trainer = RouterTrainer(models=["a", "b", "c"], random_state=seed, epochs=4, hidden=hidden)
    tokens = np.full(quality.shape, 100.0)
    return trainer.fit_full(X, quality, cost, output_tokens_matrix=tokens)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 6)).astype(np.float32)
    quality = (rng.random((300, 3)) < 0.5 + 0.2 * np.tanh(X[:, :3])).astype(float)
    cost = np.tile([1e-4, 1e-3, 1e-2], (300, 1))
    return X, quality, cost


def test_merged_logits_are_member_mean(data):
    """The merged network's logits equal the mean of the members' at any λ."""
    X, quality, cost = data
    members = [_fit(seed, X, quality, cost) for seed in range(3)]
    merged = merge_ensemble(members)
    for lam in (0.0, 15.0, 1e4):
        expected = np.mean([m.decision_function(X, lam) for m in members], axis=0)
        assert np.abs(merged.decision_function(X, lam) - expected).max() < 1e-4
    assert merged.hidden == (24,)


def test_merged_policy_exports(data, tmp_path):
    """The merged policy exports to ONNX and matches its numpy logits."""
    X, quality, cost = data
    merged = merge_ensemble([_fit(seed, X, quality, cost) for seed in range(2)])
    onnx_path, _ = merged.export(tmp_path)
    session = onnxruntime.InferenceSession(str(onnx_path))
    lam = np.full(X.shape[0], 30.0, dtype=np.float32)
    (logits,) = session.run(["logits"], {"embedding": X, "lam": lam})
    assert np.abs(logits - merged.decision_function(X, 30.0)).max() < 1e-4


def test_incompatible_members_rejected(data):
    """Members with other models or hidden depth raise ValueError."""
    X, quality, cost = data
    deep = _fit(0, X, quality, cost, hidden=(4, 4))
    with pytest.raises(ValueError, match="one hidden layer"):
        merge_ensemble([_fit(1, X, quality, cost), deep])
    with pytest.raises(ValueError, match="empty"):
        merge_ensemble([])
