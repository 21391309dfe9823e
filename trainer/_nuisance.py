"""Nuisance models for the DR targets: outcome regressions and a propensity model.

Outcome models are linear in the standardised features and fitted in two ridge
stages from sufficient statistics (per-model Gram matrices), so that
cross-fitting costs one pass over the data:

1. a pooled model with one slope shared by all models and one intercept per
   model, fitted on every logged row;
2. a per-model correction fitted on that model's rows only, with a ridge
   penalty of ``shrinkage`` pseudo-rows towards zero.

A model with few logged rows therefore keeps the pooled slope plus its own
intercept instead of an unstable fit of its own. The propensity model is a
multinomial logistic regression fitted by Nesterov-accelerated gradient descent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and scale; features with zero variance get scale 1."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        mean = X.mean(axis=0, dtype=np.float64)
        scale = X.std(axis=0, dtype=np.float64)
        scale[scale < 1e-12] = 1.0
        return cls(mean.astype(np.float32), scale.astype(np.float32))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale


def add_intercept(Xs: np.ndarray) -> np.ndarray:
    """Return ``[1, Xs]`` as float32 so that row @ coefficients includes the bias."""
    Z = np.empty((Xs.shape[0], Xs.shape[1] + 1), dtype=np.float32)
    Z[:, 0] = 1.0
    Z[:, 1:] = Xs
    return Z


def make_folds(
    n_samples: int,
    n_folds: int,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Return a fold id in ``[0, n_folds)`` per row, balanced and shuffled.

    With ``groups`` (one id per row, e.g. a prompt id) every row of a group gets
    the same fold, and the groups rather than the rows are balanced over the
    folds. A prompt logged several times then never has one of its own outcomes
    in the models that predict it.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2 for cross-fitting, got {n_folds}.")
    if groups is None:
        if n_samples < n_folds:
            raise ValueError(
                f"n_folds={n_folds} needs at least {n_folds} rows, got {n_samples}."
            )
        return rng.permutation(np.arange(n_samples) % n_folds)
    groups = np.asarray(groups)
    if groups.shape != (n_samples,):
        raise ValueError(
            f"groups must have one id per row, shape ({n_samples},), "
            f"got {groups.shape}."
        )
    unique, inverse = np.unique(groups, return_inverse=True)
    if unique.size < n_folds:
        raise ValueError(
            f"n_folds={n_folds} needs at least {n_folds} distinct groups, "
            f"got {unique.size}."
        )
    group_folds = rng.permutation(np.arange(unique.size) % n_folds)
    return group_folds[inverse.reshape(-1)]


def group_moments(Z, groups, targets, fold_ids, n_folds, n_models):
    """Accumulate Z'Z and Z'y for every (fold, model) group in one pass.

    ``groups`` is the model index of each row, ``targets`` an (n, T) matrix.
    Returns ``gram`` (F, K, p, p), ``moment`` (F, K, p, T) and ``counts`` (F, K).
    """
    p = Z.shape[1]
    n_targets = targets.shape[1]
    gram = np.zeros((n_folds, n_models, p, p))
    moment = np.zeros((n_folds, n_models, p, n_targets))
    counts = np.zeros((n_folds, n_models))
    order = np.lexsort((groups, fold_ids))
    keys = fold_ids[order] * n_models + groups[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], keys.size]
    for start, end in zip(starts, ends):
        rows = order[start:end]
        fold, model = divmod(int(keys[start]), n_models)
        Zg = Z[rows]
        gram[fold, model] = Zg.T.astype(np.float64) @ Zg.astype(np.float64)
        moment[fold, model] = Zg.T.astype(np.float64) @ targets[rows]
        counts[fold, model] = end - start
    return gram, moment, counts


def solve_outcome_coefficients(gram, moment, counts, alpha, shrinkage):
    """Fit the two-stage ridge from per-model moments.

    ``gram`` is (K, p, p), ``moment`` (K, p, T), ``counts`` (K,), with column 0 of
    the design being the intercept. Returns coefficients (p, K, T) such that the
    prediction of model t for target j is ``Z @ coef[:, t, j]``.
    """
    n_models, p, n_targets = moment.shape
    d = p - 1
    total = counts.sum()
    if total == 0:
        return np.zeros((p, n_models, n_targets))
    global_mean = moment[:, 0, :].sum(axis=0) / total

    # Stage 1: shared slope beta and per-model intercepts c on y - global_mean.
    column_sums = gram[:, 1:, 0]
    system = np.zeros((n_models + d, n_models + d))
    system[np.arange(n_models), np.arange(n_models)] = counts + 1.0
    system[:n_models, n_models:] = column_sums
    system[n_models:, :n_models] = column_sums.T
    system[n_models:, n_models:] = gram[:, 1:, 1:].sum(axis=0) + alpha * np.eye(d)
    right = np.empty((n_models + d, n_targets))
    right[:n_models] = moment[:, 0, :] - counts[:, None] * global_mean
    right[n_models:] = (
        moment[:, 1:, :].sum(axis=0) - column_sums.sum(axis=0)[:, None] * global_mean
    )
    pooled = np.linalg.solve(system, right)
    intercepts, slope = pooled[:n_models], pooled[n_models:]

    # Stage 2: per-model corrections fitted on the residuals of stage 1.
    coef = np.empty((p, n_models, n_targets))
    for t in range(n_models):
        base = np.vstack([global_mean + intercepts[t], slope])
        residual_moment = moment[t] - gram[t] @ base
        penalised = gram[t] + shrinkage * np.eye(p)
        coef[:, t, :] = base + np.linalg.solve(penalised, residual_moment)
    return coef


def cross_fit_outcomes(
    Z, groups, targets, n_models, fold_ids, n_folds, alpha=1.0, shrinkage=100.0
):
    """Return out-of-fold predictions (n, K, T) and the all-data coefficients.

    Row i's predictions come from coefficients fitted without fold ``fold_ids[i]``.
    For full-feedback data a row can appear once per observed model, so ``Z``,
    ``groups`` and ``targets`` describe (row, model) records and ``fold_ids`` the
    fold of each record's row.
    """
    gram, moment, counts = group_moments(
        Z, groups, targets, fold_ids, n_folds, n_models
    )
    total_gram, total_moment = gram.sum(axis=0), moment.sum(axis=0)
    total_counts = counts.sum(axis=0)
    full_coef = solve_outcome_coefficients(
        total_gram, total_moment, total_counts, alpha, shrinkage
    )
    fold_coefs = []
    for fold in range(n_folds):
        coef = solve_outcome_coefficients(
            total_gram - gram[fold],
            total_moment - moment[fold],
            total_counts - counts[fold],
            alpha,
            shrinkage,
        )
        fold_coefs.append(coef)
    return fold_coefs, full_coef


def predict_outcomes(Z: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Return predictions (n, K, T) of every model for every row of ``Z``."""
    p, n_models, n_targets = coef.shape
    flat = Z.astype(np.float64) @ coef.reshape(p, n_models * n_targets)
    return flat.reshape(Z.shape[0], n_models, n_targets)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Return the softmax along ``axis``, stable for large logits."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def fit_multinomial_logit(Z, labels, n_models, l2=1e-3, max_iter=200, tol=1e-5):
    """Fit a multinomial logistic regression and return coefficients (p, K).

    Minimises mean cross-entropy + ``l2 / 2 * ||slopes||^2`` with Nesterov's
    accelerated gradient and step ``1 / L``, where ``L = λ_max(Z'Z / n) / 2 + l2``
    bounds the curvature of the softmax cross-entropy.
    """
    n, p = Z.shape
    onehot = np.zeros((n, n_models), dtype=np.float32)
    onehot[np.arange(n), labels] = 1.0
    curvature = np.linalg.eigvalsh((Z.T.astype(np.float64) @ Z) / n)[-1]
    step = 1.0 / (0.5 * curvature + l2)
    penalty = np.full((p, 1), l2, dtype=np.float32)
    penalty[0] = 0.0

    coef = np.zeros((p, n_models), dtype=np.float32)
    momentum = coef.copy()
    t_prev = 1.0
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        probs = softmax(Z @ momentum)
        grad = Z.T @ (probs - onehot) / n + penalty * momentum
        new_coef = momentum - step * grad
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t_prev**2)) / 2.0
        momentum = new_coef + ((t_prev - 1.0) / t_next) * (new_coef - coef)
        coef, t_prev = new_coef, t_next
        if np.abs(grad).max() < tol:
            break
    logger.debug("multinomial logit stopped after %d iterations", iterations)
    return coef


def cross_fit_propensity(Z, chosen, n_models, fold_ids, n_folds, l2=1e-3):
    """Return the out-of-fold probability of the logged model for each row."""
    propensity = np.empty(Z.shape[0])
    for fold in range(n_folds):
        held_out = fold_ids == fold
        coef = fit_multinomial_logit(Z[~held_out], chosen[~held_out], n_models, l2)
        probs = softmax(Z[held_out] @ coef)
        propensity[held_out] = probs[np.arange(probs.shape[0]), chosen[held_out]]
    return propensity
