"""Tests of the exported quality and output-token heads."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime

from trainer import RouterTrainer
from trainer._heads import fit_heads


def _table(rng, n=600, d=5):
    X = rng.standard_normal((n, d))
    logit = np.stack([2.0 * X[:, 0], -2.0 * X[:, 0]], axis=1)
    quality = (rng.random((n, 2)) < 1 / (1 + np.exp(-logit))).astype(float)
    tokens = np.stack(
        [np.full(n, 50.0), np.exp(4.0 + 0.5 * X[:, 1])], axis=1
    ) * np.exp(0.1 * rng.standard_normal((n, 2)))
    return X, quality, np.round(tokens)


def test_quality_head_stays_in_unit_interval_and_ranks():
    """The logistic quality head predicts inside (0, 1) and follows the signal."""
    rng = np.random.default_rng(0)
    X, quality, tokens = _table(rng)
    heads = fit_heads(X, quality, tokens)
    far = np.zeros((2, X.shape[1]))
    far[0, 0], far[1, 0] = 5.0, -5.0
    predicted = heads.predict(far)["quality"]
    assert (predicted > 0).all()
    assert (predicted < 1).all()
    assert predicted[0, 0] > predicted[0, 1]
    assert predicted[1, 1] > predicted[1, 0]


def test_tokens_head_positive_and_multiplicative():
    """The tokens head is never negative and tracks a tenfold difference."""
    rng = np.random.default_rng(1)
    X, quality, tokens = _table(rng)
    heads = fit_heads(X, quality, tokens)
    predicted = heads.predict(X)["output_tokens"]
    assert (predicted >= 0).all()
    ratio = np.median(predicted[:, 1]) / np.median(predicted[:, 0])
    assert 0.7 * ratio < np.median(tokens[:, 1]) / np.median(tokens[:, 0]) < 1.3 * ratio


def test_missing_entries_are_ignored():
    """NaN entries do not enter the fit: a model seen on few rows still fits."""
    rng = np.random.default_rng(2)
    X, quality, tokens = _table(rng)
    quality[100:, 1] = np.nan
    tokens[100:, 1] = np.nan
    heads = fit_heads(X, quality, tokens)
    assert np.isfinite(heads.quality_coef).all()
    assert np.isfinite(heads.tokens_coef).all()


def test_full_feedback_export_uses_heads(tmp_path):
    """A full-feedback router exports the sigmoid and log1p heads, matching numpy."""
    rng = np.random.default_rng(3)
    X, quality, tokens = _table(rng)
    cost = tokens * np.array([1e-6, 1e-5])
    trainer = RouterTrainer(models=["a", "b"], random_state=0, epochs=3)
    trainer.fit_full(X.astype(np.float32), quality, cost, output_tokens_matrix=tokens)
    onnx_path, json_path = trainer.export(tmp_path)
    session = onnxruntime.InferenceSession(str(onnx_path))
    X32 = X[:20].astype(np.float32)
    quality_out, tokens_out = session.run(
        ["quality", "output_tokens"], {"embedding": X32, "lam": np.zeros(20, np.float32)}
    )
    Xs = (X32 - trainer.feature_mean_) / trainer.feature_scale_
    expected = trainer.heads_.predict(Xs)
    assert np.abs(quality_out - expected["quality"]).max() < 1e-5
    assert np.abs(tokens_out - expected["output_tokens"]).max() < 1e-3
    assert json.loads(json_path.read_text())["output_tokens_source"] == "fitted"
