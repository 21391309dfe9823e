"""Doubly robust (DR) pseudo-outcomes and off-policy evaluation.

Symbols follow the trainer's method: for row i and model t,

    A_i(t) = m_a(x_i, t) + 1[t = t_i] (a_i - m_a(x_i, t)) / max(p_i, p_min)
    C_i(t) = m_c(x_i, t) + 1[t = t_i] (c_i - m_c(x_i, t)) / max(p_i, p_min)
    Y_i(t; λ) = A_i(t) - λ C_i(t)

with quality in [0, 1], cost in USD and λ in quality points per USD. Keeping A
and C apart makes every utility target exactly affine in λ. A boolean ``mask``
(n, K) marks the entries that exist in full-feedback tables with missing models.
Masked-out entries never enter a value or a loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PolicyValue:
    """DR value estimate with a percentile bootstrap confidence interval.

    Fields are floats when λ was a scalar and arrays of shape (L,) otherwise.
    ``value`` is in utility units (quality points minus λ times USD).
    """

    lam: np.ndarray | float
    value: np.ndarray | float
    ci_low: np.ndarray | float
    ci_high: np.ndarray | float
    std_error: np.ndarray | float
    confidence: float


WEIGHTINGS = ("clip", "shrink")


def dr_weights(propensity, p_min=0.02, weighting="clip", shrink=25.0):
    """Return the weight of each logged row's correction term, shape (n,).

    ``"clip"`` gives ``w = 1 / max(p, p_min)``, at most ``1 / p_min``.
    ``"shrink"`` applies the optimistic shrinkage ``s w / (w^2 + s)`` of Su,
    Dimakopoulou, Krishnamurthy and Dudik ("Doubly robust off-policy
    evaluation with shrinkage", ICML 2020) to the clipped weight. The result is
    at most ``sqrt(s) / 2`` (reached at ``w = sqrt(s)``), and rows with a small
    propensity lean on the outcome model instead of their own residual.
    """
    if not 0.0 < p_min <= 1.0:
        raise ValueError(f"p_min must be in (0, 1], got {p_min!r}.")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
    weight = 1.0 / np.maximum(np.asarray(propensity, dtype=np.float64), p_min)
    if weighting == "shrink":
        if not shrink > 0:
            raise ValueError(f"shrink must be > 0, got {shrink!r}.")
        weight = shrink * weight / (weight**2 + shrink)
    return weight


def dr_pseudo_outcomes(
    chosen,
    quality,
    cost,
    propensity,
    quality_pred,
    cost_pred,
    p_min=0.02,
    weighting="clip",
    shrink=25.0,
):
    """Return the DR pseudo-outcomes ``(A, C)``, each of shape (n, K).

    ``quality_pred`` and ``cost_pred`` are cross-fitted outcome predictions
    (n, K). ``propensity`` is the probability with which the logging policy chose
    ``chosen``. It is clipped from below at ``p_min``, which bounds the weight of
    one row at ``1 / p_min`` and adds bias where the true propensity is smaller.
    ``weighting="shrink"`` further shrinks the weights (see :func:`dr_weights`):
    less variance, and bias wherever the outcome model is wrong.
    """
    rows = np.arange(chosen.shape[0])
    weight = dr_weights(propensity, p_min, weighting, shrink)
    A = np.array(quality_pred, dtype=np.float64)
    C = np.array(cost_pred, dtype=np.float64)
    A[rows, chosen] += (quality - A[rows, chosen]) * weight
    C[rows, chosen] += (cost - C[rows, chosen]) * weight
    return A, C


def ipw_pseudo_outcomes(
    chosen,
    quality,
    cost,
    propensity,
    n_models,
    p_min=0.02,
    weighting="clip",
    shrink=25.0,
):
    """Return inverse-propensity pseudo-outcomes: DR with the outcome model set to 0."""
    zeros = np.zeros((chosen.shape[0], n_models))
    return dr_pseudo_outcomes(
        chosen, quality, cost, propensity, zeros, zeros, p_min, weighting, shrink
    )


def utility(A, C, lam):
    """Return ``Y = A - λ C`` with shape (n, K) for scalar λ or (L, n, K)."""
    lam = np.asarray(lam, dtype=np.float64)
    if lam.ndim == 0:
        return A - lam * C
    return A[None] - lam[:, None, None] * C[None]


def _row_values(policy_probs, A, C, lam_values, mask):
    """Return per-row policy utilities (L, n) for λ values of shape (L,)."""
    probs = np.asarray(policy_probs, dtype=np.float64)
    if probs.ndim == 2:
        probs = np.broadcast_to(probs, (lam_values.size,) + probs.shape)
    if probs.shape != (lam_values.size,) + A.shape:
        raise ValueError(
            f"policy_probs must have shape {A.shape} for a scalar lam or "
            f"{(lam_values.size,) + A.shape} for {lam_values.size} λ values, "
            f"got {probs.shape}."
        )
    Y = utility(A, C, lam_values)
    if mask is not None:
        # Mass on a missing model is spread over the models that exist.
        probs = np.where(mask[None], probs, 0.0)
        total = probs.sum(axis=-1, keepdims=True)
        uniform = mask[None] / mask.sum(axis=-1, keepdims=True)[None]
        probs = np.where(total > 0, probs / np.where(total > 0, total, 1.0), uniform)
        Y = np.where(mask[None], Y, 0.0)
    return np.einsum("lnk,lnk->ln", probs, Y)


def _bootstrap(row_values, n_boot, random_state, confidence):
    """Return mean, CI bounds and bootstrap standard error of row means, per λ."""
    n_lambdas, n = row_values.shape
    mean = row_values.mean(axis=1)
    if n_boot <= 0:
        nan = np.full(n_lambdas, np.nan)
        return mean, nan, nan, nan
    rng = np.random.default_rng(random_state)
    chunk = max(1, min(n_boot, 4_000_000 // max(n * n_lambdas, 1)))
    draws = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        indices = rng.integers(0, n, size=(size, n))
        draws.append(row_values[:, indices].mean(axis=2))
    draws = np.concatenate(draws, axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail], axis=1)
    return mean, low, high, draws.std(axis=1, ddof=1)


def _package(lam, lam_values, stats, confidence):
    mean, low, high, std_error = stats
    if np.ndim(lam) == 0:
        return PolicyValue(
            float(lam_values[0]),
            float(mean[0]),
            float(low[0]),
            float(high[0]),
            float(std_error[0]),
            confidence,
        )
    return PolicyValue(lam_values, mean, low, high, std_error, confidence)


def dr_value(
    policy_probs,
    A,
    C,
    lam,
    n_boot=1000,
    random_state=None,
    mask=None,
    confidence=0.95,
):
    """Estimate ``V(π; λ) = mean_i Σ_t π(t | x_i, λ) Y_i(t; λ)`` with a bootstrap CI.

    ``policy_probs`` is (n, K) for a scalar ``lam`` (or a policy that ignores λ)
    and (L, n, K) for ``lam`` of shape (L,). A deterministic policy is a one-hot
    matrix. Rows are resampled with replacement ``n_boot`` times, and the CI is
    the percentile interval at ``confidence``.
    """
    lam_values = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    rows = _row_values(policy_probs, A, C, lam_values, mask)
    stats = _bootstrap(rows, n_boot, random_state, confidence)
    return _package(lam, lam_values, stats, confidence)


def dr_value_difference(
    policy_probs,
    baseline_probs,
    A,
    C,
    lam,
    n_boot=1000,
    random_state=None,
    mask=None,
    confidence=0.95,
):
    """Estimate ``V(policy) - V(baseline)`` with a paired bootstrap CI.

    Both policies are evaluated on the same resampled rows, so the interval is
    much narrower than the difference of two separate intervals. A lower bound
    above 0 means the policy (e.g. a retrained candidate) beats the baseline (e.g.
    the current router) at that λ.
    """
    lam_values = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    rows = _row_values(policy_probs, A, C, lam_values, mask)
    rows = rows - _row_values(baseline_probs, A, C, lam_values, mask)
    stats = _bootstrap(rows, n_boot, random_state, confidence)
    return _package(lam, lam_values, stats, confidence)


def best_constant_model(A, C, lam, mask=None):
    """Return the index of the model with the highest DR value at each λ.

    Returns an int for a scalar ``lam`` and an array of shape (L,) otherwise. With
    a mask, each model's value is its mean over the rows where it exists.
    """
    lam_values = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    Y = utility(A, C, lam_values)
    if mask is None:
        means = Y.mean(axis=1)
    else:
        counts = np.maximum(mask.sum(axis=0), 1)
        means = np.where(mask[None], Y, 0.0).sum(axis=1) / counts
        means = np.where(mask.sum(axis=0)[None] > 0, means, -np.inf)
    best = means.argmax(axis=1)
    if np.ndim(lam) == 0:
        return int(best[0])
    return best
